"""Text, HTML and JSON renderings: width, well-formed offline HTML and SVG, escaping."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from shadowlab.analysis import (
    CompareOptions,
    Comparison,
    ShadowCopies,
    compare,
    render_html,
    render_text,
    svg,
)
from shadowlab.analysis.svg import nice_ticks
from tests.analysis.support import EXPERIMENT, label_pairs, operational, pair, record

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
LONG_NAME = "candidate-" + "x" * 53  # SageMaker allows 63 characters


def _comparison(shadow: str = "cand", evil: bool = False) -> Comparison:
    production = [i % 3 for i in range(240)]
    flipped = [(a + 1) % 3 if i % 25 == 0 else a for i, a in enumerate(production)]
    pairs = label_pairs(production, flipped)
    body = json.dumps({"instances": [[1.0, 2.0]], "note": EVIL}) if evil else '{"instances": [[1]]}'
    for p in pairs:
        p["shadows"] = {shadow: p["shadows"]["cand"]}
        p["production"]["captureData"]["endpointInput"]["data"] = body
    pairs.append(
        pair(
            "t",
            record("t", '{"labels": [1]}', body=body),
            {shadow: record("t", None, body=body, outcome="timeout", status=0, error=EVIL)},
        )
    )
    if evil:
        pairs.append(
            pair(
                EVIL,
                record(EVIL, json.dumps({"labels": [EVIL]}), body=body),
                {shadow: record(EVIL, json.dumps({"labels": ["\x1b[2J" + EVIL]}), body=body)},
            )
        )
    copies = ShadowCopies(eligible=480, sent=241, shed=3, timeouts=1)
    metrics = [
        operational("prod", "production", [1000.0 + i for i in range(480)], errors=3),
        operational(shadow, "shadow", [1500.0 + 2 * i for i in range(241)], copies=copies),
    ]
    experiment = {**EXPERIMENT}
    experiment["ShadowModeConfig"] = {
        "SourceModelVariantName": "prod",
        "ShadowModelVariants": [{"ShadowModelVariantName": shadow, "SamplingPercentage": 50}],
    }
    return compare(pairs, metrics, experiment, CompareOptions(selector="labels"))


@pytest.mark.parametrize("shadow", ["cand", LONG_NAME])
def test_text_fits_100_columns_and_has_the_verdict(shadow: str) -> None:
    text = render_text(_comparison(shadow, evil=True))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert any(line.startswith("VERDICT: FAIL") for line in lines)
    assert "shadow p99" in text and "label flips" in text and "confusion" in text
    assert "\x1b" not in text  # captured escape sequences cannot reach the terminal
    assert "\\x1b[2J" in text


class _Checker(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "hr", "input", "link", "col", "wbr", "source"})
    SVG_EMPTY = frozenset({"line", "path", "rect", "circle", "polyline"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def _check(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == []
    return checker


def test_html_is_well_formed_self_contained_and_has_its_charts() -> None:
    html = render_html(_comparison())
    checker = _check(html)
    tags = [tag for tag, _attrs in checker.tags]
    for forbidden in ("script", "link", "iframe", "object", "embed", "img"):
        assert forbidden not in tags
    for _tag, attrs in checker.tags:
        for name in ("src", "href", "xlink:href"):
            assert name not in attrs
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) == 5  # latency over time, distribution, error rates, throughput, agreement
    titles = [ET.fromstring(chart).findtext("title") for chart in svgs]
    assert titles[0] == "ModelLatency per minute (p50 solid, p99 dashed)"
    assert any(t and t.startswith("Agreement") for t in titles)
    for chart in svgs:
        root = ET.fromstring(chart)  # well-formed XML
        assert root.findall(".//polyline") or root.findall(".//rect") or root.findall(".//circle")
    assert 'class="confusion"' in html and "Disagreements" in html and "Shadow failures" in html
    assert "Verdict: " in html and "FAIL" in html


def test_html_escapes_captured_data() -> None:
    comparison = _comparison(evil=True)
    html = render_html(comparison)
    _check(html)
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;" in html
    for chart in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        ET.fromstring(chart)


def test_json_form_is_strict_json_with_rates_and_verdict() -> None:
    comparison = _comparison()
    data: dict[str, Any] = json.loads(comparison.to_json())
    assert data["verdict"]["status"] == "fail"
    agreement = data["agreements"][0]
    assert agreement["shadow"] == "cand" and agreement["kind"] == "labels"
    assert agreement["agreementRate"] == pytest.approx(230 / 240)
    assert agreement["labels"]["flipRate"] == pytest.approx(10 / 240)
    assert agreement["labels"]["confusion"]["labels"] == ["0", "1", "2"]
    variant = data["variants"][0]
    assert variant["variant"] == "prod" and variant["latencyUs"]["p99"]["n"] == 480
    assert data["variants"][1]["copyRate"] == pytest.approx(241 / 480)
    assert data["experiment"]["start"] == "2026-03-01T10:00:00Z"
    assert data["options"]["guardrails"]["maxP99Ratio"] == 1.1
    assert comparison.as_dict() == data


def test_empty_comparison_renders() -> None:
    comparison = compare([])
    assert "VERDICT: NOT ENOUGH DATA" in render_text(comparison)
    _check(render_html(comparison))
    json.loads(comparison.to_json())


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.73), (0.0, 0.004), (3.2, 3.2), (0.0, 12_345.0), (-2.5, 7.0)]
)
def test_chart_ticks_are_round_and_cover_the_data(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and 2 <= len(ticks) <= 8


def test_charts_without_data_and_infinite_figures_stay_valid() -> None:
    ET.fromstring(svg.line_chart([], title="t", x_label="x", y_label="y"))
    ET.fromstring(svg.bar_chart([], title="t", value_format=str))
    metrics = [
        operational("prod", "production", [0.0] * 200),
        operational("cand", "shadow", [5.0] * 200),
    ]
    comparison = compare(label_pairs([0] * 150, [0] * 150), metrics, EXPERIMENT)
    latency = next(r for r in comparison.verdict.guardrails if r.name == "latency p99")
    assert latency.status == "fail" and latency.observed == float("inf")
    data = json.loads(comparison.to_json())
    assert (
        next(r for r in data["verdict"]["guardrails"] if r["name"] == "latency p99")["observed"]
        is None
    )
