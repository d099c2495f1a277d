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
    # What the shadow could not take is shed and counted; every copy is accounted for.
    line = next(x for x in out.splitlines() if x.strip().startswith("candidate: sampled 60,"))
    counts = dict(part.strip().rsplit(" ", 1) for part in line.split(":", 1)[1].split(","))
    counts = {key: int(value) for key, value in counts.items()}
    assert counts["completed"] > 0 and counts["errors"] == counts["timeouts"] == 0, line
    assert sum(counts[k] for k in ("completed", "shed", "errors", "timeouts", "dropped")) == 60
    assert "delivered share" in out
    assert "the endpoint now answers from 'candidate'" in out
