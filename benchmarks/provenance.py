"""What was measured, on what: the machine notes of a report, and `--rev` exports.

A benchmark number without the commit, the machine and the load behind it cannot be compared
with the next one, so every report starts with these.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sysconfig
import tarfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import loadgen
import nginxproxy
from processes import Cores

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def export_revision(rev: str, dest: Path) -> tuple[str, dict[str, str]]:
    """`src/` of git revision `rev` into `dest`: the short commit, and the environment that
    makes `python -m shadowlab` import it (PYTHONPATH wins over the editable install). Lets
    one benchmark a commit while the working tree is being edited."""
    commit = _command("git", "-C", str(ROOT), "rev-parse", "--short", f"{rev}^{{commit}}")
    if not commit or " " in commit:
        raise SystemExit(f"--rev {rev!r}: not a commit of {ROOT}")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src", "pyproject.toml"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    _build_extensions(dest)
    return commit, {"PYTHONPATH": str(dest / "src")}


def _build_extensions(tree: Path) -> None:
    """Compile the exported tree's C extensions in place, as `make setup` does for the working
    tree: a revision is measured as it would be installed (capture's native encoder)."""
    config = tomllib.loads((tree / "pyproject.toml").read_text())
    modules = config.get("tool", {}).get("setuptools", {}).get("ext-modules", [])
    if not modules:
        return
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for module in modules:
        target = tree / "src" / (module["name"].replace(".", "/") + suffix)
        sources = [str(tree / source) for source in module["sources"]]
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O3", f"-I{include}", *sources, "-o", str(target)],
            check=True,
        )


def _command(*argv: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return (out.stdout or out.stderr).strip()


def machine_notes(
    cores: Cores, args: argparse.Namespace, revision: str | None, pace_ms: int, serial_ms: float
) -> list[str]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    if revision is not None:
        shadowlab = f"shadowlab {revision} (exported with --rev)"
    else:
        commit = _command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
        dirty = _command("git", "-C", str(ROOT), "status", "--porcelain", "--", "src")
        shadowlab = f"shadowlab {commit or '?'}" + (
            " plus uncommitted changes in src/" if dirty else ""
        )
    wrk_words = _command("wrk", "-v").split()
    env = os.environ
    pinning = (
        f"wrk and the model servers on CPU {cores.load}; the server under test (shadowlab, "
        f"nginx, or the model server in direct rows) alone on CPU {cores.server}"
        if cores.server is not None
        else "none (fewer than 2 CPUs or no taskset)"
    )
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {shadowlab}",
        f"machine: {os.cpu_count()} x {cpu_model}; Linux {platform.release()}; "
        f"Python {platform.python_version()}; nginx {nginxproxy.version()}; "
        f"wrk {wrk_words[1] if len(wrk_words) > 1 else '?'}",
        f"pinning: {pinning}",
        f"load: wrk, 1 thread; {args.connections} keep-alive connections for {args.duration:g} s "
        f"per row (paced rows: {args.paced_duration:g} s, each request after a random "
        f"0 to {2 * pace_ms} ms pause); 1 connection for {args.single_duration:g} s; "
        f"{args.rounds} interleaved rounds, ranges over rounds; a {len(loadgen.BODY)}-byte "
        "JSON POST, echoed by the model server",
        f"shadows: fast (answers at once); 20 ms (each answer 20 ms later, any number at once); "
        f"serial (one request at a time, {serial_ms:g} ms each: at most "
        f"{1000 / serial_ms:.0f} req/s)",
        "shadowlab: one process, adaptive admission limit per shadow capped at "
        f"{env.get('SHADOWLAB_MIRROR_MAX_IN_FLIGHT') or 1024}, copy timeout "
        f"{env.get('SHADOWLAB_MIRROR_TIMEOUT') or 2.0} s; metrics always on (every row); "
        'nginx: 1 worker, upstream keep-alive, HTTP/1.1, `Connection ""`, keep-alive '
        "request limits lifted",
        "capture rows: the endpoint config's DataCaptureConfig at 100%, Input and Output, "
        "application/json as JSON text, to s3://bench-capture/data in the embedded store under "
        "the data dir (a temp dir); records spooled to local disk by a background thread, "
        "fsynced every second",
    ]
