"""Log lines an admin can read: the object named on every line, JSON when asked, timers quiet."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from glidein_operator.controller import logs
from glidein_operator.provisioning import status as st

BODY = {
    "apiVersion": "glidein.dev/v1alpha1",
    "kind": "GlideinRequest",
    "metadata": {"name": "cms-production", "namespace": "cms", "uid": "u-1"},
}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    yield out
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def _configure(out: io.StringIO, level: str, fmt: logs.LogFormat) -> None:
    logs.configure(level, fmt)
    # kopf's handler writes to the stderr of its creation; point it at the test's stream.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and "Kopf" in type(handler).__name__:
            handler.setStream(out)


async def _handler_run() -> None:
    """What a handler does: name its object, then log through the operator's modules
    (also from a worker thread) and through kopf's per-object logger."""
    logs.about(BODY)
    logging.getLogger("glidein_operator.controller.reconcile").warning("schedd unreachable")
    await asyncio.to_thread(logging.getLogger("glidein_operator.clouds.ec2").info, "listed 3")
    kopf_logger = logging.getLogger("kopf.objects")
    kopf_logger.info("Timer 'reconcile_request' succeeded.")
    kopf_logger.info("Handler 'terminate_everything' succeeded.")


def test_text_lines_name_their_object_and_successful_timers_are_quiet(
    stream: io.StringIO,
) -> None:
    _configure(stream, "INFO", "text")
    asyncio.run(_handler_run())
    logging.getLogger("glidein_operator.controller.leader").info("outside any object")
    lines = stream.getvalue().splitlines()
    assert any("[cms/cms-production] schedd unreachable" in ln for ln in lines), lines
    assert any("[cms/cms-production] listed 3" in ln for ln in lines), lines
    assert any("Handler 'terminate_everything' succeeded." in ln for ln in lines), lines
    assert not any("Timer" in ln for ln in lines), lines
    assert any(ln.endswith("outside any object") and "[cms" not in ln for ln in lines), lines


def test_debug_shows_the_timers(stream: io.StringIO) -> None:
    _configure(stream, "DEBUG", "text")
    asyncio.run(_handler_run())
    timers = [ln for ln in stream.getvalue().splitlines() if "Timer 'reconcile_request'" in ln]
    assert len(timers) == 1, timers
    assert "DEBUG" in timers[0], timers


def test_json_lines_carry_the_object_and_the_level_holds(stream: io.StringIO) -> None:
    _configure(stream, "WARNING", "json")
    asyncio.run(_handler_run())
    records = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert [r["message"] for r in records] == ["schedd unreachable"], records
    assert records[0]["object"]["namespace"] == "cms"
    assert records[0]["object"]["name"] == "cms-production"
    assert records[0]["severity"] == "warn"


def test_a_condition_going_bad_is_announced_once() -> None:
    ready_ok = {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "2 usable"}
    no_token = {
        "type": "Ready",
        "status": "False",
        "reason": "NoPoolCredential",
        "message": "Secret 'pool-key' (spec.pilot.tokenSecretRef) not found",
    }
    assert st.warnings([ready_ok], [no_token]) == [(no_token["reason"], no_token["message"])]
    assert st.warnings(None, [no_token]) == [(no_token["reason"], no_token["message"])]
    # Still bad for the same reason on the next cycle: no new Event.
    assert st.warnings([no_token], [dict(no_token, message="other words")]) == []
    # Bad for a new reason: announced.
    unreachable = dict(no_token, reason="ScheddUnreachable", message="timed out")
    assert st.warnings([no_token], [unreachable]) == [("ScheddUnreachable", "timed out")]
    # Healthy again, or a condition that is fine when True: nothing.
    degraded_off = {"type": "Degraded", "status": "False", "reason": "AllEntriesHealthy"}
    assert st.warnings([no_token], [ready_ok, degraded_off]) == []
