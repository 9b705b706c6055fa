"""Real HTCondor daemons on 127.0.0.1 (see glidein_devkit.condor_pool for where
HTCondor is found). Every test here carries the ``htcondor`` marker; without HTCondor they
skip with a message naming what to install, except under CI (``CI=true``), where a missing
HTCondor is a failure: CI always runs them. A failing test's report ends with the daemons'
logs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glidein_devkit.condor_pool import (
    CondorInstall,
    CondorNotFound,
    CondorPool,
    PilotMachine,
    find_condor,
)
from tests.condor.support import Stage
from tests.support.cluster import Cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.htcondor)


@pytest.fixture(scope="session")
def condor() -> CondorInstall:
    try:
        return find_condor()
    except CondorNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the HTCondor tests: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def condor_tmp() -> Iterator[Path]:
    # Not pytest's tmp_path: its folders are mode 700, and the daemons run as 'condor'.
    folder = Path(tempfile.mkdtemp(prefix="glidein-condor-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


_LOG_SOURCES: list[object] = []


@pytest.fixture(scope="session")
def pool(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    """One user pool for the session: collector, negotiator, schedd; READ needs a token."""
    p = CondorPool(condor, condor_tmp / "pool", read_needs_auth=True)
    p.start()
    print(f"\nHTCondor pool at {p.collector} ready in {p.ready_seconds:.2f}s ({condor.origin})")
    _LOG_SOURCES.append(p)
    yield p
    _LOG_SOURCES.remove(p)
    p.stop()


def _started(p: CondorPool) -> Iterator[CondorPool]:
    p.start()
    yield p
    p.stop()


@pytest.fixture
def own_pool(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    """A pool of the test's own, READ needing a token as in the session's: for a story
    that counts what ran there, or a test that stops its daemons."""
    yield from _started(
        CondorPool(condor, condor_tmp / f"own-{time.monotonic_ns()}", read_needs_auth=True)
    )


@pytest.fixture
def open_pool(condor: CondorInstall, condor_tmp: Path) -> Iterator[CondorPool]:
    """A pool that lets anyone READ (the common case): the operator reads it whatever
    token it holds, and only the pilots' tokens are put to the test."""
    yield from _started(CondorPool(condor, condor_tmp / f"open-{time.monotonic_ns()}"))


@pytest.fixture
def stage(cluster: Cluster, namespace: str, condor: CondorInstall, condor_tmp: Path) -> Stage:
    return Stage(cluster, namespace, condor, condor_tmp)


@pytest.fixture
def machine(condor: CondorInstall, condor_tmp: Path) -> Iterator[Callable[[], PilotMachine]]:
    """Makes "VMs" (a folder, an image configuration, the real pilot); all stopped after."""
    made: list[PilotMachine] = []

    def make() -> PilotMachine:
        name = f"vm-{uuid.uuid4().hex[:8]}"
        m = PilotMachine(condor, condor_tmp / name, name)
        made.append(m)
        return m

    _LOG_SOURCES.append(made)
    yield make
    _LOG_SOURCES.remove(made)
    for m in made:
        m.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and call.when == "call":
        for source in list(_LOG_SOURCES):
            parts = source if isinstance(source, list) else [source]
            for part in parts:
                report.sections.append(
                    (f"HTCondor logs: {getattr(part, 'name', 'pool')}", part.logs())
                )
    return report
