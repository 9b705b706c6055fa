"""The README's demo command works: jobs arrive, the operator launches EC2 pilots, they run
the jobs and leave, and nothing is left in the cloud."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from glidein_devkit import demo


def test_demo_runs_to_an_empty_queue() -> None:
    import os

    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("the demo starts its own local control plane")
    out = io.StringIO()
    summary = demo.run(timeout=150, waves=1, console=Console(file=out, width=160), simulated=True)
    assert summary["jobs_submitted"] > 0
    assert summary["jobs_done"] == summary["jobs_submitted"]
    assert summary["pilots_launched"] > 0
    assert summary["idle_jobs_left"] == 0
    assert summary["instances_left"] == 0  # nothing left running in the cloud
    assert summary["key_pairs_left"] == 0
    assert summary["spent"] > 0  # every pilot accounted for, at the entries' prices
    text = out.getvalue()
    assert text.startswith("The demo runs on a simulated pool")
    assert "control plane ready" in text
    assert "Every job ran and nothing is left running." in text
    assert "GlideinRequest demo-vo/demo" in text
