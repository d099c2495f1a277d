"""`shadowlab serve` with a bad setting stops before it binds anything: exit 2 and one line on
stderr naming the variable or flag, no traceback (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverproc import free_port


def serve(tmp_path: Path, *flags: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shadowlab",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--allow-unsigned",
            *flags,
        ],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("flags", "env", "line"),
    [
        (
            ["--port", "{port}"],
            {"SHADOWLAB_HOSTING": "proces"},
            "shadowlab serve: SHADOWLAB_HOSTING: 'proces' is not one of: process, none",
        ),
        ([], {"SHADOWLAB_PORT": "abc"}, "shadowlab serve: SHADOWLAB_PORT: 'abc' is not an integer"),
        (["--port", "abc"], {}, "shadowlab serve: --port: 'abc' is not an integer"),
        (
            ["--port", "{port}", "--hosting", "proces"],
            {},
            "shadowlab serve: --hosting: 'proces' is not one of: process, none",
        ),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(
    tmp_path: Path, flags: list[str], env: dict[str, str], line: str
) -> None:
    port = free_port()
    run = serve(tmp_path, *(flag.format(port=port) for flag in flags), env=env)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [line]
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    # Nothing was started: no state was written.
    assert not (tmp_path / "data").exists()
