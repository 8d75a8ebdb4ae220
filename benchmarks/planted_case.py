"""The planted sensitive layer of issue 12: the digits ResNet-20 with one outlier channel.

Trains the digits ResNet-20 exactly as tests/test_accuracy_digits.py does (scikit-learn's
bundled digits written as PNGs, so nothing is downloaded), then plants an outlier: one
channel of ``layer1.0.bn1`` (the one with the largest mean post-ReLU activation on the
training images) scaled x100, and ``layer1.0.conv2``'s matching input channel x1/100.
FP32 outputs stay the same (ReLU commutes with a positive scale); INT8 with global
min/max ranges loses that block's other channels to a 100x wider range.

    python benchmarks/planted_case.py WORKDIR   # writes WORKDIR/{data,plain,planted}; reuses what exists
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = "layer1.0"
FACTOR = 100.0


def build(workdir: Path) -> dict[str, Path]:
    """Data, trained weights and the two FP32 exports (plain and planted); cached in ``workdir``."""
    from resdeploy.training import pin_portable_cpu_kernels

    if not pin_portable_cpu_kernels():  # the network of docs/precision.md, whatever the x86 host
        print("note: PyTorch's CPU kernels are not AVX2 here, so this may train another network than the one "
              "docs/precision.md measured", file=sys.stderr)
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    import test_accuracy_digits as digits  # the one recipe for the digits model
    from safetensors.torch import load_file

    import resdeploy
    from resdeploy.datasets import write_digits
    from resdeploy.exporter import ExportConfig
    from resdeploy.training import TrainConfig, train

    data = workdir / "data"
    if not (data / "val").exists():
        write_digits(data, val_fraction=digits.VAL_FRACTION, seed=0)
    trained = workdir / "trained"
    if not (trained / "model.safetensors").exists():
        train(TrainConfig(data=str(data / "train"), output=str(trained), model="resnet20", val_data=str(data / "val"),
                          epochs=digits.EPOCHS, input_size=digits.INPUT_SIZE, flip=False, seed=0))
    weights = trained / "model.safetensors"
    planted = workdir / "resnet20_planted.pt"
    if not planted.exists():
        torch.save(plant(load_file(str(weights)), data / "train"), planted)
    out = {"train": data / "train", "val": data / "val", "trained": trained}
    for name, w in (("plain", weights), ("planted", planted)):
        fp32 = workdir / name / "fp32"
        if not (fp32 / "model.onnx").exists():
            resdeploy.export("resnet20", fp32, ExportConfig(input_size=digits.INPUT_SIZE, force=True),
                             weights=str(w), num_classes=10)
        out[name] = fp32
    return out


def outlier_channel(state: dict, train_dir: Path) -> int:
    """The channel of BLOCK.bn1 with the largest mean post-ReLU activation on training images."""
    import torch

    from resdeploy.data import open_data
    from resdeploy.models.zoo import ModelSpec

    spec = ModelSpec("resnet20", num_classes=10, input_size=16)
    model = spec.build()
    model.load_state_dict(state)
    x, _ = open_data(train_dir, spec.preprocess(), samples=256).load()
    seen: dict[str, torch.Tensor] = {}
    bn = dict(model.named_modules())[f"{BLOCK}.bn1"]
    bn.register_forward_hook(lambda _m, _i, o: seen.__setitem__("a", torch.relu(o)))
    with torch.no_grad():
        model(torch.from_numpy(x))
    return int(seen["a"].mean(dim=(0, 2, 3)).argmax())


def plant(state: dict, train_dir: Path, factor: float = FACTOR) -> dict:
    """The state dict with the outlier planted; FP32 outputs unchanged."""
    c = outlier_channel(state, train_dir)
    out = {k: v.clone() for k, v in state.items()}
    out[f"{BLOCK}.bn1.weight"][c] *= factor
    out[f"{BLOCK}.bn1.bias"][c] *= factor
    out[f"{BLOCK}.conv2.weight"][:, c] /= factor
    return out


if __name__ == "__main__":
    paths = build(Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/planted"))
    for k, v in paths.items():
        print(f"{k}: {v}")
