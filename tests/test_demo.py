"""`make demo` in a reduced form: the whole main job, end to end, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shadowlab.demo", "--requests", "60", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "experiment is Running" in out
    assert "answered by {'production': 60}" in out
    assert "candidate: sent 60, completed 60, errors 0, timeouts 0, dropped 0" in out
    assert "the endpoint now answers from 'candidate'" in out
