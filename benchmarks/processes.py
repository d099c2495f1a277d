"""Child processes of the benchmark: start pinned, wait for their port, stop them all for sure.

Every child runs in its own session so a Ctrl-C in the terminal reaches only the benchmark,
whose `finally` then stops the children in order (a server first gets SIGTERM to shut down
cleanly, SIGKILL after a grace).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A port the kernel just considered free on loopback (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not listen on port {port} within {timeout_s:g}s")


@dataclass(frozen=True)
class Cores:
    """Which CPUs the load generator and the server under test get (None: no pinning)."""

    load: str | None
    server: str | None

    @classmethod
    def detect(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        # The load generator on the first core, the proxy under test on the second; the model
        # servers stay on the load generator's core so the proxy owns its core alone.
        return cls(str(cpus[0]), str(cpus[1]))


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """`argv` run under `taskset -c cpus` (taskset execs, so the pid stays the child's)."""
    return ["taskset", "-c", cpus, *argv] if cpus is not None else list(argv)


def set_affinity(pid: int, cpus: str | None) -> None:
    """Re-pin a running process (the production model server while it is under test itself)."""
    if cpus is None:
        return
    os.sched_setaffinity(pid, {int(c) for c in cpus.split(",")})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its direct children (nginx: master and worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    # /proc/<pid>/task/*/children needs a kernel option this machine lacks: scan parent ids.
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class Supervisor:
    """Owns every child; `stop_all` (also from `__exit__`) leaves none behind."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> subprocess.Popen[bytes]:
        log = self.log_path(name).open("wb")
        try:
            proc = subprocess.Popen(
                pinned(argv, cpus),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        finally:
            log.close()  # the child holds its own copy
        self._procs.append((name, proc))
        if port is not None:
            try:
                wait_for_port(port, proc)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; see {self.log_path(name)}") from None
        return proc

    def stop_all(self, grace_s: float = 5.0) -> None:
        # Reverse order: the proxies before the model servers they forward to.
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _name, proc in reversed(self._procs):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: its children too
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
