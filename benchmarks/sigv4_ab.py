"""SigV4 verification before and after a change to src/shadowlab/auth/, in one run.

"before" is the working tree's src/ with src/shadowlab/auth/ taken from a git revision
(`--before`, default HEAD: the change is not committed yet; once it is, name the commit before
it); "after" is the working tree as it is. Everything else is the same snapshot of src/, so the
two differ only in auth/.

- loop: `SigV4Verifier.verify` of the `make bench` signed request in a loop (timeit), before and
  after alternating in one process, `--repeats` times; per-call µs, best and median, and the
  ratio of the medians;
- wrk (`--wrk-rounds` > 0): a shadowlab server per version (`bench-plain` endpoint, the echo
  model server of `make bench`) on the server core, wrk on the other core, 32 connections,
  unsigned and signed rows alternating, the order of versions reversing every round.

    .venv/bin/python benchmarks/sigv4_ab.py --repeats 7 --wrk-rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from pathlib import Path
from types import ModuleType

import loadgen
import shadowlabctl
from processes import Cores, Supervisor, cpu_seconds, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AUTH = "src/shadowlab/auth"
PORT = 7070  # the loop's requests are signed for this port; no server is involved


def export_src(dest: Path, before_rev: str | None) -> Path:
    """A copy of the working tree's src/; with `before_rev`, that revision's auth/ in it."""
    shutil.copytree(ROOT / "src", dest, ignore=shutil.ignore_patterns("__pycache__"))
    if before_rev is not None:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", before_rev, AUTH],
            capture_output=True,
            check=True,
        ).stdout
        shutil.rmtree(dest / AUTH.removeprefix("src/"))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest.parent / "rev", filter="data")
        shutil.move(dest.parent / "rev" / AUTH, dest / AUTH.removeprefix("src/"))
    return dest


def load_verifier_module(src: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, src / "shadowlab/auth/sigv4.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def received(path: str) -> list[tuple[str, str]]:
    """The benchmark's signed POST as the signature gate hands it over: wrk's headers plus the
    signature, lower-case names, Host and Content-Length."""
    url = f"http://127.0.0.1:{PORT}{path}"
    headers = {**loadgen.HEADERS, **shadowlabctl.signed_headers(url, loadgen.BODY, loadgen.HEADERS)}
    return [
        *((name.lower(), value) for name, value in headers.items()),
        ("host", f"127.0.0.1:{PORT}"),
        ("content-length", str(len(loadgen.BODY))),
    ]


def loop(before: ModuleType, after: ModuleType, repeats: int, number: int) -> None:
    path = "/endpoints/bench-plain/invocations"
    headers, body = received(path), loadgen.BODY.encode()
    secrets = {shadowlabctl.ACCESS_KEY: shadowlabctl.SECRET_KEY}
    timings: dict[str, list[float]] = {"before": [], "after": []}
    calls = {}
    for label, module in (("before", before), ("after", after)):
        verifier = module.SigV4Verifier(secrets, regions=[shadowlabctl.REGION])
        verifier.verify("POST", path, headers, body)  # accepted, and the key cached
        calls[label] = lambda v=verifier: v.verify("POST", path, headers, body)
    for _ in range(repeats):
        for label in ("before", "after"):
            seconds = timeit.timeit(calls[label], number=number)
            timings[label].append(seconds / number * 1e6)
    for label, values in timings.items():
        print(
            f"loop {label:6}: best {min(values):5.2f} µs, median {statistics.median(values):5.2f}"
            f" µs per verify ({repeats} x {number})"
        )
    ratio = statistics.median(timings["before"]) / statistics.median(timings["after"])
    print(f"loop: after is {ratio:.2f}x as fast (medians)")


def _busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat, USER_HZ 100)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / 100.0  # minus idle and iowait


def _own_s(pids: list[int]) -> float:
    """CPU seconds of this benchmark: its servers, finished wrks, itself."""
    own = sum(cpu_seconds(pid) for pid in pids)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return own


def wrk_rows(srcs: dict[str, Path], rounds: int, duration: float, work: Path) -> None:
    cores = Cores.detect()
    (work / "logs").mkdir()
    results: dict[tuple[str, bool], list[float]] = {}
    cpu_us: dict[tuple[str, bool], list[float]] = {}
    with Supervisor(work / "logs") as supervisor:
        model_port = free_port()
        model = [sys.executable, str(HERE / "modelserver.py"), "--port", str(model_port)]
        pids = [supervisor.start("model", model, cpus=cores.load, port=model_port).pid]
        servers = {}
        for label, src in srcs.items():
            proc, port = shadowlabctl.start_shadowlab(
                supervisor,
                str(work / label),
                cpus=cores.server,
                env={"PYTHONPATH": str(src)},
            )
            shadowlabctl.create_endpoints(port, production=model_port, shadows={})
            servers[label] = (proc.pid, port)
            pids.append(proc.pid)
        plain = loadgen.write_script(work)
        for round_no in range(1, rounds + 1):
            order = list(srcs) if round_no % 2 else list(reversed(srcs))
            for label in order:
                pid, port = servers[label]
                url = f"http://127.0.0.1:{port}/endpoints/bench-plain/invocations"
                signed = loadgen.write_script(
                    work,
                    signed=shadowlabctl.signed_headers(url, loadgen.BODY, loadgen.HEADERS),
                )
                for is_signed, script in ((False, plain), (True, signed)):
                    cpu, busy, own = cpu_seconds(pid), _busy_s(), _own_s(pids)
                    wrk = loadgen.run_wrk(
                        url, script=script, connections=32, duration_s=duration, cpus=cores.load
                    )
                    # Processes outside the benchmark, in cores: the machine is shared.
                    other = ((_busy_s() - busy) - (_own_s(pids) - own)) / wrk.duration_s
                    if wrk.errors:
                        raise RuntimeError(f"{label} signed={is_signed}: {wrk.errors} errors")
                    results.setdefault((label, is_signed), []).append(wrk.rps)
                    used = (cpu_seconds(pid) - cpu) / max(wrk.requests, 1) * 1e6
                    cpu_us.setdefault((label, is_signed), []).append(used)
                    print(
                        f"  round {round_no} {label:6} {'signed' if is_signed else 'unsigned':8}"
                        f" {wrk.rps:8.0f} req/s  p99 {wrk.p99_ms:5.2f} ms  {used:5.1f} µs CPU/req"
                        f"  other CPU {max(other, 0.0):4.0%}",
                        flush=True,
                    )
    for label in srcs:
        unsigned, verified = results[(label, False)], results[(label, True)]
        ratios = [v / u for v, u in zip(verified, unsigned, strict=True)]
        print(
            f"wrk {label:6}: unsigned {min(unsigned):.0f}-{max(unsigned):.0f} req/s, signed "
            f"{min(verified):.0f}-{max(verified):.0f} req/s, signed/unsigned "
            f"{min(ratios):.2f}-{max(ratios):.2f}; server CPU per request unsigned "
            f"{statistics.median(cpu_us[(label, False)]):.1f} µs, signed "
            f"{statistics.median(cpu_us[(label, True)]):.1f} µs (medians)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git revision of the 'before' sigv4.py")
    parser.add_argument("--repeats", type=int, default=7, help="loop: timeit repeats")
    parser.add_argument("--number", type=int, default=20000, help="loop: calls per repeat")
    parser.add_argument("--wrk-rounds", type=int, default=0, help="wrk rounds (0: loop only)")
    parser.add_argument("--duration", type=float, default=4.0, help="wrk: s per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shadowlab-sigv4-ab-") as tmp:
        work = Path(tmp)
        srcs = {
            "before": export_src(work / "src-before", args.before),
            "after": export_src(work / "src-after", None),
        }
        # The loop loads each copy's sigv4.py only; whatever it imports comes from the installed
        # package (the working tree), so a "before" whose sigv4.py imports another auth module
        # that changed since would be measured with the new one. The wrk rows run each copy.
        before = load_verifier_module(srcs["before"], "sigv4_before")
        after = load_verifier_module(srcs["after"], "sigv4_after")
        loop(before, after, args.repeats, args.number)
        if args.wrk_rounds > 0:
            wrk_rows(srcs, args.wrk_rounds, args.duration, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
