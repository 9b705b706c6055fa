"""The grid pilot's files: the zipapp holds the pilot and nothing else, runs, and is the
same bytes every time; the bootstrap refuses clearly where the worker node lacks what it
needs, and frames the logs it prints so that they can be cut back out."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from glidein_operator.pilot import bundle, lifecycle, slot
from glidein_operator.pilot import main as pilot_main
from glidein_operator.pilot.payload import Payload

PILOT = Path(bundle.__file__).parent
BOOTSTRAP = PILOT / bundle.BOOTSTRAP_NAME
# What the bootstrap runs besides shell builtins, found on this host for a PATH of the
# test's making (python3 and condor_master left out, or faked).
TOOLS = ("date", "tail", "tr", "grep", "readlink", "sed", "env", "mkdir", "rm", "tar")
TOOLS += ("gzip", "cat", "chmod", "dirname", "sleep")


def test_the_zipapp_holds_the_pilot_and_nothing_else(tmp_path: Path) -> None:
    files = bundle.write_grid_pilot(tmp_path)
    assert files.zipapp == tmp_path / bundle.ZIPAPP_NAME
    with zipfile.ZipFile(files.zipapp) as z:
        names = set(z.namelist())
    pilot = {f"glidein_operator/pilot/{p.name}" for p in PILOT.glob("*.py")}
    assert names == {"__main__.py", "glidein_operator/__init__.py", *pilot}


def test_the_zipapp_runs(tmp_path: Path) -> None:
    files = bundle.write_grid_pilot(tmp_path)
    env = {"PATH": os.environ["PATH"], "PYTHONNOUSERSITE": "1"}
    out = subprocess.run(
        [sys.executable, "-I", str(files.zipapp), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert out.startswith("usage: glidein-pilot")
    assert "--machine-ad" in out
    assert "--job-ad" in out


def test_the_zipapp_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    first = bundle.write_grid_pilot(tmp_path / "a")
    second = bundle.write_grid_pilot(tmp_path / "b")
    assert first.zipapp.read_bytes() == second.zipapp.read_bytes()
    with zipfile.ZipFile(first.zipapp) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_the_executable_is_the_bootstrap(tmp_path: Path) -> None:
    files = bundle.write_grid_pilot(tmp_path)
    assert files.executable.read_bytes() == BOOTSTRAP.read_bytes()
    assert files.executable.stat().st_mode & 0o777 == 0o755


def test_the_bootstrap_passes_shellcheck() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    proc = subprocess.run([str(shellcheck), str(BOOTSTRAP)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_bootstrap_and_bundle_agree_on_the_minimum_python() -> None:
    text = BOOTSTRAP.read_text()
    major = re.search(r"^MIN_PYTHON_MAJOR=(\d+)$", text, re.M)
    minor = re.search(r"^MIN_PYTHON_MINOR=(\d+)$", text, re.M)
    assert major
    assert minor
    assert (int(major.group(1)), int(minor.group(1))) == bundle.MIN_PYTHON
    # The pilot's own code parses at that version (the runtime need, enum.StrEnum, is 3.11).
    for source in PILOT.glob("*.py"):
        ast.parse(source.read_text(), feature_version=bundle.MIN_PYTHON)


# --- the bootstrap on a worker node that lacks something ----------------------------------


def _bin(tmp_path: Path, **fakes: str) -> Path:
    """A folder for PATH: this host's TOOLS, and scripts named as ``fakes`` says."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    for name, script in fakes.items():
        (folder / name).write_text("#!/bin/sh\n" + script)
        (folder / name).chmod(0o755)
    return folder


def _scratch(tmp_path: Path, payload: bytes | None = b"not a payload\n") -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    bundle.write_grid_pilot(scratch)
    if payload is not None:
        (scratch / bundle.PAYLOAD_NAME).write_bytes(payload)
    return scratch


def _bootstrap(
    scratch: Path, path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(scratch / bundle.BOOTSTRAP_NAME), *args],
        env={"PATH": str(path), "_CONDOR_SCRATCH_DIR": str(scratch), **(env or {})},
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _python(folder: Path) -> None:
    (folder / "python3").symlink_to(sys.executable)


def test_without_python3_the_bootstrap_refuses(tmp_path: Path) -> None:
    done = _bootstrap(_scratch(tmp_path), _bin(tmp_path), "-")
    assert done.returncode == 2
    assert "FATAL: no Python 3.11 or newer" in done.stdout
    assert "the pilot needs Python >= 3.11" in done.stderr
    assert "found: none" in done.stdout


def test_with_too_old_a_python_the_bootstrap_refuses_naming_it(tmp_path: Path) -> None:
    old = 'case "$2" in *print*) echo 3.6; exit 0 ;; esac\nexit 1\n'
    done = _bootstrap(_scratch(tmp_path), _bin(tmp_path, python3=old), "-")
    assert done.returncode == 2
    assert "FATAL: no Python 3.11 or newer" in done.stdout
    assert "python3 (3.6)" in done.stdout


def test_without_htcondor_the_bootstrap_refuses(tmp_path: Path) -> None:
    scratch = _scratch(tmp_path)
    path = _bin(tmp_path)
    _python(path)
    done = _bootstrap(scratch, path, "-")
    assert done.returncode == 2
    assert "FATAL: no HTCondor: condor_master is not on PATH" in done.stdout
    assert "argument 1 is '-'" in done.stdout
    missing = _bootstrap(scratch, path, "htcondor-25.14.0.tar.gz")
    assert missing.returncode == 2
    assert f"the tarball {scratch}/htcondor-25.14.0.tar.gz is not in the scratch dir" in (
        missing.stdout
    )


def test_without_a_payload_the_bootstrap_refuses_before_any_metadata_service(
    tmp_path: Path,
) -> None:
    path = _bin(tmp_path)
    _python(path)
    done = _bootstrap(_scratch(tmp_path, payload=None), path, "-")
    assert done.returncode == 2
    assert f"FATAL: no payload: {bundle.PAYLOAD_NAME} is not in the scratch dir" in done.stdout


def test_the_bootstrap_frames_the_pilots_log_and_exits_with_its_code(tmp_path: Path) -> None:
    """HTCondor "on PATH" (a stand-in the pilot never reaches): the pilot refuses the
    payload, and its log comes back framed on stdout."""
    scratch = _scratch(tmp_path)
    path = _bin(tmp_path, condor_master="exit 1\n")
    _python(path)
    done = _bootstrap(scratch, path, "-", env={"GLIDEIN_PILOT_ID": "b1-0"})
    assert done.returncode == 2, done.stdout + done.stderr
    tails = bundle.log_tails(done.stdout)
    assert list(tails) == ["glidein-pilot.log"]
    assert "FATAL: not a glidein payload" in tails["glidein-pilot.log"]
    assert "no HTCondor process of this pilot left" in done.stdout
    config = (scratch / "condor_config").read_text()
    assert f"LOCAL_DIR = {scratch}/condor" in config
    assert "MASTER_NAME = glidein-b1-0" in config
    assert not re.search(r"^CONDOR_IDS", config, re.M)
    # Nothing but the scratch dir was written: the bootstrap's files are all in there.
    assert {p.name for p in tmp_path.iterdir()} == {"bin", "scratch"}


def test_log_tails_cut_the_frames_back_out() -> None:
    begin, end = bundle.LOG_TAIL_BEGIN, bundle.LOG_TAIL_END
    text = "\n".join(
        [
            "before",
            begin.format(name="MasterLog"),
            "a line",
            "==== not a frame ====",
            end.format(name="MasterLog"),
            "between",
            begin.format(name="StarterLog.slot1_1"),
            "cut short",
        ]
    )
    assert bundle.log_tails(text) == {
        "MasterLog": "a line\n==== not a frame ====",
        "StarterLog.slot1_1": "cut short",
    }
    assert bundle.log_tails("nothing framed") == {}


def test_the_frame_is_what_the_bootstrap_prints() -> None:
    text = BOOTSTRAP.read_text()
    assert "printf '" + bundle.LOG_TAIL_BEGIN.replace("{name}", "%s") + "\\n'" in text
    assert "printf '" + bundle.LOG_TAIL_END.replace("{name}", "%s") + "\\n'" in text


# --- the pilot's end on a batch slot ------------------------------------------------------


def _supervisor(
    tmp_path: Path, slots: str, master: list[int | None], log: list[str]
) -> lifecycle.Supervisor:
    address = tmp_path / "startd_address"
    address.write_text("<127.0.0.1:40000>\n")

    def runner(cmd: Sequence[str]) -> str:
        return slots if cmd[0] == "condor_status" else ""

    payload = Payload(
        batch="b1",
        request="ns/r",
        request_uid="uid",
        entry="e",
        site="S",
        collector="127.0.0.1:9618",
        token="a.b.c",
        not_after=10**10,
        lifetime=100_000,
        idle_timeout=20,
        retire_before_end=1000,
    )
    return lifecycle.Supervisor(
        payload,
        lifecycle.State(boot=0, idle_since=None),
        runner=runner,
        log=log.append,
        shutdown_command=("true",),
        address_file=address,
        startd_log=tmp_path / "StartLog",
        master_exit=lambda: master[0],
    )


def test_an_idle_pilot_whose_startd_left_first_ends_in_order(tmp_path: Path) -> None:
    """STARTD_NOCLAIM_SHUTDOWN may beat the pilot's own idle timeout by a look: the
    startd goes, its master exits 0, and that is the idle end, not a failure (the grid
    job's exit code is the pilot's)."""
    master: list[int | None] = [None]
    log: list[str] = []
    sup = _supervisor(tmp_path, "Unclaimed\n", master, log)
    assert sup.tick(10) is lifecycle.Action.NONE
    master[0] = 0
    assert sup.tick(28) is lifecycle.Action.SHUTDOWN
    assert not sup.fatal
    assert sup.powered_off
    assert log[-1].startswith("shutting down: idle for 18s: the startd left by itself")


def test_a_master_that_exits_under_a_running_job_is_a_failure(tmp_path: Path) -> None:
    master: list[int | None] = [None]
    log: list[str] = []
    sup = _supervisor(tmp_path, "Unclaimed\nClaimed\n", master, log)
    assert sup.tick(10) is lifecycle.Action.NONE
    master[0] = 0
    assert sup.tick(28) is lifecycle.Action.SHUTDOWN
    assert sup.fatal
    assert log[-1] == "FATAL: condor_master exited (status 0); shutting down"


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ("exec sleep 30", ["fast shutdown"]),
        ("trap '' QUIT; sleep 30 & wait; wait", ["fast shutdown", "killed"]),
    ],
)
def test_the_pilot_leaves_no_condor_master_behind(script: str, said: list[str]) -> None:
    """A master that does not go after condor_off gets SIGQUIT, then SIGKILL."""
    log: list[str] = []
    master = subprocess.Popen(["/bin/sh", "-c", script])
    pilot_main.stop_master(master, log.append, 0.3)
    assert master.poll() is not None
    assert [next(w for w in said if w in line) for line in log] == said


def test_the_job_ad_stands_in_for_what_the_machine_ad_lacks(tmp_path: Path) -> None:
    """As HTCondor 25.14 writes them: the dynamic slot's Cpus and Memory in .machine.ad
    (TotalCpus, TotalMemory are the machine's), RequestCpus and RequestMemory in .job.ad."""
    machine, job = tmp_path / ".machine.ad", tmp_path / ".job.ad"
    machine.write_text("TotalCpus = 4.0\nCpus = 1\nTotalMemory = 4096\nMemory = 512\n")
    job.write_text("RequestCpus = 2\nRequestMemory = 1024\nRequestDisk = 10240\n")
    assert slot.batch_slot(machine, job) == slot.Limit("batch slot", 1, 512)
    machine.write_text('Name = "slot1_1@wn"\nTotalCpus = 4.0\n')
    assert slot.batch_slot(machine, job) == slot.Limit("batch slot", 2, 1024)
    assert slot.batch_slot(None, job) == slot.Limit("batch slot", 2, 1024)
    job.write_text("RequestCpus = 1\nRequestMemory = ifThenElse(MemoryUsage =!= undefined, 1, 2)\n")
    assert slot.batch_slot(tmp_path / "absent", job) == slot.Limit("batch slot", 1, None)
