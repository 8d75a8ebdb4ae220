"""INT8 as an explicit Q/DQ graph, from post-training calibration.

Two targets, because the best Q/DQ form depends on who runs it:

* ``trt``: symmetric INT8 activations and per-channel symmetric weights, Q/DQ on the
  inputs of Conv/Gemm/pooling and on *both* inputs of every residual Add, the placement
  TensorRT's explicit-quantization fusion expects (Conv+Add+ReLU as one INT8 kernel).
  ORT's quantizer does not put Q/DQ on an Add input that comes straight from a Conv,
  so ``ensure_add_inputs_quantized`` post-processes the graph.
* ``cpu``: what ONNX Runtime runs fastest on x86: unsigned (asymmetric) activations
  with per-channel symmetric INT8 weights (see docs/precision.md for the measurement).

The steps are kept apart (pre-process, calibrate, place Q/DQ) so that saved ranges can
skip calibration and rebuild the same model without data.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from resdeploy.artifacts import default_opset
from resdeploy.console import QUIET, Reporter
from resdeploy.errors import ResdeployError
from resdeploy.graph_modules import module_scopes as _module_scopes
from resdeploy.precision.entropy import AbsHistogramCollector
from resdeploy.precision.estimators import PerSampleMinMaxCollector
from resdeploy.precision.legacy_graph import MIN_QDQ_OPSET, upgrade_opset

TARGETS = ("cpu", "trt")
# What TensorRT quantizes in a ResNet: Conv/Gemm inputs, pooling, and residual Adds.
# Slice and Pad (the CIFAR ResNets' parameter-free shortcut) get Q/DQ on both sides too:
# left between a DequantizeLinear and a quantized Add, ONNX Runtime's QDQ propagation
# (optimization level >= extended) rebuilds the missing pair itself, and for opset >= 21
# graphs it builds an invalid QuantizeLinear (output_dtype INT8 with a UINT8 zero point,
# ONNX Runtime 1.31) so the session does not load. TensorRT folds such pairs around
# data-movement ops, so the explicit pairs cost nothing there.
TRT_OP_TYPES = ["Conv", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Slice", "Pad"]
# The activation type per target, chosen by measurement (docs/precision.md).
DEFAULT_ACTIVATION = {"cpu": "uint8", "trt": "int8"}
# The range estimator per target, chosen by measurement (docs/precision.md, "Default
# calibration"): with cross-layer equalization and bias correction on (the defaults),
# percentile (99.999) has the best or within 0.1 dB of the best logit SQNR for both targets
# on the digits ResNet-20, its planted-outlier twin and a ResNet-18; entropy ties it there
# but collapsed (negative cosine) on a random-init ResNet-20 calibrated on 8 noise samples,
# where percentile kept 0.95-0.98; per-sample averaged min/max (the cpu default before
# equalization) was 1-14 dB worse everywhere. The others stay available by name.
DEFAULT_METHOD = {"cpu": "percentile", "trt": "percentile"}


def pre_process(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """ORT's recommended pre-processing: shape inference and graph fusions (Conv+BN) first.

    Calibration and Q/DQ placement both run on this graph, so tensor names in saved
    ranges refer to it; it is deterministic for a given FP32 file and ORT version. A graph
    below opset 13 (the ONNX Model Zoo's ResNets are opset 7 to 12) is converted to 13:
    per-channel Q/DQ needs DequantizeLinear's ``axis``, which opset 13 added.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src_path, dst_path = os.path.abspath(os.fspath(src)), os.path.abspath(os.fspath(dst))
    # ORT's symbolic shape inference, when it cannot finish (dynamic H, W), saves
    # "sym_shape_infer_temp.onnx" and its external data into the working directory: run it
    # from a temporary one so nothing lands in the user's.
    import onnx

    with tempfile.TemporaryDirectory(prefix="resdeploy-pre-") as scratch, contextlib.chdir(scratch):
        # Before ORT's fusions, which an IR-3 graph cannot take (the opset is read without the weights).
        if (default_opset(onnx.load(src_path, load_external_data=False)) or 0) < MIN_QDQ_OPSET:
            upgraded = upgrade_opset(onnx.load(src_path), src_path)
            src_path = os.path.join(scratch, "upgraded.onnx")
            onnx.save(upgraded, src_path)
        try:
            quant_pre_process(src_path, dst_path, skip_symbolic_shape=False)
        except Exception:  # symbolic shape inference cannot handle every graph; ONNX's is enough here
            quant_pre_process(src_path, dst_path, skip_symbolic_shape=True)

    model = onnx.load(dst_path)
    if _unshare_conv_parameters(model):
        onnx.save(model, dst_path)
    return Path(dst)


def _unshare_conv_parameters(model: Any) -> int:
    """Give each Conv/Gemm its own copy of a weight or bias that several nodes read; returns how many copies.

    torch.onnx's legacy exporter writes equal tensors once (an untrained network's zero
    biases, shared through Identity nodes, which ORT's optimizer then rewires to the one
    initializer). Equalization and bias correction change a layer's own parameters and so
    skip shared ones: a torchvision ResNet-18 exported that way equalized 0 of its 8 pairs.
    """
    inits = {i.name: i for i in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for t in node.input:
            readers[t] = readers.get(t, 0) + 1
    copies = 0
    for k, node in enumerate(model.graph.node):
        if node.op_type not in ("Conv", "Gemm"):
            continue
        for slot in (1, 2):
            name = node.input[slot] if len(node.input) > slot else ""
            if name in inits and readers[name] > 1:
                copy = model.graph.initializer.add()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name or k}"
                node.input[slot] = copy.name
                readers[name] -= 1
                copies += 1
    return copies


def model_input(model_path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """Name of the (single) graph input and its fixed batch size (None when dynamic)."""
    import onnx

    model = onnx.load(os.fspath(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ResdeployError(f"expected a model with one input, found {len(inputs)}: {[i.name for i in inputs]}")
    dim0 = inputs[0].type.tensor_type.shape.dim[0]
    return inputs[0].name, (dim0.dim_value if dim0.HasField("dim_value") else None)


def calibrate(
    model_path: str | os.PathLike[str],
    inputs: np.ndarray,
    *,
    method: str = "minmax",
    percentile: float = 99.999,
    batch_size: int = 8,
    reporter: Reporter = QUIET,
) -> dict[str, tuple[float, float]]:
    """Run the (pre-processed) FP32 model on ``inputs`` and return every float tensor's range."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from resdeploy.data import calibration_reader

    name, fixed_batch = model_input(model_path)
    if fixed_batch:
        batch_size = fixed_batch
        keep = (inputs.shape[0] // fixed_batch) * fixed_batch
        if keep == 0:
            raise ResdeployError(f"the model takes batches of {fixed_batch}; pass at least {fixed_batch} samples")
        inputs = inputs[:keep]
    # Entropy: ORT's histogram calibrator runs the model, our collector keeps |x| histograms
    # and picks TensorRT's KL thresholds (precision/entropy.py says why not ORT's own).
    # avgminmax: the same driver, our per-sample min/max collector (precision/estimators.py).
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Percentile,
               "percentile": CalibrationMethod.Percentile, "avgminmax": CalibrationMethod.Percentile}
    extra: dict[str, Any] = {}
    if method == "percentile":
        extra["percentile"] = float(percentile)
    with tempfile.TemporaryDirectory(prefix="resdeploy-calib-") as tmp:
        calibrator = create_calibrator(
            Path(model_path), None, augmented_model_path=os.path.join(tmp, "augmented.onnx"),
            calibrate_method=methods[method], extra_options=extra,
        )
        collector: Any = (AbsHistogramCollector() if method == "entropy"
                          else PerSampleMinMaxCollector() if method == "avgminmax" else None)
        if collector is not None:
            calibrator.collector = collector
        elif method == "percentile":
            calibrator.collector = _percentile_collector(calibrator)
        # One batch per collect_data call: ORT's histogram calibrators keep every output of
        # every batch they are given until they histogram them (ResNet-50: 8 GB for 64
        # samples), and with one batch at a time they merge as they go and a smaller last
        # batch is no longer a ragged stack. ORT's calibrators print() progress: keep stdout
        # clean for --json.
        starts = range(0, inputs.shape[0], batch_size)
        with contextlib.redirect_stdout(io.StringIO()):
            for start in reporter.track(starts, total=len(starts), timed=True,
                                        description=f"calibrating ({method}, {inputs.shape[0]} samples)"):
                calibrator.collect_data(calibration_reader(inputs[start:start + batch_size], name, batch_size))
            tensors = None if collector is not None else calibrator.compute_data()
        del calibrator
    if isinstance(collector, PerSampleMinMaxCollector):
        return collector.ranges()
    if collector is not None:
        with reporter.step(f"searching KL thresholds for {len(collector.histograms)} tensors"):
            return dict(collector.ranges())
    from resdeploy.precision.ranges import CalibrationRanges

    return CalibrationRanges.ranges_from_tensors_data(tensors)


def _percentile_collector(calibrator: Any) -> Any:
    """ONNX Runtime's percentile collector, able to take a tensor that is (nearly) constant.

    Its first histogram of |x| spans [min |x|, max |x|] in 2048 bins; numpy cannot make
    2048 float32 bins in a span of a few ulps (a squeeze-excite gate of an untrained
    MobileNetV3 is 0.5 everywhere), and calibration died with "Too many bins for data
    range". Such a tensor is histogrammed from 0 (later batches merge as ORT merges them)
    and gets the range it was seen in, min to max: a percentile of a constant is that
    constant. Every other tensor is ORT's own.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    class _Collector(HistogramCollector):  # type: ignore[misc]
        narrow: set[str]

        def collect_absolute_value(self, name_to_arr: dict[str, Any]) -> None:
            for tensor, data in name_to_arr.items():
                try:
                    super().collect_absolute_value({tensor: data})
                except ValueError:
                    if tensor in self.histogram_dict:
                        raise
                    flat = np.asarray(data).reshape(-1)
                    magnitude = np.absolute(flat)
                    hist, edges = np.histogram(magnitude, bins=self.num_bins, range=(0.0, float(np.nanmax(magnitude))))
                    self.histogram_dict[tensor] = (hist, edges.astype(flat.dtype), np.nanmin(flat), np.nanmax(flat))
                    self.narrow.add(tensor)

        def compute_percentile(self) -> dict[str, Any]:
            thresholds: dict[str, Any] = super().compute_percentile()
            for tensor in self.narrow:
                hist, _, lo, hi = self.histogram_dict[tensor]
                thresholds[tensor] = (lo, hi, *hist[:2])
            return thresholds

    collector = _Collector(method=calibrator.method, symmetric=calibrator.symmetric, num_bins=calibrator.num_bins,
                           num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
                           scenario=calibrator.scenario)
    collector.narrow = set()
    return collector


def match_nodes(model_path: str | os.PathLike[str], patterns: Sequence[str]) -> list[str]:
    """Node names matching ``--exclude`` patterns: node names, PyTorch module paths, or globs of either.

    TorchScript exports name nodes after their modules ('/layer4/layer4.0/conv1/Conv'); the
    dynamo exporter names them after ops ('node_Conv_374') and records the module path in
    metadata, so 'layer4', 'layer4.1.bn2' and '*layer4*' select the same nodes either way.
    A pattern that matches nothing is an error: a typo would otherwise quietly leave
    the layer quantized, the very thing the user asked to avoid.
    """
    import onnx

    nodes = [(n.name, _module_scopes(n))
             for n in onnx.load(os.fspath(model_path), load_external_data=False).graph.node if n.name]
    out: list[str] = []
    for pat in patterns:
        hits = [name for name, scopes in nodes
                if any(k == pat or fnmatch.fnmatchcase(k, pat) for k in (name, *scopes))]
        if not hits:
            sample = ", ".join(name for name, _ in nodes[:4])
            modules = list(dict.fromkeys(s for _, scopes in nodes for s in scopes if "." not in s))
            mods = f"; module paths such as {', '.join(modules[:6])}" if modules else ""
            raise ResdeployError(f"--exclude '{pat}' matches no node of the model",
                                 hint=f"node names look like: {sample}{mods}; globs such as '*layer4*' work too")
        out.extend(h for h in hits if h not in out)
    return out


def quantize_qdq(
    pre_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    ranges: Any,
    *,
    target: str = "cpu",
    activation_type: str | None = None,
    per_channel: bool = True,
    exclude_nodes: Sequence[str] = (),
    reduce_range: bool = False,
) -> Any:
    """Place Q/DQ nodes in the pre-processed FP32 graph from ``ranges`` (a CalibrationRanges).

    ``reduce_range``: 7-bit weights ([-64, 64]) for x86 CPUs without VNNI, whose u8 x s8
    instruction (vpmaddubsw) adds pairs of products into int16 and can saturate with 8-bit
    weights; ONNX Runtime's quantization guide recommends it there. TensorRT does not need it.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    if target not in TARGETS:
        raise ResdeployError(f"unknown target '{target}'; choose from: {', '.join(TARGETS)}")
    act = activation_type or DEFAULT_ACTIVATION[target]
    if act not in ("uint8", "int8"):
        raise ResdeployError(f"activation type must be uint8 or int8, got '{act}'")
    if target == "trt" and act != "int8":
        raise ResdeployError("TensorRT takes signed INT8 activations only; drop the activation type or use int8")
    if target == "trt" and reduce_range:
        raise ResdeployError("reduced-range (7-bit) weights are for x86 CPUs without VNNI; TensorRT takes full INT8")
    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": target == "trt" or act == "int8"}
    op_types = TRT_OP_TYPES if target == "trt" else cpu_op_types()
    if target == "trt":
        # Q/DQ go on op *inputs* only: TensorRT fuses Conv+(Add)+ReLU, so a Q/DQ pair on a
        # Conv or Add output would split the fusion and, being symmetric before the ReLU,
        # waste half the INT8 range. Biases stay FP32; TensorRT quantizes them itself.
        extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "Gemm", "MatMul", "Add", "MaxPool",
                                                       "AveragePool", "GlobalAveragePool"]
        extra["QuantizeBias"] = False
    else:
        # Keep the logits in float: 8-bit logits cost accuracy (ties) and save nothing.
        extra["OpTypesToExcludeOutputQuantization"] = ["Gemm", "MatMul"]
    with tempfile.TemporaryDirectory(prefix="resdeploy-qdq-") as tmp:
        cache = Path(tmp) / "ranges.json"
        tensors = ranges.to_tensors_data()
        save_tensors_data(tensors, cache)
        quantize_static(
            os.fspath(pre_path), os.fspath(out_path), calibration_data_reader=None,
            calibrate_method=tensors.calibration_method,
            calibration_cache_path=cache, quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8 if act == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8, op_types_to_quantize=op_types, reduce_range=reduce_range,
            nodes_to_exclude=list(exclude_nodes) or None, extra_options=extra,
        )
    model = onnx.load(os.fspath(out_path))
    if target == "trt":
        model = ensure_add_inputs_quantized(model, ranges.ranges, exclude_nodes=exclude_nodes)
    drop_unused_opsets(model)
    onnx.save(model, os.fspath(out_path))
    return model


def cpu_op_types() -> list[str]:
    """What ``--target cpu`` quantizes: ONNX Runtime's default op types, less Softmax and LogSoftmax.

    Like the logits (kept float above), a Softmax at the end gains nothing from 8 bits and
    loses much: its output in 1/255 steps rounds every small probability to the same value
    (a torchvision ResNet-18 with a Softmax at the end: top-5 agreement with FP32 34%).
    """
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - {"Softmax", "LogSoftmax"})


def drop_unused_opsets(model: Any) -> list[str]:
    """Remove opset imports of domains no node uses; returns the removed domains.

    ``quant_pre_process`` saves the graph through ONNX Runtime's optimizer, which declares
    every domain it knows (com.microsoft.nchwc, ai.onnx.training, org.pytorch.aten, ...).
    Nothing uses them, but every peer tool lists them (``polygraphy inspect model``) and
    a strict importer may refuse a domain it does not know: declare only what is used.
    """
    used = {n.domain or "" for n in model.graph.node}
    for fn in model.functions:
        used |= {n.domain or "" for n in fn.node}
        used.add(fn.domain or "")
    keep = [o for o in model.opset_import if (o.domain or "") in used or (o.domain or "") in ("", "ai.onnx")]
    removed = [o.domain for o in model.opset_import if o not in keep]
    if removed:
        kept = [(o.domain, o.version) for o in keep]
        del model.opset_import[:]
        from onnx import helper

        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in kept)
    return removed


def _producers(graph: Any) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output}


def add_input_quantization(model: Any) -> list[tuple[str, list[bool]]]:
    """For each Add whose inputs are both activations: is each input fed by a DequantizeLinear?"""
    graph = model.graph
    producers = _producers(graph)
    consts = {i.name for i in graph.initializer}
    out: list[tuple[str, list[bool]]] = []
    for node in graph.node:
        if node.op_type != "Add" or any(i in consts or producers.get(i, None) is None for i in node.input):
            continue
        if any(producers[i].op_type == "Constant" for i in node.input):
            continue
        out.append((node.name, [producers[i].op_type == "DequantizeLinear" for i in node.input]))
    return out


def ensure_add_inputs_quantized(model: Any, ranges: dict[str, tuple[float, float]],
                                *, exclude_nodes: Sequence[str] = ()) -> Any:
    """Insert symmetric INT8 Q/DQ on every residual-Add input that lacks it (TensorRT fusion rule)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = _producers(graph)
    excluded = set(exclude_nodes)
    new_nodes: list[tuple[int, list[Any]]] = []
    made: dict[str, str] = {}
    for idx, node in enumerate(graph.node):
        if node.op_type != "Add" or node.name in excluded:
            continue
        if not all(i in producers and producers[i].op_type not in ("Constant",) for i in node.input):
            continue
        for pos, tensor in enumerate(node.input):
            if producers[tensor].op_type == "DequantizeLinear":
                continue
            if tensor not in made:
                if tensor not in ranges:
                    raise ResdeployError(f"no calibration range for tensor '{tensor}' (input of {node.name}); recalibrate")
                lo, hi = ranges[tensor]
                scale = max(abs(lo), abs(hi), 1e-12) / 127.0
                base = tensor.replace("/", "_").strip("_") + "_resadd"
                s_name, z_name = base + "_scale", base + "_zero_point"
                graph.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), s_name))
                graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int8), z_name))
                q_out, dq_out = base + "_quantized", base + "_dequantized"
                q = helper.make_node("QuantizeLinear", [tensor, s_name, z_name], [q_out], name=base + "_Q")
                dq = helper.make_node("DequantizeLinear", [q_out, s_name, z_name], [dq_out], name=base + "_DQ")
                new_nodes.append((idx, [q, dq]))
                made[tensor] = dq_out
            node.input[pos] = made[tensor]
    # Insert each Q/DQ pair just before its Add so the node list stays topologically sorted.
    for idx, pair in sorted(new_nodes, key=lambda t: t[0], reverse=True):
        for n in reversed(pair):
            graph.node.insert(idx, n)
    return model


def quantized_ops(model: Any) -> dict[str, int]:
    """How many nodes of each op type consume a DequantizeLinear output (i.e. run quantized)."""
    producers = _producers(model.graph)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if any(i in producers and producers[i].op_type == "DequantizeLinear" for i in node.input):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
