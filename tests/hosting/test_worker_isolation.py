"""Real worker processes, confined: clean environment, dying with their parent, resource limits,
another user."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowlab.hosting.isolation import ORPHANED_EXIT, WorkerIsolation, resolve_user
from shadowlab.hosting.process import WorkerProcess, WorkerSpec
from tests.hosting.modelfiles import code_only_model_dir, request

# Answers with what the model's code can see of its process.
PROBE_INFERENCE = textwrap.dedent(
    """
    import json
    import os
    import resource


    def model_fn(model_dir):
        return None


    def transform_fn(model, data, content_type, accept):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
            raised = True
        except (ValueError, OSError):
            raised = False
        body = {
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "uid": os.getuid(),
            "groups": os.getgroups(),
            "nofile": [soft, hard],
            "raised": raised,
        }
        return json.dumps(body), "application/json"
    """
)

# Announces that loading began (its pid in $LOADING_MARK), then loads for 30 s.
SLOW_LOAD_INFERENCE = textwrap.dedent(
    """
    import os
    import time


    def model_fn(model_dir):
        with open(os.environ["LOADING_MARK"], "w") as mark:
            mark.write(str(os.getpid()))
        time.sleep(30)
    """
)

# A supervisor in miniature: starts one worker the way hosting does, prints its pid, and waits
# for it to become ready (which a slow load keeps it from doing).
PARENT_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys
    from pathlib import Path

    from shadowlab.hosting.process import WorkerProcess, WorkerSpec


    async def main():
        spec = WorkerSpec(Path(sys.argv[1]), {"LOADING_MARK": sys.argv[2]}, Path(sys.argv[3]))
        worker = WorkerProcess(spec)
        await worker.start()


    asyncio.run(main())
    """
)


def probe(spec: WorkerSpec) -> tuple[dict[str, Any], int]:
    """Start a worker for `spec`, ask the probe model what it sees, stop it; (answer, pid)."""

    async def scenario() -> tuple[dict[str, Any], int]:
        worker = WorkerProcess(spec)
        await worker.start()
        try:
            status, _, body = await asyncio.to_thread(
                request, worker.address[1], "POST", "/invocations", b"{}"
            )
            assert status == 200, body
            assert worker.pid is not None
            return json.loads(body), worker.pid
        finally:
            await worker.stop()

    return asyncio.run(scenario())


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    return code_only_model_dir(tmp_path / "model", PROBE_INFERENCE)


def test_a_worker_never_sees_the_servers_environment(
    probe_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-secret")
    monkeypatch.setenv("SHADOWLAB_DATABASE_URL", "postgresql://admin:pw@db/shadowlab")
    monkeypatch.setenv("SOME_TOKEN", "server-token")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("LC_TIME", "C")
    # A model stored before CreateModel refused these: dropped at spawn, with a warning.
    container = {"MODEL_GREETING": "hi", "PERL5OPT": "-Mstrict", "BROWSER": "true", "LD_AUDIT": "x"}
    spec = WorkerSpec(probe_dir, container, tmp_path / "worker.log")
    with caplog.at_level(logging.WARNING, logger="shadowlab.hosting.isolation"):
        seen, _ = probe(spec)
    env = seen["env"]
    assert env["MODEL_GREETING"] == "hi"  # the container's Environment arrives
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SOME_TOKEN" not in env
    assert not [name for name in env if name.startswith("SHADOWLAB_") or name.startswith("AWS_")]
    assert not {"PERL5OPT", "BROWSER", "LD_AUDIT"} & set(env)
    assert "BROWSER, LD_AUDIT, PERL5OPT" in caplog.text
    # What programs need to work still arrives.
    assert env["PATH"] == os.environ["PATH"] and env["OMP_NUM_THREADS"] == "3"
    assert env["LC_TIME"] == "C" and env["HOME"] == os.environ["HOME"]
    expected = {"PATH", "HOME", "OMP_NUM_THREADS", "LC_TIME", "MODEL_GREETING"}
    expected |= {"PYTHONUNBUFFERED", "PYTHONUSERBASE", "PYTHONPATH"}
    expected |= {name for name in ("LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME")}
    extra = set(env) - expected
    assert all(name.startswith("LC_") or name.endswith("_NUM_THREADS") for name in extra), extra
    assert seen["cwd"] == str(probe_dir)  # runs in its model directory


def test_limits_are_hard_limits_of_the_worker_process(probe_dir: Path, tmp_path: Path) -> None:
    isolation = WorkerIsolation(max_open_files=321, max_address_space_mb=4096)
    spec = WorkerSpec(probe_dir, {}, tmp_path / "worker.log", isolation=isolation)

    async def scenario() -> None:
        worker = WorkerProcess(spec)
        await worker.start()
        try:
            limits = Path(f"/proc/{worker.pid}/limits").read_text()
            assert re.search(r"Max open files\s+321\s+321\s", limits), limits
            space = 4096 * 1024 * 1024
            assert re.search(rf"Max address space\s+{space}\s+{space}\s", limits), limits
            status, _, body = await asyncio.to_thread(
                request, worker.address[1], "POST", "/invocations", b"{}"
            )
            assert status == 200, body
            seen = json.loads(body)
            assert seen["nofile"] == [321, 321] and seen["raised"] is False  # model code can't
        finally:
            await worker.stop()

    asyncio.run(scenario())


def test_default_limits(probe_dir: Path, tmp_path: Path) -> None:
    seen, _ = probe(WorkerSpec(probe_dir, {}, tmp_path / "worker.log"))
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    assert seen["nofile"] == [expected, expected]


def _pid_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for whoever inherited it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.fixture
def slow_model(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    model_dir = code_only_model_dir(tmp_path / "slow", SLOW_LOAD_INFERENCE)
    mark = tmp_path / "loading"
    yield model_dir, mark
    if mark.exists() and mark.read_text():  # never leave a worker behind, whatever happened
        pid = int(mark.read_text())
        if not _pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_loading_worker_dies_when_its_server_is_sigkilled(
    slow_model: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, mark = slow_model
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(model_dir), str(mark), str(tmp_path / "w.log")]
    )
    try:
        deadline = time.monotonic() + 30
        while not (mark.exists() and mark.read_text()):
            assert parent.poll() is None, "the parent exited early"
            assert time.monotonic() < deadline, (tmp_path / "w.log").read_text()
            time.sleep(0.02)
        worker = int(mark.read_text())
        status = Path(f"/proc/{worker}/status").read_text()
        assert f"PPid:\t{parent.pid}\n" in status  # the worker is loading, under that parent
    finally:
        parent.kill()  # SIGKILL: no shutdown code runs
        parent.wait()
    deadline = time.monotonic() + 5
    while not _pid_gone(worker):
        assert time.monotonic() < deadline, f"worker {worker} outlived its parent"
        time.sleep(0.02)


def test_a_worker_whose_parent_is_already_gone_exits_before_loading(
    slow_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """The race PR_SET_PDEATHSIG alone leaves open: the parent died before the worker asked."""
    model_dir, mark = slow_model
    not_the_parent = 1 if os.getpid() != 1 else 2
    command = [sys.executable, "-m", "shadowlab.hosting.worker", "--model-dir", str(model_dir)]
    command += ["--port", "0", "--parent-pid", str(not_the_parent)]
    result = subprocess.run(
        command,
        env={**os.environ, "LOADING_MARK": str(mark)},
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == ORPHANED_EXIT, result.stderr
    assert not mark.exists()  # the model never began to load
    assert b"is gone before start-up finished" in result.stderr


def test_an_unknown_worker_user_fails_the_start(probe_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        resolve_user("no-such-user-shadowlab")
    assert resolve_user(None) is None
    assert resolve_user(str(os.geteuid())) is None  # the server's own user: nothing to switch


def _serve_as(user: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`shadowlab serve --worker-user USER`, expected to refuse before it binds anything."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    serve = [sys.executable, "-m", "shadowlab", "serve", "--allow-unsigned", "--port", "0"]
    return subprocess.run(
        [*serve, "--data-dir", str(tmp_path / "data"), "--worker-user", user],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_a_worker_user_that_does_not_exist(tmp_path: Path) -> None:
    refused = _serve_as("no-such-user-shadowlab", tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "shadowlab serve: worker user 'no-such-user-shadowlab' does not exist"
    )
    assert "Traceback" not in refused.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_run_as_the_worker_user(tmp_path: Path) -> None:
    from shadowlab.hosting.isolation import WorkerUserError, check_worker_user
    from shadowlab.hosting.process import worker_python_path

    try:
        check_worker_user("nobody", worker_python_path())
    except WorkerUserError as exc:
        # This machine's Python is not readable by nobody (under root's home, say): serve must
        # say so at start-up, in one line, instead of starting workers that fail later.
        refused = _serve_as("nobody", tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1] == f"shadowlab serve: {exc}"
        assert str(exc).startswith("workers cannot run as 'nobody': ")
        return
    # Under /tmp itself: pytest's own temporary directories are private to root.
    root = Path(tempfile.mkdtemp(prefix="shadowlab-user-"))
    try:
        root.chmod(0o755)
        model_dir = code_only_model_dir(root / "model", PROBE_INFERENCE)
        spec = WorkerSpec(
            model_dir, {}, tmp_path / "worker.log", isolation=WorkerIsolation(user="nobody")
        )
        seen, _ = probe(spec)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
    nobody = resolve_user("nobody")
    assert nobody is not None
    assert seen["uid"] == nobody.uid and seen["groups"] in ([], [nobody.gid])
    assert seen["env"]["HOME"] == nobody.home and seen["env"]["USER"] == "nobody"
