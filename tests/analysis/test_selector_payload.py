"""The JSON selector, and outputs parsed by content type into flat values."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from shadowlab.analysis import Selector, SelectorError
from shadowlab.analysis.payload import (
    outcome,
    parse_output,
    payload_bytes,
    preview,
    safe_text,
)
from tests.analysis.support import CSV, JSON, NPY, npy, payload, record

ANSWER = {
    "labels": [1, 0],
    "probabilities": [[0.2, 0.8], [0.9, 0.1]],
    "predictions": [{"label": "cat", "score": 0.7}, {"label": "dog", "score": 0.6}],
    "odd.key": {"x": 3},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("labels", [1, 0]),
        ("labels.0", 1),
        ("labels[-1]", 0),
        ("probabilities[*][1]", [0.8, 0.1]),
        ("probabilities.*.0", [0.2, 0.9]),
        ("$.predictions[*].label", ["cat", "dog"]),
        ("$predictions[1].score", 0.6),
        ("['odd.key'].x", 3),
        ('["odd.key"]["x"]', 3),
    ],
)
def test_selector_paths(path: str, expected: object) -> None:
    assert Selector(path).select(ANSWER) == expected


@pytest.mark.parametrize("path", ["labels.", "labels[", "labels[x]", "['open"])
def test_malformed_selectors_are_refused(path: str) -> None:
    with pytest.raises(SelectorError):
        Selector(path)


@pytest.mark.parametrize("path", ["missing", "labels.5", "labels.0.x", "labels[*].y"])
def test_selector_that_does_not_fit_says_why(path: str) -> None:
    with pytest.raises(SelectorError, match="selector"):
        Selector(path).select(ANSWER)


def test_json_output_with_selector_is_flattened() -> None:
    parsed = parse_output(payload("OUTPUT", json.dumps(ANSWER), JSON), Selector("probabilities"))
    assert parsed.values == [0.2, 0.8, 0.9, 0.1]
    assert parsed.problem is None
    labels = parse_output(
        payload("OUTPUT", json.dumps(ANSWER), JSON), Selector("predictions[*].label")
    )
    assert labels.values == ["cat", "dog"]


def test_json_scalars_become_labels_or_numbers() -> None:
    body = json.dumps([True, None, 3, "x", {"b": 1, "a": 2}])
    assert parse_output(payload("OUTPUT", body, JSON), None).values == [
        "true",
        "null",
        3.0,
        "x",
        '{"a":2,"b":1}',
    ]


def test_base64_json_is_read_by_its_content_type() -> None:
    # Without CaptureContentTypeHeader SageMaker (and shadowlab) captures everything as BASE64.
    item = payload("OUTPUT", '{"labels": [2]}', JSON, encoding="BASE64")
    assert item["encoding"] == "BASE64"
    assert parse_output(item, Selector("labels")).values == [2.0]


def test_json_lines_apply_the_selector_line_by_line() -> None:
    body = '{"label": 1}\n{"label": 0}\n'
    item = payload("OUTPUT", body, "application/jsonlines", encoding="BASE64")
    assert parse_output(item, Selector("label")).values == [1.0, 0.0]


def test_csv_rows_of_numbers_and_labels() -> None:
    assert parse_output(payload("OUTPUT", "0.5,1\n2,3\n", CSV), None).values == [0.5, 1.0, 2.0, 3.0]
    assert parse_output(payload("OUTPUT", "setosa\nvirginica\n", CSV), None).values == [
        "setosa",
        "virginica",
    ]


def test_npy_in_base64() -> None:
    item = payload("OUTPUT", npy([[0.25, 0.75], [1.0, 0.0]]), NPY)
    assert item["encoding"] == "BASE64"
    assert parse_output(item, None).values == [0.25, 0.75, 1.0, 0.0]
    strings = payload("OUTPUT", npy(np.array(["a", "b"])), NPY)
    assert parse_output(strings, None).values == ["a", "b"]
    assert preview(item, 200).startswith("npy float64 (2, 2):")


def test_unknown_types_are_raw_bytes_and_bad_payloads_fall_back() -> None:
    raw = payload("OUTPUT", b"\x00\x01binary", "application/octet-stream")
    assert parse_output(raw, None).values == [b"\x00\x01binary"]
    broken = parse_output(payload("OUTPUT", "{not json", JSON), None)
    assert broken.values == [b"{not json"]
    assert broken.problem is not None and "not parsed" in broken.problem
    unfit = parse_output(payload("OUTPUT", '{"a": 1}', JSON), Selector("labels"))
    assert unfit.values == [b'{"a": 1}']
    assert unfit.problem is not None and "no key 'labels'" in unfit.problem
    bad_npy = parse_output(payload("OUTPUT", b"not an array", NPY), None)
    assert bad_npy.values == [b"not an array"] and bad_npy.problem


def test_outcomes_of_records() -> None:
    assert outcome(None) == "missing"
    assert outcome(record("e", "[1]")) == "ok"
    assert outcome(record("e", None, outcome="timeout", status=0)) == "timeout"
    assert outcome(record("e", None, outcome="failed", status=0)) == "failed"
    assert outcome(record("e", '{"error": 1}', outcome="answered", status=500)) == "error"


def test_payload_bytes_and_safe_previews() -> None:
    item = {"data": base64.b64encode(b"a\x1b[31mb").decode(), "encoding": "BASE64"}
    assert payload_bytes(item) == b"a\x1b[31mb"
    assert preview({**item, "observedContentType": "text/plain"}, 50) == "a\\x1b[31mb"
    assert safe_text("x" * 20, 5) == "xxxxx... (20 chars)"
    assert preview(None, 10) == "(not captured)"
    shown = preview(payload("INPUT", b"\xff\xfe\x00", "application/octet-stream"), 60)
    assert shown.startswith("(3 bytes) ff fe 00")
