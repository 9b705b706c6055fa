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


GRID_SUBMITTER = ROOT / "images/grid-submitter"


def test_grid_submitter_image_is_non_root_with_a_replaceable_base() -> None:
    text = (GRID_SUBMITTER / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=htcondor/submit:" in text
    assert "FROM ${BASE_IMAGE}" in text
    assert "USER 64:64" in text
    # Tools in the container (the readiness probe) read the configuration it writes.
    assert "ENV CONDOR_CONFIG=/run/condor/condor_config" in text


def test_grid_submitter_configures_a_collector_and_schedd_for_htcondor_c() -> None:
    script = (GRID_SUBMITTER / "entrypoint.sh").read_text()
    assert "DAEMON_LIST = MASTER, COLLECTOR, SCHEDD" in script  # no negotiator, no startd
    for knob in (
        "C_GAHP.SEC_TOKEN_DIRECTORY = \\$(LOCAL_DIR)/grid-tokens/\\$(USERNAME)",
        "C_GAHP_WORKER_THREAD.SEC_TOKEN_DIRECTORY = \\$(LOCAL_DIR)/grid-tokens/\\$(USERNAME)",
        "C_GAHP.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
        "SEC_TOKEN_POOL_SIGNING_KEY_FILE = $RUN_DIR/passwords.d/POOL",
        "ALLOW_WRITE = \\$(SELF_IDS), $OPERATOR_IDENTITY",
        "condor_master -f &",
        "trap stop TERM INT",
    ):
        assert knob in script, knob


def _sync(src: Path, local: Path, owner: str = "tester") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(GRID_SUBMITTER / "sync-credentials.sh"), str(src), str(local)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "GRID_TOKEN_OWNER": owner},
        check=False,
    )


def _secret_volume(path: Path, data: dict[str, str]) -> None:
    """``path`` laid out as the kubelet mounts a Secret: the keys are symlinks into a
    hidden, atomically swapped ``..data`` directory."""
    path.mkdir(exist_ok=True)
    version = path / f"..v{len(list(path.glob('..v*')))}"
    version.mkdir()
    for key, value in data.items():
        (version / key).write_text(value)
    tmp = path / "..data_tmp"
    tmp.symlink_to(version.name)
    tmp.replace(path / "..data")
    for link in path.iterdir():
        if not link.name.startswith(".."):
            link.unlink()
    for key in data:
        (path / key).symlink_to(f"..data/{key}")


def test_sync_credentials_copies_mode_600_and_prunes(tmp_path: Path) -> None:
    src, local = tmp_path / "secret", tmp_path / "local"
    _secret_volume(
        src,
        {
            "0123456789abcdef.idtoken": "eyJ.ce-token",
            "fedcba9876543210.scitoken": "eyJ.scitoken",
            "00000000000000aa.proxy": "-----BEGIN CERTIFICATE-----",
        },
    )
    proc = _sync(src, local)
    assert proc.returncode == 0, proc.stderr
    token = local / "grid-tokens/tester/0123456789abcdef.idtoken"
    scitoken = local / "grid-credentials/fedcba9876543210.scitoken"
    proxy = local / "grid-credentials/00000000000000aa.proxy"
    for path in (token, scitoken, proxy):
        assert path.is_file()
        assert not path.is_symlink()
        # HTCondor skips a token file that is not mode 600 and its reader's.
        assert path.stat().st_mode & 0o777 == 0o600
    assert token.read_text() == "eyJ.ce-token"
    assert not list(local.glob("grid-tokens/tester/.*"))  # no temporary file left behind
    # Nothing changed: nothing rewritten.
    assert _sync(src, local).stdout == ""
    # The operator rotated one key and dropped the others: they leave the submitter.
    _secret_volume(src, {"0123456789abcdef.idtoken": "eyJ.rotated"})
    assert _sync(src, local).returncode == 0
    assert token.read_text() == "eyJ.rotated"
    assert not scitoken.exists()
    assert not proxy.exists()
    # A missing Secret mount is an error, and takes nothing away from running jobs.
    proc = _sync(tmp_path / "absent", local)
    assert proc.returncode != 0
    assert token.exists()
