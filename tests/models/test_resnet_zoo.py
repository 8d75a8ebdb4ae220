"""The zoo: architectures, parameter counts, FLOPs, names, determinism of the random init."""

from __future__ import annotations

import pytest
import torch

from resdeploy.errors import ResdeployError
from resdeploy.models import resnet
from resdeploy.models.stats import count_parameters, model_stats
from resdeploy.models.weights import STREAM_PARITY_INPUTS, synthetic_images
from resdeploy.models.zoo import MODELS, ModelSpec, create_model, list_models, model_from_manifest

# Published parameter counts: torchvision's model docs (ImageNet, 1000 classes) and the
# CIFAR ResNets with option-A shortcuts (He et al. 2015, table 6: 0.27M ... 1.7M).
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}
PAPER_CIFAR_MILLIONS = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
# torchvision's documented GFLOPS (multiply-adds) at 224.
PUBLISHED_GMACS = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
                   "wide_resnet50_2": 11.40, "wide_resnet101_2": 22.75, "resnext50_32x4d": 4.23,
                   "resnext101_32x8d": 16.41}


def test_registry_is_the_whole_zoo() -> None:
    assert set(MODELS) == set(PUBLISHED_PARAMS)
    assert list_models("resnet*") == [n for n in MODELS if n.startswith("resnet")]
    assert list_models("*wide*") == ["wide_resnet50_2", "wide_resnet101_2"]
    assert list_models("nothing*") == []


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_parameter_count_and_output_shape(name: str) -> None:
    spec = ModelSpec(name)
    with torch.device("meta"):
        model = spec._construct(None).eval()
    assert count_parameters(model) == PUBLISHED_PARAMS[name]
    size = spec.default_input_size
    out = model(torch.empty(3, 3, size, size, device="meta"))
    assert tuple(out.shape) == (3, 10 if name in PAPER_CIFAR_MILLIONS else 1000)
    # a non-default size and head work too (global pooling makes the head size-independent)
    with torch.device("meta"):
        model = spec._construct(7).eval()
    assert tuple(model(torch.empty(2, 3, size + 32, size + 32, device="meta")).shape) == (2, 7)


def test_cifar_counts_match_the_paper() -> None:
    for name, millions in PAPER_CIFAR_MILLIONS.items():
        assert round(PUBLISHED_PARAMS[name] / 1e6, 2 if millions < 1 else 1) == millions


@pytest.mark.slow
def test_flops_are_computed_and_match_published() -> None:
    for name, gmacs in PUBLISHED_GMACS.items():
        s = model_stats(name)
        assert s.gmacs == pytest.approx(gmacs, abs=0.01), name
        assert s.gflops == pytest.approx(2 * s.gmacs, rel=1e-3)
    small = model_stats("resnet50", input_size=112)
    assert small.gmacs == pytest.approx(model_stats("resnet50").gmacs / 4, rel=0.1)  # odd sizes round up
    assert model_stats("resnet20").input_size == 32 and model_stats("resnet20").num_classes == 10


def test_real_forward_small_models() -> None:
    m = create_model("resnet18", num_classes=5, input_size=64)
    assert not m.training
    with torch.no_grad():
        assert tuple(m(torch.randn(2, 3, 64, 64)).shape) == (2, 5)
    m = create_model("resnet20")
    with torch.no_grad():
        assert tuple(m(torch.randn(4, 3, 32, 32)).shape) == (4, 10)


def test_bottleneck_puts_stride_on_3x3_like_torchvision() -> None:
    block = resnet.Bottleneck(256, 128, stride=2, downsample=torch.nn.Identity())
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)


def test_state_dict_keys_are_torchvision_layout() -> None:
    with torch.device("meta"):
        keys = set(MODELS["resnet50"](1000).state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
              "layer1.0.downsample.1.num_batches_tracked", "layer4.2.bn3.running_var", "fc.weight", "fc.bias"):
        assert k in keys
    assert len(keys) == 320  # torchvision resnet50: 161 parameters + 159 BatchNorm buffers


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ResdeployError, match="did you mean .*resnet50"):
        ModelSpec("resnet05")
    with pytest.raises(ResdeployError, match="unknown model 'vgg16'"):
        create_model("vgg16")
    with pytest.raises(ResdeployError, match="package.module:factory"):
        ModelSpec("not a module:x y")


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"input_size": -1}, {"seed": -2}])
def test_non_positive_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ResdeployError, match="must be"):
        ModelSpec("resnet20", **kwargs)


def test_random_init_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = create_model("resnet20", seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = create_model("resnet20", seed=3)
    c = create_model("resnet20", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1.weight"], sc["conv1.weight"])


def test_random_init_gives_realistic_logits() -> None:
    """A fresh ResNet's logits are tiny and input-independent; the calibrated one's are not."""
    x = synthetic_images(8, 64, seed=0, stream=STREAM_PARITY_INPUTS)
    spec = ModelSpec("resnet18", input_size=64)
    calibrated, record = spec.build_with_record()
    torch.manual_seed(0)
    raw = MODELS["resnet18"](1000).eval()
    with torch.no_grad():
        y, y_raw = calibrated(x), raw(x)
    assert 1.0 < float(y.std()) < 20.0
    assert len(set(y.argmax(1).tolist())) >= 4  # predictions change with the input
    assert float(y_raw.std()) < float(y.std()) / 3  # what parity would see without the calibration
    assert len(set(y_raw.argmax(1).tolist())) <= 2  # ... and the same top-1 class for (nearly) every image
    assert record["procedure"] == "random-init calibration"
    assert record["classifier"]["logit_std"] == pytest.approx(4.0, rel=1e-3)
    assert record["classifier"]["distinct_top1"] >= 4


def test_preprocess_per_family() -> None:
    p = ModelSpec("resnet50").preprocess()
    assert (p.resize, p.crop, p.mean) == (256, 224, (0.485, 0.456, 0.406))
    c = ModelSpec("resnet20").preprocess()
    assert (c.resize, c.crop) == (32, 32) and c.mean[0] == pytest.approx(0.4914)
    assert ModelSpec("resnet50", input_size=160).preprocess().resize == 183


def test_spec_round_trip_and_model_from_manifest() -> None:
    spec = ModelSpec("resnet20", num_classes=4, seed=9, input_size=32)
    assert ModelSpec.from_dict({**spec.to_dict(), "unknown": 1}) == spec
    assert spec.source == "zoo" and ModelSpec("timm:resnet50").source == "timm"
    assert ModelSpec("torchvision:resnet50").source == "torchvision" and ModelSpec("pkg.mod:make").source == "custom"
    rebuilt = model_from_manifest({"model": {"spec": spec.to_dict(), "weights": "random, seed 9"}})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), spec.build()(x))
    with pytest.raises(ResdeployError, match="no model spec"):
        model_from_manifest({"stage": "export"})


def test_custom_factory(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    (tmp_path / "my_nets.py").write_text(
        "import torch\n"
        "def tiny(num_classes=3):\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),\n"
        "                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, num_classes))\n"
        "def not_a_model(num_classes=3):\n"
        "    return 42\n"
        "def no_head_arg():\n"
        "    return tiny()\n"
        "def broken(num_classes=3):\n"
        "    raise RuntimeError('weights server down')\n"
    )
    (tmp_path / "my_broken_nets.py").write_text("raise ValueError('bad config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = create_model("my_nets:tiny", num_classes=6, input_size=16)
    with torch.no_grad():
        assert tuple(m(torch.randn(2, 3, 16, 16)).shape) == (2, 6)
    with pytest.raises(ResdeployError, match="did not return a torch.nn.Module"):
        create_model("my_nets:not_a_model")
    with pytest.raises(ResdeployError, match="has no callable 'missing'"):
        create_model("my_nets:missing")
    with pytest.raises(ResdeployError, match="cannot import"):
        create_model("no_such_module_xyz:make")
    # Errors in the user's code are one line naming the call, not a traceback.
    with pytest.raises(ResdeployError, match=r"my_nets.broken\(\) raised RuntimeError: weights server down"):
        create_model("my_nets:broken")
    with pytest.raises(ResdeployError, match=r"no_head_arg\(num_classes=6\) raised TypeError"):
        create_model("my_nets:no_head_arg", num_classes=6)
    with pytest.raises(ResdeployError, match="importing 'my_broken_nets'.*ValueError: bad config"):
        create_model("my_broken_nets:make")


def test_torchvision_and_timm_need_their_packages() -> None:
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(ResdeployError, match="pip install torchvision"):
            create_model("torchvision:resnet18")
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(ResdeployError, match="pip install timm"):
            create_model("timm:resnet18")
