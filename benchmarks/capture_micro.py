"""Capture's two per-record costs in-process, each against a baseline measured in the same run.

- encode: µs per record of the capture encoder (`RecordEncoder.encode_batch`), native
  (`shadowlab.capture._lines`, when built) and Python, on the three kinds of record the capture
  tests use (csv-small, json-1k, npy-1k). As the writer does it: production records a batch at a
  time (their input encoded afresh), then the shadow records of the same requests (the Python
  encoder reuses their input and metadata). Baseline, "obvious": the same records, one at a
  time, as the dict of the tests' `reference()` and `json.dumps(...).encode()`.
- submit: µs per `CaptureWriter.submit` of a csv-small record, against appending the same records
  to a `collections.deque` (the cheapest hand-off there is). The writer's spool thread is started
  but polls every 30 s, so it does not drain (nor take the GIL) while submit is timed.

Each round builds fresh records (new event ids) and times every variant on them, the order
reversing every other round; the garbage collector is off while timing. Ratios are per round
(variant / its baseline in that round); the table shows the median over the rounds and the range.

    .venv/bin/python benchmarks/capture_micro.py --rounds 5

Read the ratio columns: absolute µs move with the load on this shared 2-core machine, ratios of
things measured back to back much less. Encoder / obvious below 1 is what the encoder buys;
submit / deque is what submit adds to the bare hand-off (its sampling and bound checks).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the capture tests' record builders, as `tests.capture...`

from shadowlab.capture.config import CaptureConfig  # noqa: E402
from shadowlab.capture.options import WriterOptions  # noqa: E402
from shadowlab.capture.record import NATIVE, RecordEncoder  # noqa: E402
from shadowlab.capture.stores import LocalObjectStore  # noqa: E402
from shadowlab.capture.writer import CaptureWriter  # noqa: E402
from shadowlab.dataplane.observer import InvocationRecord  # noqa: E402
from tests.capture.support import BOTH_CONFIG, event, record, reference  # noqa: E402

_JSON_BODY = json.dumps({"instances": [[round(i * 0.37, 3)] * 8 for i in range(24)]}).encode()
# kind -> (request body, its content type, answer, its content type)
KINDS = {
    "csv-small": (b"5.1,3.5,1.4,0.2", "text/csv", b"0.97", "text/csv"),
    "json-1k": (_JSON_BODY, "application/json", b'{"predictions": [0.9]}', "application/json"),
    "npy-1k": (bytes(1024), "application/x-npy", bytes(64), "application/x-npy"),
}
Records = list[InvocationRecord]


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    """The garbage collector off (after a collection) while timing."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _timed(work: Callable[[], object]) -> float:
    """Seconds `work` took, the garbage collector off meanwhile."""
    with _gc_off():
        started = time.perf_counter()
        work()
        return time.perf_counter() - started


def _kind_records(kind: str, count: int) -> tuple[Records, Records]:
    """`count` production records of `kind` and the shadow records of the same requests."""
    body, content_type, answer, answer_type = KINDS[kind]
    productions, shadows = [], []
    for _ in range(count):
        ev = event(body=body, content_type=content_type)
        productions.append(record(ev, body=answer, content_type=answer_type))
        shadows.append(
            record(ev, role="shadow", variant="s", body=answer, content_type=answer_type)
        )
    return productions, shadows


def encode_round(
    kind: str, encoders: dict[str, RecordEncoder], count: int, batch: int, backwards: bool
) -> dict[str, tuple[float, float]]:
    """name -> (production, shadow) µs per record, for each encoder and "obvious"."""
    productions, shadows = _kind_records(kind, count)
    pairs = [(productions[i : i + batch], shadows[i : i + batch]) for i in range(0, count, batch)]

    def obvious(records: Records) -> None:
        for rec in records:
            json.dumps(reference(rec, BOTH_CONFIG)).encode()

    def encoded(encode: Callable[[Records], object]) -> tuple[float, float]:
        production = shadow = 0.0  # a batch of productions, then their shadows, as a drain does
        with _gc_off():
            for prods, shads in pairs:
                started = time.perf_counter()
                encode(prods)
                middle = time.perf_counter()
                encode(shads)
                production += middle - started
                shadow += time.perf_counter() - middle
        return production, shadow

    names = [*encoders, "obvious"]
    seconds = {
        name: (_timed(lambda: obvious(productions)), _timed(lambda: obvious(shadows)))
        if name == "obvious"
        else encoded(encoders[name].encode_batch)
        for name in (names[::-1] if backwards else names)
    }
    return {name: (p / count * 1e6, s / count * 1e6) for name, (p, s) in seconds.items()}


def submit_round(count: int, spool_root: Path, backwards: bool) -> tuple[float, float]:
    """(submit, deque.append) µs per record over the same fresh records, on a fresh writer."""
    config = CaptureConfig(destination="s3://b/micro")
    records = [record(event()) for _ in range(count)]
    root = Path(tempfile.mkdtemp(dir=spool_root))
    options = WriterOptions(poll_interval=30.0)  # the spool thread sleeps while submit is timed
    writer = CaptureWriter(LocalObjectStore(root / "s3"), root / "spool", options)
    writer.start()
    time.sleep(0.05)  # past the spool thread's first (empty) drain
    queue: collections.deque[InvocationRecord] = collections.deque()

    def submit_all() -> None:
        submit = writer.submit
        for rec in records:
            submit(rec, config)

    def append_all() -> None:
        append = queue.append
        for rec in records:
            append(rec)

    order = [submit_all, append_all]
    took = {work: _timed(work) for work in (order[::-1] if backwards else order)}
    writer.stop()
    stats = writer.stats()
    if stats["records_captured"] + stats["dropped_queue_full"] != count:
        print(f"submit lost count of records: {stats}", file=sys.stderr)
    return took[submit_all] / count * 1e6, took[append_all] / count * 1e6


def _cell(values: Sequence[float], digits: int = 2) -> str:
    """Median (min-max)."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def run(args: argparse.Namespace) -> None:
    impls = {"native": True, "python": False} if NATIVE else {"python": False}
    encoders = {
        kind: {n: RecordEncoder(BOTH_CONFIG, native=v) for n, v in impls.items()} for kind in KINDS
    }
    encoded: dict[tuple[str, str], list[tuple[float, float, float]]] = collections.defaultdict(list)
    submitted: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="shadowlab-micro-") as tmp:
        for kind in KINDS:  # warm-up: content types learnt, code paths and allocator warm
            encode_round(kind, encoders[kind], args.batch * 2, args.batch, False)
        submit_round(2000, Path(tmp), False)
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}/{args.rounds}", flush=True)
            backwards = round_no % 2 == 0
            for kind in KINDS:
                got = encode_round(kind, encoders[kind], args.records, args.batch, backwards)
                obvious = sum(got["obvious"])
                for name, (production, shadow) in got.items():
                    ratio = (production + shadow) / obvious
                    encoded[kind, name].append((production, shadow, ratio))
            submitted.append(submit_round(args.submits, Path(tmp), backwards))

    print(f"\nnative encoder built: {NATIVE}; {args.rounds} rounds; median (min-max)\n")
    print(f"Encode, µs per record ({args.records} requests per kind, batches of {args.batch}):\n")
    print("| kind | encoder | production | its shadow | encoder / obvious |\n|---|---|---|---|---|")
    for kind, name in encoded:  # in round 1's order: kinds, then encoders and obvious
        productions, shadows, ratios = zip(*encoded[kind, name], strict=True)
        shown = "1 (baseline)" if name == "obvious" else _cell(ratios, 3)
        print(f"| {kind} | {name} | {_cell(productions)} | {_cell(shadows)} | {shown} |")
    print(f"\nSubmit, µs per record ({args.submits} csv-small records per round):\n")
    print("| hand-off | µs per record | / deque.append |\n|---|---|---|")
    submit, append = zip(*submitted, strict=True)
    print(f"| CaptureWriter.submit | {_cell(submit, 3)} | {_cell([s / a for s, a in submitted])} |")
    print(f"| deque.append | {_cell(append, 3)} | 1 (baseline) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; even ones run backwards")
    parser.add_argument("--records", type=int, default=2000, help="requests per kind and round")
    parser.add_argument(
        "--batch",
        type=int,
        default=WriterOptions().batch_records // 2,
        help="records per encode_batch: a drain of batch_records (256) is split per variant, "
        "about half productions, half their shadows",
    )
    parser.add_argument("--submits", type=int, default=20_000, help="records submitted per round")
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
