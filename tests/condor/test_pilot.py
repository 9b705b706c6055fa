"""The real ``glidein-pilot`` on a "VM" (a folder and its processes on this host) joins
the real pool with the token the operator minted, advertises what the planner matched
on, runs a real job, and powers the machine off when idle."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import classad2
import pytest

from glidein_devkit.condor_pool import CondorPool, PilotMachine, free_port, job
from glidein_operator.api.objects import parse
from glidein_operator.condor.htcondor import HTCondorPool
from glidein_operator.condor.pilots import RegisteredPilot, SlotState
from glidein_operator.condor.reader import PoolReader
from glidein_operator.credentials import payloads
from glidein_operator.pilot.payload import LIMITS, encode
from glidein_operator.provisioning.matching import STARTD_OWN, machine_ad
from tests.condor.support import eventually, operator_token
from tests.malformed_cases import example

ENTRY = "aws-us-east-1"
ITYPE = "m5.xlarge"
# The startd measures these on the machine (and sizes the slot to the allocation); the
# planner's figures for them are the instance type's.
MEASURED = STARTD_OWN


def _payload(pool: CondorPool, batch: str, **pilot: Any) -> tuple[bytes, Any, Any, Any]:
    doc = example("GlideinRequest", "cms-production")
    doc["spec"]["collector"] = pool.collector
    doc["spec"]["pilot"].update({"idleTimeout": "20s", "lifetime": "4h", **pilot})
    request = parse(doc).spec
    entry = parse(example("CloudEntry", ENTRY)).spec
    image = parse(example("VMImage", "glidein-el9-2026.11")).spec
    itype = entry.instance_type(ITYPE)
    assert itype is not None
    payload = payloads.build(
        request="cms/cms-production",
        request_uid="uid-real",
        spec=request,
        entry=ENTRY,
        entry_spec=entry,
        itype=itype,
        image=image,
        batch=batch,
        pool_signing_key=pool.signing_key(),
        premade_token=None,
        now=int(time.time()),
    )
    return encode(payload, LIMITS["ec2"]), entry, itype, image


def _slot(pool: CondorPool, pilot_id: str, *attrs: str) -> list[str]:
    out = pool.tool(
        "condor_status", "-const", f'GlideinPilotId == "{pilot_id}"', "-af:t", *attrs
    ).stdout
    return out.strip().split("\t") if out.strip() else []


SHAPES = {
    "partitionable": {"partitionable": True},
    "static": {"partitionable": False},
    # Behind NAT: registered through the collector's CCB, one inbound port. The shared
    # port's own port is a free one here (9618 is the collector's on a real node).
    "ccb-shared-port": {"ccb": True, "sharedPort": True},
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_pilot_joins_runs_a_job_and_powers_off(
    pool: CondorPool, machine: Callable[[], PilotMachine], shape: str
) -> None:
    m = machine()
    batch = f"{m.name}-b1"
    pilot_id = f"{batch}-0"
    pilot = dict(SHAPES[shape])
    if pilot.get("sharedPort"):
        pilot["extraConfig"] = {"SHARED_PORT_PORT": str(free_port())}
    user_data, entry, itype, image = _payload(pool, batch, **pilot)
    t0 = time.monotonic()
    m.boot(user_data, pilot_id=pilot_id, extra_args=["--interval", "2"])

    seen = eventually(
        lambda: _slot(pool, pilot_id, "AuthenticatedIdentity", "AuthenticationMethod"),
        90,
        "the pilot's slot in the collector",
    )
    registered_after = time.monotonic() - t0
    print(f"\npilot registered {registered_after:.1f}s after boot")
    assert seen == [f"glidein-{batch}@127.0.0.1", "IDTOKENS"]

    # What the planner matched on is what the real startd advertises.
    planned = machine_ad(ENTRY, entry, itype, image)
    names = sorted(k for k in planned if k not in MEASURED)
    ads = pool.tool(
        "condor_status", "-const", f'GlideinPilotId == "{pilot_id}"', "-l"
    ).stdout.split("\n\n")[0]
    real = classad2.parseOne(ads)
    for name in names:
        assert name in real, f"the pilot does not advertise {name}"
        assert real.eval(name) == planned.eval(name), name
    for name in (
        "GLIDEIN_Factory",
        "GLIDEIN_Name",
        "GLIDEIN_Entry_Name",
        "GLIDEIN_Site",
        "GLIDEIN_ResourceName",
        "GLIDEIN_CPUS",
        "GLIDEIN_MaxMemMBs",
        "GLIDEIN_ToRetire",
        "GLIDEIN_ToDie",
    ):
        assert name in real, f"the pilot does not advertise {name}"
    assert real.eval("GLIDEIN_Entry_Name") == ENTRY
    assert real.eval("HAS_CVMFS") is True
    address = str(real.eval("MyAddress"))
    if shape == "ccb-shared-port":
        assert "CCBID=" in address, address
        assert "sock=" in address, address
    else:
        assert "CCBID=" not in address, address

    # The example job's own Requirements (it needs HAS_CVMFS) match the real pilot.
    cluster = pool.submit(
        job(
            arguments="12",
            requirements=f'TARGET.HAS_CVMFS =?= true && TARGET.GlideinPilotId == "{pilot_id}"',
            extra=["job_machine_attrs = GLIDEIN_Entry_Name GlideinPilotId"],
        )
    )

    # While it runs, the operator's reader sees the pilot once, claimed.
    client = HTCondorPool(pool.collector, operator_token(pool))

    def claimed() -> list[RegisteredPilot] | None:
        reader = PoolReader(client)
        mine = [p for p in asyncio.run(reader.pilots(time.time())) if p.pilot_id == pilot_id]
        return mine if mine and mine[0].state is SlotState.CLAIMED else None

    seen_claimed = eventually(claimed, 60, "the pilot claimed by the job")
    assert len(seen_claimed) == 1
    assert seen_claimed[0].entry == ENTRY

    def finished() -> list[str] | None:
        out = pool.tool(
            "condor_history",
            str(cluster),
            "-af",
            "JobStatus",
            "ExitCode",
            "MachineAttrGLIDEIN_Entry_Name0",
            "MachineAttrGlideinPilotId0",
        ).stdout.split()
        return out or None

    done = eventually(finished, 120, "the job in the history")
    assert done == ["4", "0", ENTRY, pilot_id]

    # Idle for idleTimeout (20 s): the pilot leaves and powers the machine off.
    eventually(lambda: m.powered_off, 120, "the pilot's power-off")
    lines = m.boot_log.read_text()
    assert "shutting down" in lines
    m.stop()
    eventually(lambda: not _slot(pool, pilot_id, "Name"), 60, "the slot leaving the collector")


def test_a_pilot_without_htcondor_says_fatal_and_exits_2(
    pool: CondorPool, machine: Callable[[], PilotMachine]
) -> None:
    m = machine()
    user_data, *_ = _payload(pool, f"{m.name}-b2")
    m.prepare()
    (m.folder / "user-data").write_bytes(user_data)
    env = m.env({"GLIDEIN_PAYLOAD_FILE": str(m.folder / "user-data"), "PATH": "/usr/bin:/bin"})
    pilot = subprocess.run(
        [
            m.pilot_command(),
            "--config-dir",
            str(m.config_dir),
            "--token-dir",
            str(m.token_dir),
            "--log",
            str(m.boot_log),
            "--shutdown-command",
            str(m.shutdown_script()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert pilot.returncode == 2
    assert "Traceback" not in pilot.stderr
    assert "FATAL" in m.boot_log.read_text()
    assert "condor_master" in m.boot_log.read_text()


def test_a_pilot_at_its_lifetime_retires_lets_its_job_finish_and_goes(
    pool: CondorPool, machine: Callable[[], PilotMachine]
) -> None:
    """Lifetime 75 s, retiring 50 s before the end: the 30 s job started before
    GLIDEIN_ToRetire runs to its end (no eviction), a job queued after it never starts
    there, and the pilot powers off when its job is done, before GLIDEIN_ToDie."""
    m = machine()
    batch = f"{m.name}-b3"
    pilot_id = f"{batch}-0"
    user_data, *_ = _payload(pool, batch, lifetime="75s", retireBeforeEnd="50s", idleTimeout="60s")
    mine = f'TARGET.GlideinPilotId == "{pilot_id}"'
    first = pool.submit(job(arguments="30", requirements=mine))
    m.boot(user_data, pilot_id=pilot_id, extra_args=["--interval", "1"])
    to_retire, to_die = (
        int(v)
        for v in eventually(
            lambda: _slot(pool, pilot_id, "GLIDEIN_ToRetire", "GLIDEIN_ToDie"),
            60,
            "the pilot's slot in the collector",
        )
    )
    assert to_die - to_retire == 50

    def started() -> bool:
        out = pool.tool("condor_q", str(first), "-af", "JobStatus").stdout.split()
        return out == ["2"]

    eventually(started, max(1.0, to_retire - time.time()), "the first job running before retiring")

    # Retiring: the slot takes no new job, and the operator no longer counts it as capacity.
    time.sleep(max(0.0, to_retire - time.time()) + 2)
    late = pool.submit(job(arguments="1", requirements=mine))
    client = HTCondorPool(pool.collector, operator_token(pool))
    seen = [
        p for p in asyncio.run(PoolReader(client).pilots(time.time())) if p.pilot_id == pilot_id
    ]
    assert [p.state for p in seen] == [SlotState.RETIRING]

    history = eventually(
        lambda: (
            pool.tool(
                "condor_history", str(first), "-af", "JobStatus", "ExitCode", "NumJobStarts"
            ).stdout.split()
            or None
        ),
        to_die - time.time() + 30,
        "the first job in the history",
    )
    # Completed, exit 0, started once: it was never evicted and restarted.
    assert history == ["4", "0", "1"]
    eventually(lambda: m.powered_off, to_die - time.time() + 30, "the pilot's power-off")
    powered_off_at = (m.folder / "poweroff").stat().st_mtime
    assert powered_off_at < to_die, "the pilot waited for its hard lifetime, not its job"
    log = m.boot_log.read_text()
    assert "retiring before the end of the lifetime" in log
    assert "shutting down: retired: no job left" in log
    m.stop()
    # The job queued after GLIDEIN_ToRetire never ran on the retiring pilot.
    late_state = pool.tool("condor_q", str(late), "-af", "JobStatus", "NumJobStarts").stdout
    assert late_state.split() == ["1", "0"], late_state
    pool.tool("condor_rm", str(late))
