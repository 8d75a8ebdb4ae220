"""Single-file outputs (``artifacts.commit_file``): exclusive without --force, atomic replace with it.

Real files in a temporary directory, real threads and real processes racing for one name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import run_cli

from resdeploy import artifacts
from resdeploy.errors import ResdeployError

FAST = ["--batch", "1", "--iterations", "3", "--duration", "0", "--warmup", "1"]


def test_commit_file_writes_new_and_refuses_existing(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "result.json"
    artifacts.atomic_write_json(out, {"run": 1}, force=False)
    assert json.loads(out.read_text()) == {"run": 1}
    with pytest.raises(ResdeployError) as info:
        artifacts.commit_file(out, b"second", force=False)
    assert "already exists" in str(info.value) and "--force" in str(info.value) and "\n" not in str(info.value)
    assert json.loads(out.read_text()) == {"run": 1}  # left as it is
    artifacts.commit_file(out, "replaced", force=True)
    assert out.read_text() == "replaced"
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json"]  # no temporary siblings left


def test_commit_file_refuses_a_directory_and_a_dangling_link(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ResdeployError, match="is a directory"):
        artifacts.commit_file(tmp_path / "d", b"x", force=True)
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(ResdeployError, match="already exists"):
        artifacts.commit_file(link, b"x", force=False)
    assert not (tmp_path / "nowhere.json").exists()  # not written through the link either


def test_commit_file_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = artifacts.commit_file(tmp_path / "r.json", b"{}", force=False)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_commit_file_without_hard_links_still_exclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # e.g. some network and FUSE file systems
    out = tmp_path / "r.json"
    artifacts.commit_file(out, b"first", force=False)
    with pytest.raises(ResdeployError, match="already exists"):
        artifacts.commit_file(out, b"second", force=False)
    assert out.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_threads_racing_for_one_file_one_wins_whole(tmp_path: Path) -> None:
    """Eight writers released at once: exactly one commits, the file is that writer's complete JSON."""
    out = tmp_path / "result.json"
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[object] = [None] * n
    payloads = [{"writer": i, "data": [i] * 50_000} for i in range(n)]  # ~150 kB each: not one write(2)

    def write(i: int) -> None:
        barrier.wait()
        try:
            artifacts.atomic_write_json(out, payloads[i], force=False)
            outcomes[i] = "ok"
        except ResdeployError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, o in enumerate(outcomes) if o == "ok"]
    assert len(winners) == 1
    assert all(isinstance(o, ResdeployError) and "already exists" in str(o) for o in outcomes if o != "ok")
    assert json.loads(out.read_text()) == payloads[winners[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_bench_output_that_appears_during_the_run_is_kept(tiny_onnx, tmp_path: Path,  # noqa: ANN001
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Another run writes -o while this one measures: exit 2, one line, and its file stays as it was."""
    import resdeploy.benchmark

    path, _ = tiny_onnx
    out = tmp_path / "result.json"
    real_bench = resdeploy.benchmark.bench

    def bench_then_rival_writes(*args: object, **kwargs: object) -> object:
        result = real_bench(*args, **kwargs)  # type: ignore[arg-type]
        out.write_text('{"rival": true}\n')
        return result

    monkeypatch.setattr(resdeploy.benchmark, "bench", bench_then_rival_writes)
    code, stdout, stderr = run_cli("bench", str(path), *FAST, "-o", str(out), "-q")
    assert code == 2, stderr
    assert stderr.strip().splitlines() == [
        f"error: {out} already exists (another run writing the same file?); it was left as it is and nothing "
        "was written (pass --force to replace it, or write to another file)"]
    assert json.loads(out.read_text()) == {"rival": True}
    monkeypatch.undo()

    code, _, stderr = run_cli("bench", str(path), *FAST, "-o", str(out), "-q")  # there before the run
    assert code == 2 and stderr.strip().splitlines() == [f"error: {out} already exists; pass --force to overwrite it"]
    assert json.loads(out.read_text()) == {"rival": True}
    code, _, stderr = run_cli("bench", str(path), *FAST, "-o", str(out), "-q", "--force")
    assert code == 0, stderr
    assert json.loads(out.read_text())["schema"] == "resdeploy.bench/1"


@pytest.mark.parametrize(("command", "name"), [
    (["bench", "{model}", *FAST, "-o", "{out}"], "result.json"),
    (["report", "{out}", "-o", "{out2}"], "report.html"),
    (["layers", "{model}", "--data", "synthetic", "--plot", "{out}"], "layers.png"),
    (["validate", "{model}", "--reference", "{model}", "--data", "synthetic", "--input-size", "32", "--junit", "{out}"],
     "v.xml"),
])
def test_an_existing_output_is_refused_before_any_work(tiny_onnx, tmp_path: Path, command: list[str],  # noqa: ANN001
                                                       name: str) -> None:
    """Without --force, every single-file output that is already there is one line, exit 2, before the work."""
    path, _ = tiny_onnx
    out = tmp_path / name
    out.write_text("earlier run\n")
    args = [a.format(model=path, out=out, out2=out) for a in command]
    code, stdout, stderr = run_cli(*args)
    assert code == 2 and stdout == "", stderr
    assert stderr.strip().splitlines() == [f"error: {out} already exists; pass --force to overwrite it"]
    assert out.read_text() == "earlier run\n" and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_junit_and_report_are_replaced_with_force(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    path, _ = tiny_onnx
    junit = tmp_path / "v.xml"
    junit.write_text("earlier run\n")
    code, _, stderr = run_cli("validate", str(path), "--reference", str(path), "--data", "synthetic", "--input-size",
                              "32", "--samples", "4", "--junit", str(junit), "--force", "-q")
    assert code == 0, stderr
    assert junit.read_text().startswith("<?xml")
    bench = tmp_path / "b.json"
    assert run_cli("bench", str(path), *FAST, "-o", str(bench), "-q")[0] == 0
    md = tmp_path / "r.md"
    assert run_cli("report", str(bench), "-o", str(md), "-q")[0] == 0
    code, _, stderr = run_cli("report", str(bench), "-o", str(md), "-q")  # the .md and its plot folder are there
    assert code == 2 and "already exists" in stderr
    md.unlink()  # a plot folder left without its document is an output too
    code, _, stderr = run_cli("report", str(bench), "-o", str(md), "-q")
    assert code == 2 and stderr.strip() == f"error: {tmp_path / 'r_plots'} already exists; pass --force to overwrite it"
    code, _, stderr = run_cli("report", str(bench), "-o", str(md), "-q", "--force", "--title", "again")
    assert code == 0, stderr
    assert "again" in md.read_text() and (tmp_path / "r_plots" / "throughput.png").is_file()


@pytest.mark.slow
def test_two_bench_processes_racing_for_one_output(tiny_onnx, tmp_path: Path) -> None:  # noqa: ANN001
    """Two `resdeploy bench -o same.json` processes at once: one exits 0, the other 2; one complete JSON."""
    path, _ = tiny_onnx
    out = tmp_path / "result.json"
    exe = Path(sys.executable).with_name("resdeploy")
    # --duration 1: both are past the up-front check and measuring when the first one commits
    cmd = [str(exe), "bench", str(path), "--batch", "1", "--iterations", "3", "--duration", "1", "--warmup", "1",
           "--threads", "1", "-o", str(out), "-q"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert len(loser.strip().splitlines()) == 1 and "already exists" in loser and "Traceback" not in loser
    data = json.loads(out.read_text())  # one complete JSON, the winner's
    assert data["schema"] == "resdeploy.bench/1" and len(data["runs"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
