"""What keeps a worker apart from the server that starts it.

Parent side (`WorkerIsolation`, `worker_environment`): a worker gets a clean environment (a few
variables that make programs work, the ones hosting sets on purpose, and the container's
Environment minus refused variables), never the server's own (AWS keys, database URLs...): the
server, not the worker, fetches model artifacts, so model code needs none of its secrets. As
root, the server may start workers as another user.

Child side (`run_as`, `die_with_parent`, `apply_limits`): the worker's first acts, before any
model code loads. A SIGKILLed server cannot stop its workers, so each asks the kernel to kill it
when its parent goes (Linux `PR_SET_PDEATHSIG`); a parent that died before that request is
caught by comparing the parent pid with the one the server passed. Resource limits are set as
hard limits, so model code cannot raise them again.
"""

from __future__ import annotations

import logging
import os
import pwd
import resource
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from shadowlab.domain.environment import is_refused

__all__ = [
    "MAX_DATA_VARIABLE",
    "ORPHANED_EXIT",
    "ResolvedUser",
    "WorkerIsolation",
    "WorkerUserError",
    "apply_limits",
    "check_worker_user",
    "die_with_parent",
    "resolve_user",
    "run_as",
    "worker_environment",
]

log = logging.getLogger("shadowlab.hosting.isolation")

# Taken from the server's environment when set: what programs need to find commands, write
# temporary files, speak the right locale and size their thread pools.
_PASSED = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "NUMEXPR_MAX_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    }
)
_PASSED_PREFIXES = ("LC_",)
# A worker's memory limit (MiB, RLIMIT_DATA) travels in its environment rather than on its
# command line (worker.py's interface stays as it is): set by hosting only, read and removed by
# the worker first thing.
MAX_DATA_VARIABLE = "SHADOWLAB_WORKER_MAX_DATA_MB"
# The worker exits with this when its parent was gone before it could ask to die with it.
ORPHANED_EXIT = 5
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


@dataclass(frozen=True)
class WorkerIsolation:
    """How workers are confined; the same for every variant of a server.

    `max_open_files` 4096: plenty for a model server (sockets, model files), few enough that a
    leaking model fails alone. `max_address_space_mb` 0 (no limit): numpy, BLAS and allocators
    reserve large virtual ranges they never touch, so a limit tight enough to matter breaks
    ordinary models; memory is better bounded by cgroups around the whole server.
    """

    user: str | None = None
    max_open_files: int = 4096
    max_address_space_mb: int = 0
    # A serverless variant's MemorySizeInMB, as RLIMIT_DATA (0: none). RLIMIT_DATA counts what a
    # process actually allocates (heap and private writable mappings), not the virtual ranges
    # numpy and BLAS reserve or the shared libraries they map, so a scikit-learn model loads
    # under 1024 MiB while an allocation beyond the limit fails with MemoryError. (No cgroup:
    # the server may not own one, and a limit per process is what MemorySizeInMB promises.)
    max_data_mb: int = 0


@dataclass(frozen=True)
class ResolvedUser:
    name: str
    uid: int
    gid: int
    home: str


class WorkerUserError(ValueError):
    """Workers cannot run as the configured user; the message says why, in one line."""


def resolve_user(name: str | None) -> ResolvedUser | None:
    """The account workers run as, or None to run them as the server's own user.

    Switching needs root; naming the server's own user is allowed and changes nothing.
    """
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        raise WorkerUserError(f"worker user {name!r} does not exist") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise WorkerUserError(
            f"cannot run workers as {name!r}: the server runs as uid {os.geteuid()}, and only "
            "root can start processes as another user"
        )
    return ResolvedUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def check_worker_user(name: str | None, python_path: str | None) -> ResolvedUser | None:
    """`resolve_user`, then proof that the user can run this Python and import the worker.

    A worker starts as root and switches user before any model code runs, but every import
    after that (the standard library's lazy ones included) reads files as the new user: with
    Python installed under root's home, say, it would fail on its first request with an
    error far from the cause. One trial run at start-up names the cause instead."""
    user = resolve_user(name)
    if user is None:
        return None
    env = {"PATH": os.defpath, **({"PYTHONPATH": python_path} if python_path else {})}
    trial = [sys.executable, "-c", "import encodings.idna, shadowlab.hosting.worker"]
    cannot = f"workers cannot run as {user.name!r}"
    try:
        result = subprocess.run(
            trial,
            user=user.uid,
            group=user.gid,
            extra_groups=[],
            env=env,
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:
        raise WorkerUserError(
            f"{cannot}: that user cannot run {sys.executable} ({exc.strerror}); install Python "
            "where it can read it, or run without --worker-user"
        ) from None
    if result.returncode != 0:
        last = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise WorkerUserError(f"{cannot}: importing the worker as that user failed: {last}")
    return user


def worker_environment(
    container: Mapping[str, str],
    hosting: Mapping[str, str],
    user: ResolvedUser | None = None,
    server: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a worker starts with.

    `container` is the model's Environment (refused variables are dropped with a warning: a
    stored model may predate the check at CreateModel); `hosting` are the variables hosting sets
    on purpose and always win; `server` (default `os.environ`) only contributes the few
    variables in `_PASSED`.
    """
    source = os.environ if server is None else server
    env = {
        name: value
        for name, value in source.items()
        if name in _PASSED or name.startswith(_PASSED_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    if user is None:
        for name in ("HOME", "USER", "LOGNAME"):
            if name in source:
                env[name] = source[name]
    else:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    refused = sorted(name for name in container if is_refused(name))
    if refused:
        log.warning("not passing %s to a worker: these variables are refused", ", ".join(refused))
    env.update((name, value) for name, value in container.items() if not is_refused(name))
    env.update(hosting)
    return env


def run_as(identity: str) -> None:
    """Become `uid:gid` for good (real, effective and saved ids; no supplementary groups, which
    would otherwise be root's). Before `die_with_parent`: a credential change clears the
    parent-death signal."""
    uid, _, gid = identity.partition(":")
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))


def die_with_parent(expected_parent: int | None) -> None:
    """Have the kernel SIGKILL this process when its parent dies; exit now if it already has.

    Called first thing in the worker, before the model loads (a load can take minutes, and a
    worker orphaned during it would hold memory and, later, a port). On Linux the signal comes
    from the kernel, so it works while the model's code holds the GIL in a long C call.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    # Closes the race: a parent that died between fork and prctl has already reparented us.
    if expected_parent is not None and os.getppid() != expected_parent:
        log.error("parent process %d is gone before start-up finished; exiting", expected_parent)
        os._exit(ORPHANED_EXIT)


def apply_limits(
    max_open_files: int, max_address_space_mb: int, max_data_mb: int | None = None
) -> None:
    """Lower this process's soft and hard limits (0 leaves one as it is). Hard limits: model
    code running later cannot raise them. A limit above the current hard one stays at that.

    `max_data_mb` None: read from MAX_DATA_VARIABLE, which hosting sets in a worker's
    environment when it wants a limit (a container's own value never arrives), and which is
    taken out of the environment here, before any model code could see it."""
    if max_data_mb is None:
        max_data_mb = _data_limit_from_environment()
    if max_open_files > 0:
        _lower(resource.RLIMIT_NOFILE, max_open_files)
    if max_address_space_mb > 0:
        _lower(resource.RLIMIT_AS, max_address_space_mb * 1024 * 1024)
    if max_data_mb > 0:
        _lower(resource.RLIMIT_DATA, max_data_mb * 1024 * 1024)


def _data_limit_from_environment() -> int:
    raw = os.environ.pop(MAX_DATA_VARIABLE, "").strip()
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()):
        raise SystemExit(f"{MAX_DATA_VARIABLE}={raw!r} is not a number of MiB")
    return int(raw)


def _lower(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))
