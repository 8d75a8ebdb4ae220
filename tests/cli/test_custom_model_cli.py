"""`resdeploy export package.module:factory` with the module in the current directory.

``python -m resdeploy`` finds such a module (the current directory is on ``sys.path``), the
``resdeploy`` console script did not; the CLI now makes both behave alike.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

MODULE = "resdeploy_cwd_factory_net"

FACTORY = """
import torch.nn as nn


def factory(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))
"""


def test_factory_module_in_cwd_is_found_by_the_console_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{MODULE}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    # As under the console script: neither '' nor the working directory on the path.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    assert importlib.util.find_spec(MODULE) is None  # the premise: not importable before main()

    out = tmp_path / "custom"
    code, _, stderr = run_cli("export", f"{MODULE}:factory", "--input-size", "32", "--num-classes", "5", "--opset", "17",
                              "-o", str(out), "--quiet")
    monkeypatch.delitem(sys.modules, MODULE, raising=False)

    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"][0]["shape"] == ["batch", 5]  # factory(num_classes=5) was called
    assert manifest["parity"]["passed"] is True
    # Appended, not prepended: a file in the working directory cannot shadow an installed package.
    assert sys.path[-1] == str(tmp_path) and sys.path[0] != str(tmp_path)


@pytest.mark.parametrize("body, named", [
    ("def factory(**kwargs):\n    raise SystemExit(0)\n", "factory(num_classes=5) raised SystemExit"),
    ("import sys\nsys.exit(0)\n", "importing 'resdeploy_exiting_net_{i}'"),
])
def test_factory_or_module_that_exits_is_exit_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          body: str, named: str) -> None:
    # A user's sys.exit(0) used to end `export` with exit 0 having written nothing.
    i = len(body)
    module = f"resdeploy_exiting_net_{i}"
    (tmp_path / f"{module}.py").write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    code, out, err = run_cli("export", f"{module}:factory", "--input-size", "32", "--num-classes", "5",
                             "-o", str(tmp_path / "out"), "--quiet")
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert code == 2, (out, err)
    assert named.format(i=i) in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_misfit_weights_for_a_factory_name_it_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "do not fit MOD:factory: ..." used to print a factory emoji for ":factory:" (rich's emoji codes).
    import torch

    module = "resdeploy_misfit_factory_net"
    (tmp_path / f"{module}.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    factory = importlib.import_module(module).factory
    torch.save(factory(num_classes=3).state_dict(), tmp_path / "three.pth")
    code, out, err = run_cli("export", f"{module}:factory", "--weights", str(tmp_path / "three.pth"),
                             "--num-classes", "5", "--input-size", "32", "-o", str(tmp_path / "out"), "--quiet")
    monkeypatch.delitem(sys.modules, module, raising=False)
    one_line_error(code, out, err, f"do not fit {module}:factory: ", "wrongly shaped")
    assert "\N{FACTORY}" not in err and not (tmp_path / "out").exists()
