"""One worker process: spawn `shadowlab.hosting.worker`, wait until it is ready, stop it.

The worker reports readiness (`{"port": N}`) or its load error (`{"error": ...}`) as one JSON
line on a pipe whose write end only it holds; EOF without a message means it died, and the tail
of its log says why.

A worker runs confined (see `isolation`): a clean environment, in its model directory, as
`WorkerIsolation.user` when set, with resource limits, dying with this process. `-P` keeps the
working directory (the model's files) off its import path, so nothing there can shadow the
worker's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import shadowlab
from shadowlab.hosting.isolation import (
    MAX_DATA_VARIABLE,
    ResolvedUser,
    WorkerIsolation,
    resolve_user,
    worker_environment,
)

__all__ = ["WorkerProcess", "WorkerSpec", "WorkerStartError"]

log = logging.getLogger("shadowlab.hosting.process")

_LOG_TAIL_BYTES = 4096
# Where `shadowlab` is importable from, so workers run the same code even from a source checkout
# that is not installed. An installed copy needs nothing: putting site-packages on PYTHONPATH
# would move it ahead of the standard library.
_SOURCE_ROOT = Path(shadowlab.__file__).resolve().parent.parent
_EXTRA_PATH = None if _SOURCE_ROOT.name in ("site-packages", "dist-packages") else str(_SOURCE_ROOT)


def worker_python_path() -> str | None:
    """The PYTHONPATH workers get to find `shadowlab` (None: an installed copy needs none)."""
    return _EXTRA_PATH


class WorkerStartError(Exception):
    """A worker did not come up; `reason` is the worker's own account when it gave one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WorkerSpec:
    """What every instance of one variant runs.

    `environment` is the container's Environment from CreateModel; it is laid over a clean
    base (PATH, HOME, locale, thread settings), never over this process's own environment.
    """

    model_dir: Path
    environment: dict[str, str]
    log_path: Path
    host: str = "127.0.0.1"
    # Model loading can take long (large pickles, imports); SageMaker allows minutes too.
    start_timeout: float = 120.0
    max_body_bytes: int | None = None
    isolation: WorkerIsolation = field(default_factory=WorkerIsolation)


class WorkerProcess:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._proc: asyncio.subprocess.Process | None = None
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the worker has not started")
        return self._address

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def start(self) -> None:
        """Spawn the worker and return once it serves; WorkerStartError if it cannot."""
        if self._proc is not None:
            raise RuntimeError("a WorkerProcess starts once; make a new one to restart")
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            user = resolve_user(spec.isolation.user)
        except ValueError as exc:
            raise WorkerStartError(str(exc)) from exc
        read_fd, write_fd = os.pipe()
        command = [
            sys.executable,
            "-P",
            "-m",
            "shadowlab.hosting.worker",
            "--model-dir",
            str(spec.model_dir),
            "--host",
            spec.host,
            "--port",
            "0",
            "--ready-fd",
            str(write_fd),
            # The worker's first act compares this with its parent pid (see isolation).
            "--parent-pid",
            str(os.getpid()),
            "--max-open-files",
            str(spec.isolation.max_open_files),
            "--max-address-space-mb",
            str(spec.isolation.max_address_space_mb),
        ]
        if user is not None:
            # uvloop cannot spawn as another user (no user=/group=, and a preexec_fn is unsafe
            # in this threaded process): the worker drops to it itself, before any model code.
            command += ["--run-as", f"{user.uid}:{user.gid}"]
        if spec.max_body_bytes is not None:
            command += ["--max-body-bytes", str(spec.max_body_bytes)]
        try:
            try:
                with spec.log_path.open("ab") as log_file:
                    self._proc = await asyncio.create_subprocess_exec(
                        *command,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        env=self._environment(user),
                        pass_fds=(write_fd,),
                        cwd=spec.model_dir,
                    )
            finally:
                os.close(write_fd)  # the worker holds the only write end: its exit means EOF
            message = await asyncio.wait_for(_read_line(read_fd), spec.start_timeout)
        except OSError as exc:
            raise WorkerStartError(f"cannot start the worker process: {exc}") from exc
        except TimeoutError:
            await self.stop(grace=1.0)
            reason = f"worker did not become ready within {spec.start_timeout:g}s"
            raise WorkerStartError(f"{reason}; log: {self.log_tail()}") from None
        except BaseException:  # cancelled: leave no process behind
            await asyncio.shield(self.stop(grace=1.0))
            raise
        finally:
            os.close(read_fd)
        await self._ready(message)

    async def _ready(self, message: bytes) -> None:
        assert self._proc is not None
        try:
            report = json.loads(message) if message.strip() else {}
        except ValueError:
            report = {"error": f"unreadable ready message {message[:200]!r}"}
        if isinstance(report, dict) and isinstance(report.get("port"), int):
            self._address = (self.spec.host, report["port"])
            log.info("worker %d serves %s on %s:%d", self.pid, self.spec.model_dir, *self._address)
            return
        if isinstance(report, dict) and report.get("error"):
            await self.stop(grace=5.0)
            raise WorkerStartError(str(report["error"]))
        code = await self.stop(grace=5.0)
        raise WorkerStartError(
            f"worker exited with code {code} before it was ready; log: {self.log_tail()}"
        )

    async def wait(self) -> int:
        """Until the process exits; its exit code."""
        if self._proc is None:
            raise RuntimeError("the worker has not started")
        return await self._proc.wait()

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("worker %d ignored SIGTERM for %gs; killing it", proc.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        return await proc.wait()

    def log_tail(self, max_lines: int = 20) -> str:
        """The last lines of the worker log (it is shared by restarts; the end is the latest)."""
        try:
            with self.spec.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - _LOG_TAIL_BYTES))
                text = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        lines = [line for line in text.splitlines() if line.strip()][-max_lines:]
        return "\n".join(lines) or "(empty)"

    def _environment(self, user: ResolvedUser | None) -> dict[str, str]:
        hosting = {"PYTHONUNBUFFERED": "1"}  # logs reach the file as they happen
        if self.spec.isolation.max_data_mb > 0:
            hosting[MAX_DATA_VARIABLE] = str(self.spec.isolation.max_data_mb)
        if _EXTRA_PATH is not None:
            hosting["PYTHONPATH"] = _EXTRA_PATH
        # Pinned so that a HOME from the container cannot move the user site-packages (whose
        # .pth files run at start-up) into the model's own files.
        hosting["PYTHONUSERBASE"] = (
            site.getuserbase() if user is None else os.path.join(user.home, ".local")
        )
        # The memory limit is hosting's to set: a container's own value is dropped.
        container = {k: v for k, v in self.spec.environment.items() if k != MAX_DATA_VARIABLE}
        return worker_environment(container, hosting, user)


async def _read_line(fd: int) -> bytes:
    """Read from a pipe until a newline or EOF, without blocking the loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        chunks.append(data)
        if (not data or b"\n" in data) and not done.done():
            done.set_result(b"".join(chunks))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
