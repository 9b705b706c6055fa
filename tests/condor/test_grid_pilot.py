"""A grid pilot on a real batch slot: the bootstrap and the zipapp run as a plain vanilla
job of a "site" pool (its own trust domain, standing for the batch system behind a CE),
bring HTCondor with them (the tarball, fetched by the curl plugin from a URL), join the
user pool with the payload's token, run a user job on a slot sized to the batch slot,
and go when idle, leaving nothing behind."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from glidein_devkit.condor_pool import REPO, CondorInstall, CondorPool, job
from glidein_operator.api.objects import parse
from glidein_operator.credentials import payloads
from glidein_operator.pilot import bundle
from glidein_operator.pilot.payload import LIMITS, encode
from tests.condor.support import eventually
from tests.malformed_cases import example

# The site's machine is bigger than the batch slot the pilot job asks for.
SITE_CPUS, SITE_MEMORY = 4, 4096
SLOT_CPUS, SLOT_MEMORY = 1, 512
IDLE_TIMEOUT = 15
# In the test only: the pilot's daemons on loopback like every other daemon here (the
# product's bootstrap binds where HTCondor's defaults say), and quick to update.
LOOPBACK = {
    "NETWORK_INTERFACE": "127.0.0.1",
    "BIND_ALL_INTERFACES": "False",
    "ENABLE_IPV6": "False",
    "UPDATE_INTERVAL": "5",
}


def _tarball() -> Path:
    folder = Path(os.environ.get("GLIDEIN_CONDOR_TARBALL_DIR", REPO.parent / "shared/htcondor"))
    found = sorted(folder.glob("htcondor-*.tar.gz")) if folder.is_dir() else []
    if not found:
        pytest.skip(f"no HTCondor tarball in {folder}: a grid pilot brings one with it")
    return found[-1]


@pytest.fixture
def tarball_url() -> Iterator[str]:
    """The HTCondor tarball over HTTP on 127.0.0.1, as a site's pilot fetches it."""
    tarball = _tarball()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tarball.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{tarball.name}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def site(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    p = CondorPool(
        condor,
        condor_tmp / f"site-{time.monotonic_ns()}",
        with_startd=True,
        cpus=SITE_CPUS,
        memory_mb=SITE_MEMORY,
        uid_domain="site.test",
    )
    p.start()
    yield p
    p.stop()


def _payload(pool: CondorPool, batch: str) -> bytes:
    doc = example("GlideinRequest", "cms-production")
    doc["spec"]["collector"] = pool.collector
    doc["spec"]["pilot"].update(
        {"idleTimeout": f"{IDLE_TIMEOUT}s", "lifetime": "4h", "extraConfig": LOOPBACK}
    )
    entry = parse(example("CloudEntry", "aws-us-east-1")).spec
    itype = entry.instance_type("m5.xlarge")
    assert itype is not None
    payload = payloads.build(
        request="cms/cms-production",
        request_uid="uid-grid",
        spec=parse(doc).spec,
        entry="aws-us-east-1",
        entry_spec=entry,
        itype=itype,
        image=None,
        batch=batch,
        pool_signing_key=pool.signing_key(),
        premade_token=None,
        now=int(time.time()),
    )
    return encode(payload, LIMITS["grid"])


def _ours(execute: Path) -> list[str]:
    """Processes running in (or naming) the site's execute dir, where pilots live."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd.startswith(str(execute)) or str(execute) in cmdline:
            found.append(f"{proc.name} {cmdline}")
    return found


def _slot(pool: CondorPool, pilot_id: str, *attrs: str) -> list[str]:
    out = pool.tool(
        "condor_status", "-const", f'GlideinPilotId == "{pilot_id}"', "-af:t", *attrs
    ).stdout
    return out.strip().split("\t") if out.strip() else []


def test_a_grid_pilot_brings_htcondor_joins_runs_a_job_and_goes(
    pool: CondorPool, site: CondorPool, tarball_url: str
) -> None:
    t0 = time.monotonic()
    batch = f"grid-{uuid.uuid4().hex[:8]}"
    pilot_id = f"{batch}-0"
    submit = site.workdir / "factory"
    files = bundle.write_grid_pilot(submit)
    (submit / bundle.PAYLOAD_NAME).write_bytes(_payload(pool, batch))
    (submit / bundle.PAYLOAD_NAME).chmod(0o644)
    tarball_name = tarball_url.rsplit("/", 1)[1]
    cluster = site.submit(
        job(
            executable=str(files.executable),
            arguments=tarball_name,
            cpus=SLOT_CPUS,
            memory_mb=SLOT_MEMORY,
            extra=[
                "transfer_input_files = "
                f"{files.zipapp}, {submit / bundle.PAYLOAD_NAME}, {tarball_url}",
                f'environment = "GLIDEIN_PILOT_ID={pilot_id} GLIDEIN_PILOT_INTERVAL=2"',
                "output = pilot.out",
                "error = pilot.err",
            ],
        ),
        directory=submit,
    )
    stdout = submit / "pilot.out"
    try:
        cpus, memory, total = (
            int(float(v))
            for v in eventually(
                lambda: _slot(pool, pilot_id, "Cpus", "Memory", "TotalCpus"),
                60,
                "the grid pilot's slot in the user pool",
            )
        )
        registered = time.monotonic() - t0
        # The batch slot's size, not the site machine's (nor this host's).
        assert (cpus, memory, total) == (SLOT_CPUS, SLOT_MEMORY, SLOT_CPUS)

        user_job = pool.submit(
            job(
                arguments="3",
                requirements=f'TARGET.GlideinPilotId == "{pilot_id}"',
                extra=["job_machine_attrs = GlideinPilotId"],
            )
        )
        done = eventually(
            lambda: (
                pool.tool(
                    "condor_history",
                    str(user_job),
                    "-af",
                    "JobStatus",
                    "ExitCode",
                    "MachineAttrGlideinPilotId0",
                ).stdout.split()
                or None
            ),
            60,
            "the user job in the user pool's history",
        )
        assert done == ["4", "0", pilot_id]
        ran = time.monotonic() - t0

        # Idle for IDLE_TIMEOUT: the pilot stops its HTCondor and exits; the site's job
        # completes, its stdout back in the submit dir.
        site_job = eventually(
            lambda: (
                site.tool(
                    "condor_history", str(cluster), "-af", "JobStatus", "ExitCode"
                ).stdout.split()
                or None
            ),
            90,
            "the pilot job in the site's history",
        )
        ended = time.monotonic() - t0
        assert site_job == ["4", "0"]
        out = stdout.read_text()
        tails = bundle.log_tails(out)
        assert {"glidein-pilot.log", "MasterLog", "StartLog"} <= set(tails), out
        assert any(name.startswith("StarterLog") for name in tails), sorted(tails)
        assert "idle for" in tails["glidein-pilot.log"]
        # The pilot stopped its own daemons; the bootstrap found nothing to kill.
        assert "no HTCondor process of this pilot left" in out, out
        assert not _ours(site.local / "execute")
        eventually(lambda: not _slot(pool, pilot_id, "Name"), 30, "the slot leaving")
        print(
            f"\ngrid pilot: registered {registered:.1f}s after submit, user job done at "
            f"{ran:.1f}s, pilot job ended at {ended:.1f}s; back from the site: "
            + ", ".join(sorted(p.name for p in submit.iterdir()))
            + "\n"
            + tails["glidein-pilot.log"]
        )
    except BaseException:
        print(stdout.read_text() if stdout.exists() else "(no pilot.out)")
        err = submit / "pilot.err"
        print(err.read_text() if err.exists() else "(no pilot.err)")
        print(site.tool("condor_q", "-l", str(cluster), check=False).stdout[-3000:])
        print(site.logs())
        raise
