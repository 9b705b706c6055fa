"""The README's demo on real HTCondor: real jobs run on real pilots the operator launched,
and the demo ends with a readable summary and nothing left in the cloud."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from glidein_devkit import demo
from glidein_devkit.condor_pool import CondorInstall

pytestmark = pytest.mark.integration


def test_the_demo_runs_real_jobs_on_real_pilots(condor: CondorInstall) -> None:
    if os.environ.get("GLIDEIN_TEST_KUBECONFIG"):
        pytest.skip("the demo starts its own local control plane")
    out = io.StringIO()
    summary = demo.run(timeout=240, waves=1, console=Console(file=out, width=160))
    text = out.getvalue()
    assert text.startswith("HTCondor from"), text[:200]
    assert summary["jobs_submitted"] == demo.REAL_WAVE
    assert summary["jobs_done"] == summary["jobs_submitted"], text[-3000:]
    assert 0 < summary["pilots_launched"] <= 8
    assert summary["instances_left"] == 0
    assert summary["key_pairs_left"] == 0
    assert summary["spent"] > 0
    assert "Demo summary" in text
    assert "Every job ran and nothing is left running." in text
    print(text[-1500:])
