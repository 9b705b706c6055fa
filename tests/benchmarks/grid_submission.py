"""Real HTCondor figures for grid pilots: how fast the operator's grid driver submits
batches of pilots to a submitting schedd (each a spooled cluster: bootstrap, zipapp,
payload), and how fast that schedd's gridmanager hands them to the site (HTCondor-C,
IDTOKENS), in pilots per minute.

    .venv/bin/python -m tests.benchmarks.grid_submission [--batches 4] [--per-batch 10]

The site's startd takes no job (START = False): this measures submission, not how fast
a site runs pilots (tests/condor/test_story_grid.py prints the time from a user job's
submission to it running through a grid pilot). Every daemon binds 127.0.0.1; the run
stops them at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from glidein_devkit.condor_pool import find_condor
from glidein_devkit.grid_site import Site, Submitter, grid_settings, place_tokens
from glidein_operator.api.cloudentry import GridSettings, GridSubmitter
from glidein_operator.clouds.grid import GridDriver
from glidein_operator.condor.grid import GridSchedd, HTCondorGridSchedd
from glidein_operator.condor.htcondor import HTCondorPool
from glidein_operator.credentials import idtokens
from glidein_operator.ground import LaunchBatch, Shape


class LocalSubmitters:
    """The operator's link to the submitting schedd (controller/gridlink.py) without the
    Kubernetes parts: the token minted from the schedd's key, the credential placed as
    the chart's sync would."""

    def __init__(self, submitter: Submitter, token_dir: Path) -> None:
        self.submitter = submitter
        self.token_dir = token_dir
        self.published: dict[str, bytes] = {}
        self._schedd: GridSchedd | None = None

    def schedd(self, submitter: GridSubmitter) -> GridSchedd:
        if self._schedd is None:
            token = idtokens.mint(
                self.submitter.signing_key(),
                identity=f"{submitter.user}@{self.submitter.uid_domain}",
                issuer=self.submitter.trust_domain,
                lifetime=3600,
                now=int(time.time()),
                scope="condor:/READ condor:/WRITE",
            )
            pool = HTCondorPool(submitter.collector, token, self.token_dir)
            self._schedd = HTCondorGridSchedd(pool.schedd(submitter.schedd), submitter.schedd)
        return self._schedd

    def publish(self, name: str, content: bytes) -> None:
        self.published[name] = content
        place_tokens(self.submitter.token_dir, self.published, self.submitter.user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--per-batch", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    condor = find_condor()
    work = Path(tempfile.mkdtemp(prefix="glidein-grid-bench-"))
    work.chmod(0o755)
    submitter = Submitter(condor, work / "submit")
    site = Site(condor, work / "site", extra_config="START = False\n")
    try:
        t0 = time.monotonic()
        submitter.start()
        site.start()
        print(f"submitter and site ready in {time.monotonic() - t0:.1f}s ({condor.origin})")
        settings = GridSettings.model_validate(grid_settings(site, submitter, "unused"))
        assert settings.submitter is not None
        submitters = LocalSubmitters(submitter, work / "operator-tokens")
        driver = GridDriver(
            "bench",
            settings,
            submitter=settings.submitter,
            submitters=submitters,
            operator_id="grid-bench",
            workdir=work / "operator",
            credential=site.entrypoint_token(submitter.user).encode(),
        )
        shape = Shape("1core", 1, 512, 1)
        calls: list[float] = []
        start = time.monotonic()
        for i in range(args.batches):
            batch = LaunchBatch(
                key=f"bench-{i}",
                request_uid="bench",
                request="bench/bench",
                entry="bench",
                shape=shape,
                count=args.per_batch,
                image_id=None,
                user_data=b"payload",
            )
            t = time.monotonic()
            driver.launch(batch)
            calls.append(time.monotonic() - t)
        submitted = time.monotonic() - start
        total = args.batches * args.per_batch
        at_site: float | None = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            states = [p.raw_state for p in driver.list_pilots()]
            if sum(s.startswith("Idle at the site") for s in states) == total:
                at_site = time.monotonic() - start
                break
            time.sleep(0.5)
        print(
            f"submitted {total} pilots in {args.batches} batches of {args.per_batch}: "
            f"{submitted:.2f}s (launch call median {statistics.median(calls):.2f}s, "
            f"max {max(calls):.2f}s; {total / submitted * 60:.0f} pilots/min to the "
            "submitting schedd)"
        )
        if at_site is None:
            print(f"not all at the site within {args.timeout:.0f}s")
        else:
            print(
                f"all {total} at the site (GridJobId, GridJobStatus IDLE) {at_site:.1f}s after "
                f"the first submit: {total / at_site * 60:.0f} pilots/min to the site"
            )
        driver.terminate(driver.list_pilots())
    finally:
        site.stop()
        submitter.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
