# ruff: noqa: F811  (pytest fixtures are imported from trt_fixtures and named as arguments)
"""Build logic against the FAKE tensorrt module (tests/trt/fake_tensorrt.py): flags, profiles,
pool limits, timing cache, engine cache, metadata, compatibility and error reporting.

These show what resdeploy asks TensorRT for; they do not show that TensorRT works
(see test_trt_real.py, marked ``trt``, for that).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_tensorrt import FakeTensorRT
from trt_fixtures import (  # noqa: F401
    GPU_A10G,
    FakeGpu,
    fake_gpu,
    fake_trt,
    install_fake,
    make_onnx,
    run_cli,
    tiny_onnx,
    trt_runner,
)

from resdeploy import artifacts
from resdeploy.errors import MissingDependencyError, ResdeployError
from resdeploy.trt import compat
from resdeploy.trt.build import BuildConfig, build, read_onnx_io
from resdeploy.trt.compat import BatchProfile
from resdeploy.trt.loader import GpuInfo, require_tensorrt


def test_strongly_typed_network_and_no_precision_flags(fake_trt: FakeTensorRT, tmp_path: Path) -> None:
    for precision in ("fp32", "fp16", "int8"):
        onnx_path = make_onnx(tmp_path / precision / "model.onnx", precision=precision)
        result = build(onnx_path, BuildConfig(precision=precision))
        assert result.manifest.precision == precision
    strongly_typed = 1 << int(fake_trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert fake_trt.record.network_flags == [strongly_typed] * 3
    # Precision is in the graph: FP16/INT8/BF16 builder flags are never set.
    assert not {"FP16", "INT8", "BF16", "OBEY_PRECISION_CONSTRAINTS"} & set(fake_trt.record.set_flags)


def test_tensorrt_11_flavour_builds_without_removed_flags(install_fake: Callable[..., FakeTensorRT],
                                                          tiny_onnx: Path) -> None:
    fake = install_fake("11.0.1.5")
    assert not hasattr(fake.BuilderFlag, "FP16") and not hasattr(fake.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    result = build(tiny_onnx, BuildConfig(batch=BatchProfile(1, 2, 4)))
    assert fake.record.network_flags == [0]  # 11.x: strongly typed always, no flag to pass
    assert result.engine.tensorrt_version == "11.0.1.5"


def test_profile_workspace_opt_level_and_compat_options(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    config = BuildConfig(batch=BatchProfile.parse("2:8:16"), workspace_mib=512, opt_level=5,
                         hardware_compat="ampere_plus", version_compatible=True, exclude_lean_runtime=True)
    result = build(tiny_onnx, config)
    assert fake_trt.record.profiles == [{"input": [[2, 3, 8, 8], [8, 3, 8, 8], [16, 3, 8, 8]]}]
    assert fake_trt.record.memory_pool_limits == {"WORKSPACE": 512 << 20}
    assert fake_trt.record.opt_levels == [5]
    assert fake_trt.record.hardware_levels == ["AMPERE_PLUS"]
    assert fake_trt.record.set_flags == ["VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"]
    plan = json.loads(result.engine_path.read_bytes())
    assert plan["inputs"][0]["name"] == "input" and plan["outputs"][0]["name"] == "logits"


def test_default_build_sets_no_optional_settings(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    result = build(tiny_onnx)
    assert fake_trt.record.memory_pool_limits == {}  # TensorRT's own default workspace
    assert fake_trt.record.hardware_levels == [] and fake_trt.record.set_flags == []
    assert compat.batch_profile(result.engine) == BatchProfile(1, 8, 32)
    assert result.engine_path == tiny_onnx.with_name("model.fp32.engine")


def test_build_writes_a_schema_2_manifest_beside_the_engine(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    result = build(tiny_onnx, BuildConfig(batch=BatchProfile(1, 4, 8)))
    meta_file = result.engine_path.with_name(result.engine_path.name + ".json")
    assert result.manifest_path == meta_file
    data = json.loads(meta_file.read_text())
    assert data["schema"] == artifacts.MANIFEST_SCHEMA and data["stage"] == "build" and data["precision"] == "fp32"
    engine = data["engine"]
    assert engine["tensorrt_version"] == "10.13.0.35"
    assert (engine["gpu_name"], engine["compute_capability"]) == ("NVIDIA A10G", "8.6")
    assert engine["profile"] == {"min": 1, "opt": 4, "max": 8}
    import hashlib

    # the plan's own file record, measured from the plan; lineage to the ONNX it was compiled from
    plan = result.engine_path.read_bytes()
    assert data["artifact"]["file"] == "model.fp32.engine"
    assert (data["artifact"]["sha256"], data["artifact"]["bytes"]) == (hashlib.sha256(plan).hexdigest(), len(plan))
    assert data["parent"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert data["parent"]["path"] == "model.onnx" and data["parent"]["stage"] == "export"
    assert engine["input_name"] == "input" and engine["input_shape"] == [3, 8, 8] and engine["output_name"] == "logits"
    assert engine["built_at"] and engine["build_seconds"] >= 0 and engine["cache_key"]
    assert data["preprocess"] == {"resize": 10, "crop": 8}  # shared with the ONNX's manifest
    assert "graph" not in data and "inputs" not in data  # no ONNX graph: the engine record says what it takes
    typed = artifacts.load_engine_manifest(result.engine_path)
    assert typed.require_engine() == result.engine and typed.artifact == result.manifest.artifact


def test_flipped_byte_in_a_plan_is_one_line_naming_both_hashes(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    import hashlib

    from resdeploy.resolve import resolve_artifact

    engine = build(tiny_onnx).engine_path
    recorded = hashlib.sha256(engine.read_bytes()).hexdigest()
    data = bytearray(engine.read_bytes())
    data[10] ^= 0x01
    engine.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    for load in (lambda: resolve_artifact(engine), lambda: artifacts.load_engine_manifest(engine)):
        with pytest.raises(ResdeployError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message and recorded in message and actual in message and "model.fp32.engine.json" in message
    code, _, err = run_cli("inspect", str(engine), "--json")  # inspect describes what is there: not verified
    assert code == 0
    code, _, err = run_cli("package", str(engine), "--triton", str(tiny_onnx.parent.parent / "repo"))
    assert code == 2 and recorded in err and actual in err and "Traceback" not in err


def test_engine_metadata_written_before_plans_had_manifests_still_loads(tmp_path: Path) -> None:
    """tests/data/trt_engine_v1: written by the previous code (its plan by the FAKE tensorrt)."""
    import shutil

    src = Path(__file__).parents[1] / "data" / "trt_engine_v1"
    plan = tmp_path / "model.fp32.engine"
    shutil.copy(src / "model.fp32.engine", plan)
    shutil.copy(src / "model.fp32.engine.json", tmp_path / "model.fp32.engine.json")
    old = json.loads((src / "model.fp32.engine.json").read_text())
    assert old["schema"] == artifacts.ENGINE_SCHEMA_V1
    manifest = artifacts.load_engine_manifest(plan)  # migrated (artifacts.migrate_v1) and verified
    assert manifest.schema == artifacts.MANIFEST_SCHEMA and manifest.stage == "build" and manifest.precision == "fp32"
    assert manifest.artifact is not None
    assert (manifest.artifact.file, manifest.artifact.sha256) == ("model.fp32.engine", old["engine_sha256"])
    assert manifest.parent is not None and manifest.parent.sha256 == old["onnx_sha256"]
    assert manifest.parent.abspath == old["onnx_path"]
    assert manifest.preprocess == old["preprocess"]
    engine = manifest.require_engine()
    assert (engine.tensorrt_version, engine.gpu_name, engine.compute_capability) == (
        old["tensorrt_version"], old["gpu_name"], old["compute_capability"])
    assert engine.profile == old["profile"] and engine.cache_key == old["cache_key"]
    with pytest.raises(ResdeployError, match="not a valid resdeploy manifest.*name of its plan"):
        artifacts.parse_manifest(old, "somewhere/metadata.json")  # not named after a plan: no file record to make
    # the compatibility checks read the migrated record
    assert compat.compatibility_problem(engine, GpuInfo(old["gpu_name"], old["compute_capability"]),
                                        old["tensorrt_version"]) is None
    assert "built with TensorRT" in str(compat.compatibility_problem(engine, GPU_A10G, "10.14.1.48"))
    # and a flipped byte in the old plan is refused like any artifact's (the sha256 decides: bytes unknown)
    data = bytearray(plan.read_bytes())
    data[0] ^= 0x01
    plan.write_bytes(bytes(data))
    with pytest.raises(ResdeployError, match=old["engine_sha256"]):
        artifacts.load_engine_manifest(plan)


def test_timing_cache_is_read_and_written_across_builds(fake_trt: FakeTensorRT, tiny_onnx: Path,
                                                        tmp_path: Path) -> None:
    cache_file = tmp_path / "timing.cache"
    build(tiny_onnx, BuildConfig(timing_cache=str(cache_file), use_cache=False))
    assert fake_trt.record.timing_cache_loaded == [b""]  # no file yet: an empty cache
    assert cache_file.read_bytes() == b"fake-timing-cache=1"
    build(tiny_onnx, BuildConfig(timing_cache=str(cache_file), use_cache=False, force=True))
    assert fake_trt.record.timing_cache_loaded[1] == b"fake-timing-cache=1"  # the first build's timings reused
    assert cache_file.read_bytes() == b"fake-timing-cache=2"
    assert fake_trt.record.timing_cache_ignore_mismatch == [False, False]


def test_default_timing_cache_is_per_gpu_and_version(fake_trt: FakeTensorRT, tiny_onnx: Path,
                                                     tmp_path: Path) -> None:
    build(tiny_onnx)
    files = list((tmp_path / "cache" / "timing").iterdir())
    assert [f.name for f in files] == ["10.13.0.35-NVIDIA_A10G-sm8.6.cache"]


def test_corrupt_timing_cache_starts_afresh(fake_trt: FakeTensorRT, tiny_onnx: Path, tmp_path: Path) -> None:
    cache_file = tmp_path / "timing.cache"
    cache_file.write_bytes(b"garbage")
    build(tiny_onnx, BuildConfig(timing_cache=str(cache_file)))
    assert fake_trt.record.timing_cache_loaded == [b"garbage", b""]
    assert cache_file.read_bytes() == b"fake-timing-cache=1"


def test_engine_cache_hit_and_misses(install_fake: Callable[..., FakeTensorRT], fake_gpu: FakeGpu,
                                     tiny_onnx: Path) -> None:
    fake = install_fake()
    first = build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "a.engine")))
    assert not first.cached and fake.record.builds == 1

    # Unchanged inputs: reused, from the cache even for a new output file.
    again = build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "b.engine")))
    assert again.cached and fake.record.builds == 1
    assert again.engine_path.read_bytes() == first.engine_path.read_bytes()
    assert build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "a.engine"))).cached

    # Each of these changes something the plan depends on: a new build.
    builds = fake.record.builds
    for config in (BuildConfig(precision="fp32", batch=BatchProfile(1, 4, 32), output=str(tiny_onnx.parent / "c.engine")),
                   BuildConfig(opt_level=1, output=str(tiny_onnx.parent / "d.engine"))):
        assert not build(tiny_onnx, config).cached
        builds += 1
        assert fake.record.builds == builds

    fake_gpu.current = GpuInfo("NVIDIA L4", "8.9")
    assert not build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "e.engine"))).cached
    fake_gpu.current = GPU_A10G

    fake11 = install_fake("10.14.1.48")
    assert not build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "f.engine"))).cached
    assert fake11.record.builds == 1

    make_onnx(tiny_onnx, classes=12)  # the ONNX changed (re-exported: its manifest is rewritten with it)
    artifacts.write_manifest(tiny_onnx.parent, {"stage": "export", "preprocess": {"resize": 10, "crop": 8}})
    changed = build(tiny_onnx, BuildConfig(output=str(tiny_onnx.parent / "g.engine")))
    assert not changed.cached and fake11.record.builds == 2


def test_precision_change_is_a_cache_miss(fake_trt: FakeTensorRT, tmp_path: Path) -> None:
    fp16 = make_onnx(tmp_path / "m" / "model.onnx", precision="fp16")
    build(fp16, BuildConfig(precision=None))  # None: the graph's own precision
    assert fake_trt.record.builds == 1
    assert (tmp_path / "m" / "model.fp16.engine").exists()
    int8 = make_onnx(tmp_path / "m" / "model.onnx", precision="int8")
    assert not build(int8, BuildConfig(precision="int8")).cached
    assert fake_trt.record.builds == 2


def test_existing_output_from_other_inputs_needs_force(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    out = tiny_onnx.parent / "x.engine"
    build(tiny_onnx, BuildConfig(output=str(out)))
    with pytest.raises(ResdeployError, match="--force"):
        build(tiny_onnx, BuildConfig(output=str(out), batch=BatchProfile(1, 1, 1)))
    assert build(tiny_onnx, BuildConfig(output=str(out), batch=BatchProfile(1, 1, 1), force=True)).engine.profile == {
        "min": 1, "opt": 1, "max": 1}


def test_plan_that_appears_at_the_output_while_building_is_kept(fake_trt: FakeTensorRT, tiny_onnx: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import resdeploy.trt.build as trt_build

    out = tiny_onnx.parent / "x.engine"
    real = trt_build.build_plan

    def build_then_rival_writes(*args: object, **kwargs: object) -> object:
        plan = real(*args, **kwargs)  # type: ignore[arg-type]
        out.write_bytes(b"another run's plan")
        return plan

    monkeypatch.setattr(trt_build, "build_plan", build_then_rival_writes)
    with pytest.raises(ResdeployError, match="x.engine already exists .*left as it is"):
        build(tiny_onnx, BuildConfig(output=str(out)))
    assert out.read_bytes() == b"another run's plan" and not out.with_name("x.engine.json").exists()
    monkeypatch.setattr(trt_build, "build_plan", real)
    result = build(tiny_onnx, BuildConfig(output=str(out), force=True))  # --force replaces it
    assert result.manifest.artifact is not None and result.manifest.artifact.sha256 == artifacts.sha256_file(out)


def test_parser_errors_are_reported_per_node(install_fake: Callable[..., FakeTensorRT], tmp_path: Path) -> None:
    install_fake(unsupported_ops=("MyCustomOp", "Gemm"))
    onnx_path = make_onnx(tmp_path / "bad" / "model.onnx", extra_op="MyCustomOp")
    with pytest.raises(ResdeployError) as info:
        build(onnx_path)
    message = str(info.value)
    assert "\n" not in message and "2 errors" in message
    assert "node 0 'my_custom_node' (MyCustomOp): No importer registered for op: MyCustomOp" in message
    assert "node 5 'fc' (Gemm)" in message
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == ["model.onnx"]  # nothing half-written


def test_failed_build_reports_tensorrt_error_and_writes_nothing(install_fake: Callable[..., FakeTensorRT],
                                                                tiny_onnx: Path) -> None:
    install_fake(fail_build="Error Code 4: Internal Error (out of memory for tactic)")
    with pytest.raises(ResdeployError, match="could not build.*out of memory for tactic"):
        build(tiny_onnx)
    assert not tiny_onnx.with_name("model.fp32.engine").exists()


def test_fixed_batch_onnx(fake_trt: FakeTensorRT, tmp_path: Path) -> None:
    onnx_path = make_onnx(tmp_path / "fixed" / "model.onnx", batch=4)
    assert read_onnx_io(onnx_path).static_batch == 4
    assert compat.batch_profile(build(onnx_path).engine) == BatchProfile(4, 4, 4)
    with pytest.raises(ResdeployError, match="fixed batch of 4"):
        build(onnx_path, BuildConfig(batch=BatchProfile(1, 8, 32)))


@pytest.mark.parametrize(("text", "expected"), [("1:8:32", (1, 8, 32)), ("4", (4, 4, 4))])
def test_batch_profile_parse(text: str, expected: tuple[int, int, int]) -> None:
    p = BatchProfile.parse(text)
    assert (p.min, p.opt, p.max) == expected


@pytest.mark.parametrize("text", ["8:1:32", "0:1:1", "a:b:c", "1:2"])
def test_batch_profile_rejects(text: str) -> None:
    with pytest.raises(ResdeployError, match="batch"):
        BatchProfile.parse(text)


def test_bad_options_are_one_line_errors(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    for config, pattern in [
        (BuildConfig(precision="int4"), "unknown precision"),
        (BuildConfig(precision="fp16", calib_data="x"), "only applies to --precision int8"),
        (BuildConfig(opt_level=9), "0..5"),
        (BuildConfig(hardware_compat="turing"), "hardware compatibility"),
        (BuildConfig(exclude_lean_runtime=True), "--version-compatible"),
        (BuildConfig(output="out.bin"), ".engine or .plan"),
    ]:
        with pytest.raises(ResdeployError, match=pattern):
            build(tiny_onnx, config)
    with pytest.raises(ResdeployError, match="int8 needs --calib-data"):
        build(tiny_onnx, BuildConfig(precision="int8"))
    fp16 = make_onnx(tiny_onnx.parent / "h" / "model.onnx", precision="fp16")
    with pytest.raises(ResdeployError, match="already a fp16 graph"):
        build(fp16, BuildConfig(precision="int8", calib_data="somewhere"))
    assert fake_trt.record.builds == 0


# --- compatibility ---------------------------------------------------------------------------------

def _meta(**changes: object) -> compat.EngineRecord:
    base: dict[str, object] = dict(
        tensorrt_version="10.13.0.35", gpu_name="NVIDIA A10G", compute_capability="8.6",
        profile={"min": 1, "opt": 8, "max": 32}, input_name="input", input_shape=[3, 224, 224],
        input_dtype="float32", output_name="logits", output_dtype="float32", options={}, cache_key="k",
    )
    base.update(changes)
    return compat.EngineRecord(**base)  # type: ignore[arg-type]


def test_compat_accepts_same_gpu_and_version() -> None:
    assert compat.compatibility_problem(_meta(), GPU_A10G, "10.13.0.35") is None


def test_compat_refuses_other_tensorrt_version() -> None:
    problem = compat.compatibility_problem(_meta(), GPU_A10G, "10.14.1.48")
    assert problem and "built with TensorRT 10.13.0.35" in problem and "has TensorRT 10.14.1.48" in problem


def test_compat_version_compatible_runs_forward_within_major() -> None:
    meta = _meta(options={"version_compatible": True})
    assert compat.compatibility_problem(meta, GPU_A10G, "10.14.1.48") is None
    assert "at or after" in str(compat.compatibility_problem(meta, GPU_A10G, "10.8.0.43"))
    assert "at or after" in str(compat.compatibility_problem(meta, GPU_A10G, "11.0.0.1"))


def test_compat_refuses_other_gpu() -> None:
    other_arch = compat.compatibility_problem(_meta(), GpuInfo("NVIDIA H100 80GB HBM3", "9.0"), "10.13.0.35")
    assert other_arch and "compute capability 8.6" in other_arch and "NVIDIA H100" in other_arch
    same_arch = compat.compatibility_problem(_meta(), GpuInfo("NVIDIA A40", "8.6"), "10.13.0.35")
    assert same_arch and "tuned on NVIDIA A10G" in same_arch


def test_compat_hardware_levels() -> None:
    ampere = _meta(options={"hardware_compat": "ampere_plus"})
    assert compat.compatibility_problem(ampere, GpuInfo("NVIDIA H100", "9.0"), "10.13.0.35") is None
    assert "Ampere or newer" in str(compat.compatibility_problem(ampere, GpuInfo("Tesla T4", "7.5"), "10.13.0.35"))
    same_cc = _meta(options={"hardware_compat": "same_cc"})
    assert compat.compatibility_problem(same_cc, GpuInfo("NVIDIA A40", "8.6"), "10.13.0.35") is None
    assert compat.compatibility_problem(same_cc, GpuInfo("NVIDIA L4", "8.9"), "10.13.0.35")


def test_hardware_compat_cache_key_ignores_gpu_model() -> None:
    args = dict(onnx_sha256="a", precision="fp32", profile=BatchProfile(1, 8, 32), tensorrt_version="10.13.0.35")
    ampere = compat.BuildOptions(hardware_compat="ampere_plus")
    assert compat.cache_key(gpu=GPU_A10G, options=ampere, **args) == compat.cache_key(  # type: ignore[arg-type]
        gpu=GpuInfo("NVIDIA H100", "9.0"), options=ampere, **args)  # type: ignore[arg-type]
    plain = compat.BuildOptions()
    assert compat.cache_key(gpu=GPU_A10G, options=plain, **args) != compat.cache_key(  # type: ignore[arg-type]
        gpu=GpuInfo("NVIDIA A40", "8.6"), options=plain, **args)  # type: ignore[arg-type]


# --- missing TensorRT --------------------------------------------------------------------------------

def test_without_tensorrt_the_error_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails like an absent package
    with pytest.raises(MissingDependencyError, match="pip install tensorrt"):
        require_tensorrt()


def test_stub_only_tensorrt_is_not_mistaken_for_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    stubs_only = types.ModuleType("tensorrt")  # what `import tensorrt` gives with only tensorrt-stubs installed
    monkeypatch.setitem(sys.modules, "tensorrt", stubs_only)
    with pytest.raises(MissingDependencyError, match="only type stubs"):
        require_tensorrt()


def test_old_tensorrt_is_refused(install_fake: Callable[..., FakeTensorRT]) -> None:
    install_fake("8.6.1.6")
    with pytest.raises(MissingDependencyError, match="TensorRT 10 or newer.*found 8.6.1.6"):
        require_tensorrt()


# --- with the real quantize stage ----------------------------------------------------------------

def test_fp16_variant_is_made_by_the_quantize_stage_beside_the_fp32_artifact(fake_trt: FakeTensorRT,
                                                                            tiny_onnx: Path) -> None:
    import hashlib

    from resdeploy.artifacts import read_manifest

    result = build(tiny_onnx, BuildConfig(precision="fp16"))
    variant = tiny_onnx.parent.parent / "fp16" / "model.onnx"  # where `resdeploy quantize` puts it
    assert result.onnx_path == variant and read_onnx_io(variant).precision == "fp16"
    assert result.engine_path == variant.with_name("model.fp16.engine")
    manifest = read_manifest(variant)
    assert manifest is not None and manifest["parent"]["sha256"] == hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    again = build(tiny_onnx, BuildConfig(precision="fp16"))  # same FP32 ONNX: variant and engine reused
    assert again.cached and fake_trt.record.builds == 1


def test_int8_runner_keeps_its_variant_in_the_cache(fake_trt: FakeTensorRT, tiny_onnx: Path, tmp_path: Path) -> None:
    from resdeploy.runners import RunnerConfig

    config = RunnerConfig(engine="trt", model=str(tiny_onnx), device="cuda", precision="int8", batch_size=2,
                          options={"calib_data": "synthetic"})
    with trt_runner(config) as runner:
        assert runner.describe()["precision"] == "int8"
    variants = list((tmp_path / "cache" / "variants").iterdir())
    assert len(variants) == 1 and read_onnx_io(variants[0] / "model.onnx").precision == "int8"
    assert sorted(p.name for p in tiny_onnx.parent.parent.iterdir()) == ["cache", "tiny"]  # no sibling artifacts
    with trt_runner(config) as runner:
        assert runner.describe()["engine_cached"] is True
    assert fake_trt.record.builds == 1


def test_the_resolver_reads_an_engine_plan_through_its_manifest(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    from resdeploy.resolve import resolve_artifact

    artifacts.write_manifest(tiny_onnx.parent, {"stage": "export", "model": {"name": "tiny"},
                                                 "preprocess": {"resize": 10, "crop": 8}})
    result = build(tiny_onnx, BuildConfig(precision="fp16"))
    art = resolve_artifact(result.engine_path)
    assert art.name == "tiny"  # the model spec is shared with the ONNX's manifest
    assert art.kind == "engine" and art.precision == result.manifest.precision == "fp16"
    assert art.manifest is not None and art.manifest.engine == result.engine
    assert result.manifest.artifact is not None
    assert art.sha256 == result.manifest.artifact.sha256 == artifacts.sha256_file(result.engine_path)
    assert result.to_dict()["schema"] == "resdeploy.build/1"


def test_validate_takes_an_fp16_plans_fp32_grandparent_as_reference(fake_trt: FakeTensorRT, tiny_onnx: Path) -> None:
    """The plan's lineage names the FP16 ONNX it was compiled from; validate's reference is that variant's parent."""
    from resdeploy.validation import ValidateConfig, validate

    result = build(tiny_onnx, BuildConfig(precision="fp16"))
    assert result.manifest.parent is not None and result.manifest.parent.resolve(result.engine_path.parent) == \
        result.onnx_path.resolve()
    res = validate(result.engine_path, config=ValidateConfig(engine="trt", device="cuda", data="synthetic",
                                                              samples=4, batch_size=2))
    assert res.reference["path"] == str(tiny_onnx.resolve()) and res.reference["kind"] == "parent"
    assert res.samples == 4


def test_validate_describes_an_int8_plan_by_the_target_of_the_variant_it_was_compiled_from(
        fake_trt: FakeTensorRT, tiny_onnx: Path, tmp_path: Path) -> None:
    import resdeploy
    from resdeploy.validation import ValidateConfig, validate

    q = resdeploy.quantize(tiny_onnx, precision="int8", target="trt", calib_data="synthetic", calib_samples=4,
                           output=str(tmp_path / "int8-trt"))
    result = build(q.model_path, BuildConfig(precision="int8"))
    res = validate(result.engine_path, config=ValidateConfig(engine="trt", device="cuda", data="synthetic",
                                                              samples=2, batch_size=2))
    assert res.candidate["target"] == "trt" and res.candidate["precision"] == "int8"
    assert res.reference["path"] == str(tiny_onnx.resolve())
