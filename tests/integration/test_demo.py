"""The README's demo command works: the workload arrives, is planned for, and drains."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from glidein_operator import demo


def test_demo_runs_to_an_empty_queue() -> None:
    import os

    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("the demo starts its own local control plane")
    out = io.StringIO()
    summary = demo.run(cycles=16, interval=0.0, console=Console(file=out, width=160))
    assert summary["pilots_launched"] > 0
    assert summary["idle_jobs_left"] == 0
    assert summary["pilots_left"] == 0
    text = out.getvalue()
    assert "control plane ready" in text
    assert "aws-us-east-1" in text
