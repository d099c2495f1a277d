"""The HTML report in a real browser: Debian's headless Chromium renders it offline with no
console message, its charts in the rendered DOM, and writes a screenshot.

Chromium is driven by its own command line (no DevTools client needed): ``--enable-logging=stderr``
prints every page console message (``console.*`` calls and uncaught errors) as a line with
``:CONSOLE`` in it, ``--dump-dom`` prints the DOM after the load event and ``--screenshot`` writes
a PNG of the viewport. ``test_console_detector_sees_page_messages`` proves on a tiny page that the
detector catches what it must, so the report's "no console message" cannot pass vacuously.

Without Chromium the tests skip, except under ``CI=true`` where they fail: CI must install it
(``make test`` does, as root; see the ``browser`` target of the Makefile).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shadowlab.analysis import (
    CompareOptions,
    Comparison,
    MinutePoint,
    ShadowCopies,
    VariantOperational,
    compare,
    render_html,
)
from shadowlab.metrics.sketch import RELATIVE_ACCURACY, LatencySketch
from tests.analysis.support import EXPERIMENT, pair, record

TIMEOUT_S = 30.0  # per Chromium run; one run takes about 2 s here
WIDTH, HEIGHT = 1280, 3000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A blank 1280x3000 page's screenshot is about 17 KB; the report's is several times that.
MIN_SCREENSHOT_BYTES = 60_000

# Captured input that would run, and log, if the report did not escape it. The console.error
# comes first: the alert would block a headless page until the timeout.
XSS = "<script>console.error('xss: script ran');alert(1)</script>"
XSS_ATTR = "<img src=x onerror=console.error('xss-onerror-ran')>"

CHART_TITLES = [
    "ModelLatency per minute (p50 solid, p99 dashed)",
    "ModelLatency distribution (share of requests at or below)",
    "Error rate (with interval)",
    "Invocations per minute",
    "Agreement: cand vs production",
]

CHROMIUM_FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--no-sandbox",  # the tests may run as root (CI containers)
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the page gets no network
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--enable-logging=stderr",
    "--v=0",
)


# -- Chromium ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = (
            "Chromium is not installed (Debian: apt-get install chromium; `make test` does it "
            "as root), so the HTML report is not checked in a browser"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return found


@dataclass(frozen=True)
class Run:
    dom: str
    log: str
    screenshot: Path

    @property
    def console(self) -> list[str]:
        return console_messages(self.log)


def console_messages(log: str) -> list[str]:
    """The page's console messages in Chromium's log: lines like `[...:INFO:CONSOLE:1] "text",
    source: file:///...html (1)` (older builds: `INFO:CONSOLE(1)]`)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def run_chromium(executable: str, page: Path, workdir: Path) -> Run:
    """Open ``page`` headless, offline, in a fresh profile: its DOM, log and a screenshot."""
    screenshot = workdir / f"{page.stem}.png"
    command = [
        executable,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={workdir / 'profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    # A session of its own: the browser and its helpers (zygote, renderer, GPU) share this
    # run's process group, so a hung run is stopped as a whole, and nothing outlives the run.
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        dom, log = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        dom, log = _stop(process)
        pytest.fail(
            f"Chromium did not finish {page.name} in {TIMEOUT_S:g} s (a dialog opened by a "
            f"script blocks a headless page); console: {console_messages(log)}; its log "
            f"ends:\n{_tail(log)}"
        )
    finally:
        _signal_group(process.pid, signal.SIGKILL)  # helpers a finished browser left, if any
    assert process.returncode == 0, f"Chromium exited with {process.returncode}:\n{_tail(log)}"
    return Run(dom, log, screenshot)


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ask the browser to quit (it ends its helpers), else kill the run's process group; what
    it printed until then."""
    process.terminate()
    try:
        return process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        return process.communicate()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _tail(log: str, lines: int = 25) -> str:
    return "\n".join(log.splitlines()[-lines:])


# -- the rendered DOM ----------------------------------------------------------------------------


@dataclass
class Chart:
    title: str = ""
    polylines: int = 0
    dashed: int = 0
    shapes: int = 0  # rect and circle


class Dom(HTMLParser):
    """What the checks need from Chromium's serialised DOM."""

    VOID = frozenset({"meta", "br", "img", "hr", "input", "link", "col", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[Chart] = []
        self.ids: set[str] = set()
        self.classes: set[str] = set()
        self.tags: dict[str, int] = {}
        self.headings: list[str] = []
        self.code: list[str] = []
        self.title = ""
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.ids.update(filter(None, [attributes.get("id")]))
        self.classes.update((attributes.get("class") or "").split())
        if tag == "svg":
            self.charts.append(Chart())
        elif self._inside("svg") and tag == "polyline":
            self.charts[-1].polylines += 1
            self.charts[-1].dashed += "stroke-dasharray" in attributes
        elif self._inside("svg") and tag in ("rect", "circle"):
            self.charts[-1].shapes += 1
        if tag in ("h2", "h3"):
            self.headings.append("")
        if tag == "code":
            self.code.append("")
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if not self._open:
            return
        here = self._open[-1]
        if here == "title" and self._inside("svg"):
            self.charts[-1].title += data
        elif here == "title":
            self.title += data
        if self._inside("h2") or self._inside("h3"):
            self.headings[-1] += data
        if self._inside("code"):
            self.code[-1] += data

    def _inside(self, tag: str) -> bool:
        return tag in self._open


def parse(dom: str) -> Dom:
    parsed = Dom()
    parsed.feed(dom)
    parsed.close()
    return parsed


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG: {data[:8]!r}"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- a realistic comparison ----------------------------------------------------------------------

START = 1772359200  # EXPERIMENT's StartTime, 2026-03-01T10:00:00Z
MINUTES = 30
SPECIES = ("setosa", "versicolor", "virginica")


def _features(rng: np.random.Generator) -> list[float]:
    return [round(float(x), 1) for x in rng.normal((5.8, 3.0, 3.8, 1.2), 0.4)]


def _variant(
    name: str,
    role: str,
    latencies: Sequence[np.ndarray[Any, Any]],
    errors: Sequence[int],
    copies: ShadowCopies | None = None,
) -> VariantOperational:
    """A variant as the server reports it: DDSketches per minute, merged over the window."""
    total = LatencySketch()
    minutes = []
    for m, (values, failed) in enumerate(zip(latencies, errors, strict=True)):
        sketch = LatencySketch()
        sketch.add_many(values)
        total.merge(sketch)
        minutes.append(
            MinutePoint(
                START + 60 * m,
                len(values),
                failed,
                latency_p50_us=sketch.quantile(0.5),
                latency_p99_us=sketch.quantile(0.99),
            )
        )
    failures = sum(errors)
    return VariantOperational(
        variant=name,
        role="production" if role == "production" else "shadow",
        invocations=total.count,
        errors_5xx=failures,
        model_errors=failures,
        latency_count=total.count,
        latency_quantile=total.quantile,
        latency_relative_accuracy=RELATIVE_ACCURACY,
        per_minute=minutes,
        window_seconds=60.0 * MINUTES,
        copies=copies,
    )


def realistic_comparison() -> Comparison:
    """30 minutes of an iris classifier: production "prod" and a shadow "cand" sampled at 50%
    that is slower (a warm-up spike, then steady), flips about 4% of the labels and timed out
    twice. Some captured inputs carry markup and script."""
    rng = np.random.default_rng(12)
    per_minute = rng.integers(36, 52, size=MINUTES)
    prod_latency = [rng.lognormal(np.log(4_000), 0.25, n) for n in per_minute]
    cand_latency = [
        rng.lognormal(np.log(5_200 + (6_000 if m < 3 else 0)), 0.35, n // 2)
        for m, n in enumerate(per_minute)
    ]
    prod_errors = [int(m in (7, 19)) for m in range(MINUTES)]
    cand_errors = [int(m in (1, 2)) for m in range(MINUTES)]

    pairs = []
    for m, n in enumerate(per_minute):
        when = f"2026-03-01T10:{m:02d}:30Z"
        for i in range(int(n)):  # every production request; the first half also shadowed
            event = f"{m:02d}-{i:02d}"
            note = {0: XSS, 1: XSS_ATTR}.get(i) if m == 4 else None
            body = json.dumps({"instances": [_features(rng)], **({"note": note} if note else {})})
            label = SPECIES[int(rng.integers(3))]
            production = record(event, json.dumps({"labels": [label]}), body=body, when=when)
            if i >= n // 2:
                pairs.append(pair(event, production))
                continue
            flipped = note is not None or rng.random() < 0.04
            shadow_label = SPECIES[(SPECIES.index(label) + 1) % 3] if flipped else label
            if m in (1, 2) and i == 0:
                shadow = record(
                    event, None, body=body, when=when, outcome="timeout", status=0, error=XSS
                )
            else:
                shadow = record(event, json.dumps({"labels": [shadow_label]}), body=body, when=when)
            pairs.append(pair(event, production, {"cand": shadow}))

    sent = sum(len(v) for v in cand_latency)
    copies = ShadowCopies(eligible=int(per_minute.sum()), sent=sent + 2, shed=2, timeouts=2)
    metrics = [
        _variant("prod", "production", prod_latency, prod_errors),
        _variant("cand", "shadow", cand_latency, cand_errors, copies),
    ]
    return compare(pairs, metrics, EXPERIMENT, CompareOptions(selector="labels"))


@pytest.fixture(scope="module")
def report(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("browser")
    page = workdir / "report.html"
    page.write_text(render_html(realistic_comparison()), encoding="utf-8")
    return run_chromium(chromium, page, workdir)


# -- the tests -----------------------------------------------------------------------------------


def test_console_detector_sees_page_messages(chromium: str, tmp_path: Path) -> None:
    """The same Chromium run on a page that logs: the detector sees console.error, an event
    handler's and an uncaught error, so an empty result on the report means it logged nothing."""
    page = tmp_path / "probe.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>probe</title></head><body>"
        f"<p>{XSS_ATTR}</p><script>console.error('probe: console.error');"
        "throw new Error('probe: uncaught')</script></body></html>",
        encoding="utf-8",
    )
    console = run_chromium(chromium, page, tmp_path).console
    text = "\n".join(console)
    assert "probe: console.error" in text, text
    assert "xss-onerror-ran" in text, text
    assert "probe: uncaught" in text, text
    assert len(console) == 3, text


def test_report_logs_nothing_to_the_console_and_runs_no_captured_script(report: Run) -> None:
    assert report.console == []
    dom = parse(report.dom)
    assert dom.tags.get("script", 0) == 0 and dom.tags.get("img", 0) == 0
    shown = "\n".join(dom.code)  # captured inputs, as text
    assert XSS in shown and XSS_ATTR in shown


def test_report_charts_and_tables_are_in_the_rendered_dom(report: Run) -> None:
    dom = parse(report.dom)
    assert dom.title == "shadowlab comparison: candidate-v2"
    assert report.dom.count("<svg") == len(dom.charts) == 5
    assert [chart.title for chart in dom.charts] == CHART_TITLES
    latency = dom.charts[0]  # p50 and p99 of both variants, minute by minute
    assert (latency.polylines, latency.dashed) == (4, 2)
    distribution, errors, throughput, agreement = dom.charts[1:]
    assert distribution.polylines == throughput.polylines == 2  # one line a variant
    assert errors.shapes >= 2 and agreement.shapes >= 1  # the bars
    assert {"verdict", "operational"} <= dom.ids
    assert {"chart", "confusion", "agreement", "badge", "fail"} <= dom.classes
    assert any(h.startswith("Verdict: FAIL") for h in dom.headings), dom.headings
    assert any(h.startswith("Confusion") for h in dom.headings)
    assert any(h.startswith("Disagreements") for h in dom.headings)
    assert any(h.startswith("Shadow failures") for h in dom.headings)


def test_report_screenshot_is_written(report: Run) -> None:
    path = report.screenshot
    assert path.is_file(), f"no screenshot; Chromium's log ends:\n{_tail(report.log)}"
    assert png_size(path) == (WIDTH, HEIGHT)
    size = path.stat().st_size
    assert size > MIN_SCREENSHOT_BYTES, f"{path}: {size} bytes, a blank page?"
    print(f"screenshot of the HTML report: {path} ({size:,} bytes)")
