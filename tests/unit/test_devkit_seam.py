"""The product runs without the development kit (``glidein_devkit``: the test rig and the
demo, installed for development only). ``lint-imports`` holds statically that nothing of
``glidein_operator`` imports it; here, at run time: every module imports with the kit
and the test libraries made unimportable, the runtime's default pools are the real ones,
and the commands that need the kit say how to install it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from glidein_operator import cli
from glidein_operator.condor.isolated import IsolatedPool
from glidein_operator.controller import runtime

MISSING = "install the development kit: make install (pip install -e devkit)"

# In a fresh interpreter: the kit, moto and pytest cannot be imported; every module of the
# product is imported (not the __main__ modules, which run a command).
WITHOUT_THE_KIT = """
import importlib, importlib.abc, pkgutil, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("glidein_devkit", "moto", "pytest", "hypothesis"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
        return None

sys.meta_path.insert(0, Blocked())
import glidein_operator
names = [
    m.name
    for m in pkgutil.walk_packages(glidein_operator.__path__, "glidein_operator.")
    if not m.name.endswith("__main__")
]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_product_module_imports_without_the_kit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_KIT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 50


@pytest.mark.parametrize(
    "args", [["demo"], ["controlplane", "build"], ["controlplane", "up"]], ids=" ".join
)
def test_commands_of_the_kit_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    real = importlib.import_module

    def without_the_kit(name: str, package: str | None = None) -> Any:
        if name.split(".")[0] == "glidein_devkit":
            raise ModuleNotFoundError(f"No module named {name!r}", name="glidein_devkit")
        return real(name, package)

    monkeypatch.setattr(cli.importlib, "import_module", without_the_kit)
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 2
    assert MISSING in result.output


def test_a_broken_kit_is_not_reported_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, package: str | None = None) -> Any:
        raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    result = CliRunner().invoke(cli.app, ["demo"])
    assert isinstance(result.exception, ModuleNotFoundError)
    assert MISSING not in result.output


def test_the_runtime_reads_real_pools_unless_given_a_factory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runtime, "RUNTIME", None)
    monkeypatch.setenv("GLIDEIN_CREDENTIAL_DIR", str(tmp_path))
    monkeypatch.setenv("GLIDEIN_POOL_URL", "http://127.0.0.1:9")  # the kit's option, not ours
    made = runtime.get()
    assert "pool_url" not in runtime.Settings.model_fields
    pool = made.pool_factory("cm.example.org:9618", None)
    assert isinstance(pool, IsolatedPool)
    assert pool.collector_address == "cm.example.org:9618"
