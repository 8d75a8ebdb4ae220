"""What a bare ONNX classifier's graph says about its input: name, dtype, layout, size.

A model that resdeploy did not export has no manifest recording its preprocessing, but
its graph usually fixes most of it: ``[batch, 3, 224, 224]`` is an NCHW 224x224 input,
``[batch, 224, 224, 3]`` (Keras/TensorFlow exports) an NHWC one. Reading that here lets
``quantize``, ``validate`` and ``bench`` run such a model without flags; the flags
(``--layout``, ``--input-size H,W``) are needed only where the graph leaves axes dynamic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resdeploy.errors import ResdeployError

LAYOUTS = ("NCHW", "NHWC")
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class GraphInput:
    """The single image input of a graph as the file declares it; dims are None where dynamic.

    The one reading of a graph's input: ``resolve.Artifact.input()`` returns this too.
    """

    name: str
    dtype: str
    dims: tuple[int | None, ...]
    layout: str | None  # NCHW | NHWC | None when the dims cannot tell

    @classmethod
    def of(cls, info: Any) -> GraphInput:
        """From an ``artifacts.TensorInfo`` (shape: ints, or strings for dynamic axes)."""
        dims = tuple(int(d) if isinstance(d, int) and d > 0 else None for d in info.shape)
        return cls(str(info.name), str(info.dtype), dims, layout_of(dims))

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The dims (None where dynamic)."""
        return self.dims

    @property
    def shown(self) -> tuple[int | str, ...]:
        """The dims as messages (and ``is_raw_image_input``) take them: '?' where dynamic."""
        return tuple("?" if d is None else d for d in self.dims)

    @property
    def sample_shape(self) -> tuple[int, ...] | None:
        """The per-sample shape (C, H, W or H, W, C) a 4-D input fixes; None where an axis is dynamic."""
        dims = self.dims[1:]
        return tuple(int(d) for d in dims if d is not None) if len(dims) == 3 and all(dims) else None

    @property
    def channels(self) -> int | None:
        """The static channel count, or None when the layout is unknown."""
        if self.layout is None:
            return None
        return self.dims[1] if self.layout == "NCHW" else self.dims[3]

    @property
    def height(self) -> int | None:
        """Static height, or None."""
        if self.layout is None:
            return None
        return self.dims[2] if self.layout == "NCHW" else self.dims[1]

    @property
    def width(self) -> int | None:
        """Static width, or None."""
        if self.layout is None:
            return None
        return self.dims[3] if self.layout == "NCHW" else self.dims[2]

    @property
    def height_width(self) -> tuple[int, int] | None:
        """Static (H, W), or None."""
        h, w = self.height, self.width
        return (h, w) if h and w else None


def layout_of(dims: tuple[int | None, ...]) -> str | None:
    """NCHW or NHWC from a 4-D input's static dims; None when they do not tell (both or neither look like channels)."""
    if len(dims) != 4:
        return None
    c_first, c_last = dims[1] in _CHANNELS, dims[3] in _CHANNELS
    if c_first and not c_last:
        return "NCHW"
    if c_last and not c_first:
        return "NHWC"
    return None


def single_input(inputs: list[Any], what: str = "the model") -> GraphInput:
    """The one graph input among ``inputs`` (``artifacts.TensorInfo``s, initializers already left out)."""
    if len(inputs) != 1:
        raise ResdeployError(f"{what} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                             "resdeploy runs single-input image classifiers")
    return GraphInput.of(inputs[0])


def read_graph_input(path: str | os.PathLike[str]) -> GraphInput:
    """The graph input of ``path`` (initializers listed as inputs are skipped)."""
    from resdeploy.artifacts import GraphSummary

    return single_input(GraphSummary.measure(Path(path)).inputs, str(path))


def outputs_note(path: str | os.PathLike[str]) -> str | None:
    """A line for a graph with several outputs: every engine runner reads the first one as the logits."""
    from resdeploy.artifacts import GraphSummary

    names = [o.name for o in GraphSummary.measure(Path(path)).outputs]
    if len(names) < 2:
        return None
    return (f"{path} has {len(names)} outputs ({', '.join(names)}): resdeploy reads the first, '{names[0]}', "
            "as the class scores (re-export with that one first, or alone, if it is another)")


def cast_input(batch: Any, dtype: Any) -> Any:
    """``batch`` as a contiguous array of ``dtype``: floats bound for an integer input are rounded and clipped.

    The one cast of samples to a graph's input type, for the runners' staging and for code
    that feeds sessions directly: a plain ``astype(uint8)`` truncates 254.7 to 254 and wraps
    -1 to 255, so a resized pixel or a float tensor would reach a uint8 model changed.
    """
    import numpy as np

    target = np.dtype(dtype)
    arr = np.asarray(batch)
    if target.kind in "ui" and arr.dtype.kind == "f":
        bounds = np.iinfo(target)
        arr = np.clip(np.rint(arr), bounds.min, bounds.max)
    return np.ascontiguousarray(arr, dtype=target)


def as_input_dtype(inputs: Any, graph: GraphInput) -> Any:
    """Loaded samples in the dtype the graph takes: uint8 pixels for a graph that normalises them itself.

    The runners cast a batch themselves; this is for code that feeds ONNX Runtime sessions
    directly (calibration, bias correction, the per-layer report).
    """
    return cast_input(inputs, "uint8") if graph.dtype == "uint8" else inputs


def static_sample_shape(path: str | os.PathLike[str]) -> tuple[int, ...] | None:
    """The per-sample shape (C, H, W or H, W, C) that ``path``'s graph input fixes; None where an axis is dynamic."""
    return read_graph_input(path).sample_shape


def graph_input_of(model: Any, what: str = "the model") -> GraphInput:
    """``read_graph_input`` for a loaded ModelProto."""
    from resdeploy.artifacts import GraphSummary

    return single_input(GraphSummary.of_proto(model).inputs, what)


def parse_input_size(text: str | int | None) -> tuple[int, int] | None:
    """--input-size: '224' (square) or '224,160' / '224x160' (H,W) -> (H, W)."""
    if text is None:
        return None
    if isinstance(text, int):
        parts = [text]
    else:
        try:
            parts = [int(v) for v in str(text).replace("x", ",").split(",")]
        except ValueError:
            raise ResdeployError(f"--input-size takes H or H,W (positive integers), got '{text}'") from None
    if len(parts) not in (1, 2) or any(p <= 0 for p in parts):
        raise ResdeployError(f"--input-size takes H or H,W (positive integers), got '{text}'")
    return (parts[0], parts[-1])


def parse_layout(text: str | None) -> str | None:
    """--layout nchw|nhwc -> NCHW | NHWC."""
    if text is None:
        return None
    if text.upper() not in LAYOUTS:
        raise ResdeployError(f"--layout takes nchw or nhwc, got '{text}'")
    return text.upper()


def batch_fits(expected: tuple[Any, ...], got: tuple[int, ...]) -> bool:
    """The batch shape ``got`` has the input's rank and its fixed dims (strings, None, -1/0: any size)."""
    return len(expected) == len(got) and not any(isinstance(e, int) and e > 0 and int(g) != e
                                                 for e, g in zip(expected[1:], got[1:], strict=True))


def layout_mismatch(expected: tuple[Any, ...], got: tuple[int, ...]) -> bool:
    """A 4-D batch in NCHW given an NHWC input, or the other way round."""
    return len(got) == 4 and len(expected) == 4 and \
        layout_of(tuple(e if isinstance(e, int) and e > 0 else None for e in expected)) != layout_of(tuple(got))


def check_batch_shape(expected: tuple[Any, ...], got: tuple[int, ...], what: str) -> None:
    """One line when a batch does not fit the graph input (instead of ONNX Runtime's INVALID_ARGUMENT)."""
    if not batch_fits(expected, got):
        shown = tuple(e if isinstance(e, int) and e > 0 else "?" for e in expected)
        hint = " (a layout mismatch: pass --layout nchw or nhwc)" if layout_mismatch(expected, got) else ""
        raise ResdeployError(f"{what} takes input of shape {shown}: a batch of {tuple(got)} does not fit{hint}",
                             hint="check --input-size/--layout, or the model's manifest")


def check_input_flags(graph: GraphInput, size: tuple[int, int] | None, layout: str | None, what: str) -> None:
    """--input-size/--layout may fill what the graph leaves dynamic; contradicting what it fixes is one line."""
    dims = graph.shown
    lay = parse_layout(layout)
    if lay and graph.layout and lay != graph.layout:
        raise ResdeployError(f"--layout {lay.lower()} does not match {what}, whose input {dims} is {graph.layout}",
                             hint=f"drop --layout, or pass --layout {graph.layout.lower()}")
    hw = graph.height_width
    if size and hw and tuple(size) != hw:
        raise ResdeployError(f"--input-size {size[0]},{size[1]} does not match {what}, whose input {dims} "
                             f"fixes {hw[0]}x{hw[1]}", hint="drop --input-size: the graph's size is used")


def spec_without_manifest(graph: GraphInput | None, *, input_size: str | int | tuple[int, int] | None = None,
                          layout: str | None = None, preset: str | None = None, resize: int | None = None,
                          mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                          what: str = "the model", required: bool = True) -> tuple[Any, str]:
    """The PreprocessSpec for a model without a manifest, from its graph and the flags; and a line saying so.

    Flags fill what the graph leaves dynamic and must agree with what it fixes. With
    ``required=False`` (FP16 conversion needs no images) missing facts fall back to
    224x224 NCHW instead of an error.
    """
    from resdeploy.preprocess import spec_for

    size = input_size if isinstance(input_size, tuple) else parse_input_size(input_size)
    lay = parse_layout(layout)
    graph_hw = graph.height_width if graph is not None else None
    graph_layout = graph.layout if graph is not None else None
    dims = graph.shown if graph is not None else None
    if graph is not None:
        check_input_flags(graph, size, lay, what)
    lay = lay or graph_layout
    if lay is None:
        if graph is not None and len(graph.dims) == 4 and required:
            raise ResdeployError(f"{what} has no manifest, and its input {dims} does not tell NCHW from NHWC",
                                 hint="pass --layout nchw or --layout nhwc")
        lay = "NCHW"
    size = size or graph_hw
    if size is None:
        if required:
            axes = f"its input {dims} leaves height and width dynamic" if graph is not None else "no input shape"
            raise ResdeployError(f"{what} has no manifest recording its preprocessing, and {axes}",
                                 hint="pass --input-size H or H,W (and --layout, --preprocess or --mean/--std "
                                      "unless they are torchvision's), or export it with `resdeploy export`")
        size = (224, 224)
    # A 1-channel model gets grayscale images; a 4-channel one cannot be fed images (data.open_data says so).
    gray = graph is not None and graph.channels == 1
    spec = spec_for(size, preset=preset or "torchvision", layout=lay, resize=resize, mean=mean, std=std,
                    channels=1 if gray else 3)
    source = "the graph" if graph_hw and not input_size else "--input-size"
    if graph is not None and graph.dtype == "uint8":
        # Its normalisation is in the graph: it takes the resized, cropped pixels themselves (0-255),
        # which the runners cast to uint8 exactly. Normalising first would feed it a few grey levels.
        if mean is not None or std is not None:
            raise ResdeployError(f"{what} takes uint8 pixels (its normalisation is in the graph); "
                                 "--mean/--std have nothing to apply to", hint="leave out --mean and --std")
        spec = replace(spec, scale=1.0, mean=(0.0,) * spec.channels, std=(1.0,) * spec.channels,
                       extra={**spec.extra, "pixels": "uint8"})
        return spec, (f"no manifest: {size[0]}x{size[1]} {lay} uint8 input from {source}, raw 0-255 "
                      f"{spec.color} pixels (the graph normalises them)")
    note = (f"no manifest: {size[0]}x{size[1]} {lay} input from {source}, {preset or 'torchvision'} preprocessing"
            + (f" of grayscale images (mean {spec.mean[0]:.4g}, std {spec.std[0]:.4g})" if gray else "")
            + ("" if preset or mean or std else " (pass --preprocess caffe|tf or --mean/--std if the model was "
                                                 "trained otherwise)"))
    return spec, note


def to_layout(batch: Any, source: str, target: str | None) -> Any:
    """A 4-D batch in ``source`` layout (NCHW/NHWC) transposed to ``target``; unchanged when equal or unknown.

    Lets ``validate`` compare an NHWC model with the same network in NCHW on the same images.
    """
    import numpy as np

    if target is None or source.upper() == target.upper() or getattr(batch, "ndim", 0) != 4:
        return batch
    axes = (0, 3, 1, 2) if target.upper() == "NCHW" else (0, 2, 3, 1)
    return np.ascontiguousarray(batch.transpose(axes))
