"""The images and the VM recipe are lint-clean (no Docker engine here to build them)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "dockerfile", sorted((ROOT / "images").glob("*/Dockerfile")), ids=lambda p: p.parent.name
)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    proc = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operator_image_is_multi_stage_and_non_root() -> None:
    text = (ROOT / "images/operator/Dockerfile").read_text()
    assert text.count("FROM ") == 2
    assert "USER 10001:10001" in text


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted((ROOT / "images").rglob("*.sh"))
    assert scripts
    proc = subprocess.run(
        [str(BIN / "shellcheck"), *map(str, scripts)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


def test_systemd_unit_runs_the_pilot() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "images/vm/glidein-pilot.service")
    assert "glidein_operator.pilot" in unit["Service"]["ExecStart"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]


def test_images_copy_only_files_that_exist() -> None:
    for dockerfile in (ROOT / "images").glob("*/Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for src in line.split()[1:-1]:
                    assert (ROOT / src).exists(), f"{dockerfile}: {src} does not exist"
