"""Weights files: torchvision-layout state dicts, checkpoints, safetensors, and the bad ones."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from resdeploy.errors import ResdeployError
from resdeploy.models.weights import read_state_dict
from resdeploy.models.zoo import MODELS, ModelSpec, create_model, model_from_manifest


def _trained_like(name: str = "resnet20", num_classes: int = 10, seed: int = 5) -> dict[str, torch.Tensor]:
    """A state dict with non-default values everywhere (as a trained checkpoint has)."""
    torch.manual_seed(seed)
    model = MODELS[name](num_classes)
    sd = model.state_dict()
    for k, v in sd.items():
        if v.is_floating_point():
            sd[k] = torch.randn_like(v) * 0.1 + (1.0 if k.endswith("running_var") else 0.0)
            if k.endswith("running_var"):
                sd[k] = sd[k].abs() + 0.5
    return sd


def _assert_loaded(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(got[k], v), k


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "ddp", "swa"])
def test_pth_round_trip(tmp_path: Path, wrap: str) -> None:
    sd = _trained_like()
    obj: object = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 90, "best_acc1": 0.76},
        "model": {"model": sd, "optimizer": {"lr": 0.1}},
        "ddp": {f"module.{k}": v for k, v in sd.items()},
        # torch.optim.swa_utils.AveragedModel(model).state_dict(): an EMA/SWA checkpoint
        "swa": {"n_averaged": torch.tensor(12), **{f"module.{k}": v for k, v in sd.items()}},
    }[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    model = create_model("resnet20", weights=str(path))
    _assert_loaded(model, sd)
    assert not model.training


def test_torchvision_layout_resnet18_without_num_batches_tracked(tmp_path: Path) -> None:
    """Old torchvision checkpoints (resnet18-f37072fd.pth) predate num_batches_tracked."""
    sd = {k: v for k, v in _trained_like("resnet18", 1000).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(sd, path)
    model = create_model("resnet18", weights=str(path))
    _assert_loaded(model, sd)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # the loaded model is exactly the state dict, no calibration applied on top
        ref = MODELS["resnet18"](1000).eval()
        ref.load_state_dict(sd, strict=False)
        assert torch.equal(model(x), ref(x))


def test_safetensors_round_trip_and_head_from_weights(tmp_path: Path) -> None:
    sd = _trained_like(num_classes=4)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    assert set(read_state_dict(path)) == set(sd)
    model = create_model("resnet20", weights=str(path))  # 4 classes, read from fc.weight
    assert model.fc.out_features == 4
    _assert_loaded(model, sd)


def test_mismatch_names_missing_unexpected_and_shaped_keys(tmp_path: Path) -> None:
    sd = _trained_like("resnet20", 10)
    path = tmp_path / "r20.pth"
    torch.save(sd, path)
    with pytest.raises(ResdeployError) as err:
        create_model("resnet32", weights=str(path))
    assert "missing (layer1.3.conv1.weight" in str(err.value)
    with pytest.raises(ResdeployError) as err:
        create_model("resnet20", weights=str(path), num_classes=100)
    msg = str(err.value)
    assert "2 wrongly shaped (fc.weight: file [10, 64] vs model [100, 64], fc.bias" in msg and "--num-classes" in msg
    renamed = {("classifier." + k[3:] if k.startswith("fc.") else k): v for k, v in sd.items()}
    torch.save(renamed, path)
    with pytest.raises(ResdeployError) as err:
        create_model("resnet20", weights=str(path), num_classes=10)
    assert "2 missing (fc.weight, fc.bias)" in str(err.value) and "2 unexpected (classifier.weight" in str(err.value)


def test_lightning_checkpoint_with_the_wrapper_attribute_on_every_key(tmp_path: Path) -> None:
    # A LightningModule keeping the network as self.model saves "model.conv1.weight", ...: it was
    # "102 missing; 102 unexpected (model.conv1.weight, ...)" with the hint to check the model name.
    sd = _trained_like(num_classes=4)
    path = tmp_path / "epoch=3-step=100.ckpt"
    torch.save({"epoch": 3, "global_step": 100, "pytorch-lightning_version": "2.5.0",
                "state_dict": {f"model.{k}": v for k, v in sd.items()}, "hyper_parameters": {"lr": 0.1}}, path)
    model = create_model("resnet20", weights=str(path))  # 4 classes, read from model.fc.weight
    assert model.fc.out_features == 4
    _assert_loaded(model, sd)
    # Only an exact fit is taken off: a prefixed checkpoint of another network still names its keys.
    with pytest.raises(ResdeployError, match=r"do not fit resnet32: \d+ missing .* unexpected \(model\.conv1"):
        create_model("resnet32", weights=str(path), num_classes=4)


def test_imagenet_example_model_best_pth_tar(tmp_path: Path) -> None:
    # pytorch/examples' ImageNet script saves model_best.pth.tar (DataParallel keys): it was refused
    # as "unknown file type '.tar'". A real tar archive is still no checkpoint.
    sd = _trained_like()
    path = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet20", "state_dict": {f"module.{k}": v for k, v in sd.items()},
                "best_acc1": torch.tensor(76.1), "optimizer": {"state": {}, "param_groups": []}}, path)
    _assert_loaded(create_model("resnet20", weights=str(path)), sd)
    archive = tmp_path / "data.tar"
    archive.write_bytes(b"not a checkpoint")
    with pytest.raises(ResdeployError, match="unknown file type '.tar'"):
        read_state_dict(archive)


def test_a_fine_tuned_head_of_another_shape_points_at_a_factory(tmp_path: Path) -> None:
    # model.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 3)), as fine-tuning tutorials write it:
    # the hint said "check the model name and --num-classes", neither of which can make it fit.
    sd = _trained_like()
    head = {k: v for k, v in sd.items() if k.startswith("fc.")}
    tuned = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    tuned.update({"fc.1.weight": head["fc.weight"][:3], "fc.1.bias": head["fc.bias"][:3]})
    path = tmp_path / "tuned.pth"
    torch.save(tuned, path)
    with pytest.raises(ResdeployError) as err:
        create_model("resnet20", weights=str(path))
    assert "2 missing (fc.weight, fc.bias); 2 unexpected (fc.1.weight, fc.1.bias)" in str(err.value)
    assert "'fc' is built differently" in (err.value.hint or "") and "package.module:factory" in (err.value.hint or "")


def test_bad_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02 this is not a checkpoint" * 10)
    with pytest.raises(ResdeployError, match="cannot read .*junk.pth as a PyTorch checkpoint"):
        read_state_dict(junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(ResdeployError, match="cannot read .*junk.safetensors as safetensors"):
        read_state_dict(bad_st)
    with pytest.raises(ResdeployError, match="weights file not found"):
        read_state_dict(tmp_path / "absent.pth")
    with pytest.raises(ResdeployError, match="unknown file type '.onnx'"):
        (tmp_path / "m.onnx").write_bytes(b"x")
        read_state_dict(tmp_path / "m.onnx")
    with pytest.raises(ResdeployError, match="not a file"):
        read_state_dict(tmp_path)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ResdeployError, match="holds no tensors"):
        read_state_dict(empty)


def test_pickled_code_is_never_executed(tmp_path: Path) -> None:
    """A checkpoint with pickled Python objects (here argparse.Namespace, common in training
    scripts) is refused by weights_only loading instead of being unpickled."""
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": _trained_like(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(ResdeployError, match="refusing to load .*pickled Python objects"):
        read_state_dict(path)


def test_model_from_manifest_checks_the_weights_file(tmp_path: Path) -> None:
    sd = _trained_like()
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    spec = ModelSpec("resnet20", weights=str(path))
    manifest = {"model": {"spec": spec.to_dict(), "weights": spec.weights_description()}}
    _assert_loaded(model_from_manifest(manifest), sd)
    sd["fc.bias"] += 1
    torch.save(sd, path)
    with pytest.raises(ResdeployError, match="changed since the export"):
        model_from_manifest(manifest)
    path.unlink()
    with pytest.raises(ResdeployError, match="are gone"):
        model_from_manifest(manifest)
