"""Request-by-request agreement on synthetic captures with known answers."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from shadowlab.analysis import CompareOptions, compare
from tests.analysis.support import CSV, JSON, NPY, label_pairs, npy, pair, record


def test_classifier_flip_rate_and_confusion() -> None:
    production = [i % 3 for i in range(300)]
    shadow = [(a + 1) % 3 if i % 10 == 0 else a for i, a in enumerate(production)]
    result = compare(label_pairs(production, shadow), options=CompareOptions(selector="labels"))
    a = result.agreement("cand")
    assert a is not None
    assert a.kind == "labels"
    assert (a.pairs, a.compared_pairs, a.values) == (300, 300, 300)
    assert a.labels is not None and a.labels.flips == 30
    assert a.labels.flip_rate == pytest.approx(0.10)
    assert a.agreement_rate == pytest.approx(0.90) == a.exact_rate
    assert a.disagreeing_pairs == 30 and len(a.examples) == 30
    confusion = a.labels.confusion
    assert confusion is not None and confusion.labels == ["0", "1", "2"]
    expected = Counter(zip(production, shadow, strict=True))
    assert confusion.counts == [[expected[(i, j)] for j in range(3)] for i in range(3)]
    example = a.examples[0]
    assert example.detail == "value 0: production 0, shadow 1"
    assert '"instances"' in example.input and '"labels": [0]' in example.production


def test_string_labels_and_rows_flattened() -> None:
    pairs = []
    for i in range(50):
        rows = ["cat", "dog", "cat"]
        flipped = ["cat", "dog", "dog" if i < 5 else "cat"]
        pairs.append(
            pair(
                f"e{i}",
                record(f"e{i}", json.dumps({"predictions": [{"label": r} for r in rows]})),
                {
                    "cand": record(
                        f"e{i}", json.dumps({"predictions": [{"label": r} for r in flipped]})
                    )
                },
            )
        )
    a = compare(pairs, options=CompareOptions(selector="predictions[*].label")).agreements[0]
    assert a.kind == "labels"
    assert a.values == 150  # three rows per request: three compared values
    assert a.labels is not None and a.labels.flips == 5
    assert a.pair_agreement_rate == pytest.approx(45 / 50)
    assert a.labels.confusion is not None
    assert a.labels.confusion.labels == ["cat", "dog"]
    assert a.labels.confusion.counts == [[95, 5], [0, 50]]


def _regression(shift: float, n: int = 400, noise: float = 0.0) -> list[dict[str, Any]]:
    pairs = []
    for i in range(n):
        value = (i * 37 % n) / 100 + 0.123  # non-integer: a regressor's output
        other = value + shift + (noise if i % 2 else -noise)
        pairs.append(
            pair(
                f"e{i}",
                record(f"e{i}", json.dumps({"predictions": [value]})),
                {"cand": record(f"e{i}", json.dumps({"predictions": [other]}))},
            )
        )
    return pairs


def test_regressor_differences_and_ks_on_a_shifted_distribution() -> None:
    # Outputs spread uniformly over [0.123, 4.123); the shadow's are 1.0 higher: D = 0.25.
    a = compare(_regression(1.0), options=CompareOptions(selector="predictions")).agreements[0]
    assert a.kind == "numeric"
    assert a.agreement_rate == 0.0 and a.exact_rate == 0.0
    assert a.numeric is not None
    assert a.numeric.mean_abs_diff == pytest.approx(1.0)
    assert a.numeric.max_abs_diff == pytest.approx(1.0)
    assert a.numeric.mean_diff == pytest.approx(1.0)
    assert (
        a.ks is not None
        and a.ks.statistic == pytest.approx(0.25, abs=0.005)
        and a.ks.p_value < 1e-9
    )
    assert a.ks.n_production == a.ks.n_shadow == 400


def test_regressor_within_tolerance_and_ks_on_the_same_distribution() -> None:
    options = CompareOptions(selector="predictions", abs_tolerance=1e-6)
    a = compare(_regression(0.0, noise=1e-9), options=options).agreements[0]
    assert a.kind == "numeric"
    assert a.agreement_rate == 1.0 and a.exact_rate == 0.0
    assert a.numeric is not None
    assert a.numeric.mean_abs_diff == pytest.approx(1e-9, rel=1e-3)
    assert a.numeric.mean_diff == pytest.approx(0.0, abs=1e-12)
    assert a.ks is not None and a.ks.p_value > 0.5


def test_tolerance_decides_agreement() -> None:
    pairs = []
    for i in range(100):
        diff = 0.001 if i % 2 else 0.1
        pairs.append(
            pair(
                f"e{i}",
                record(f"e{i}", "1.5", CSV),
                {"cand": record(f"e{i}", f"{1.5 + diff}", CSV)},
            )
        )
    a = compare(pairs, options=CompareOptions(abs_tolerance=0.01)).agreements[0]
    assert a.agreement_rate == pytest.approx(0.5)
    assert a.numeric is not None and a.numeric.max_abs_diff == pytest.approx(0.1)
    relative = compare(pairs, options=CompareOptions(rel_tolerance=0.1)).agreements[0]
    assert relative.agreement_rate == 1.0  # 0.1 <= 0.1 * 1.6


def test_npy_and_csv_and_json_compare_across_content_types() -> None:
    pairs = [
        pair(
            f"e{i}",
            record(f"e{i}", npy([[0.25, 0.75]]), NPY),
            {
                "csv": record(f"e{i}", "0.25,0.75\n", CSV),
                "json": record(f"e{i}", "[[0.25, 0.75]]", JSON),
            },
        )
        for i in range(10)
    ]
    result = compare(pairs)
    for a in result.agreements:
        assert (a.values, a.exact_values, a.kind) == (20, 20, "numeric")


def test_failed_and_timed_out_shadows_are_counted_not_compared() -> None:
    pairs = [
        pair(f"e{i}", record(f"e{i}", "[1]"), {"cand": record(f"e{i}", "[1]")}) for i in range(6)
    ]
    pairs.append(
        pair(
            "t",
            record("t", "[1]"),
            {"cand": record("t", None, outcome="timeout", status=0, error="2 s")},
        )
    )
    pairs.append(
        pair(
            "f",
            record("f", "[1]"),
            {"cand": record("f", None, outcome="failed", status=0, error="reset")},
        )
    )
    pairs.append(
        pair(
            "x",
            record("x", "[1]"),
            {"cand": record("x", '{"e": 1}', outcome="answered", status=500)},
        )
    )
    pairs.append(pair("p", record("p", None, outcome="failed"), {"cand": record("p", "[1]")}))
    pairs.append(pair("o", None, {"cand": record("o", "[1]")}))  # orphan shadow record
    pairs += [pair(f"n{i}", record(f"n{i}", "[1]")) for i in range(5)]  # not sampled
    a = compare(pairs).agreements[0]
    assert a.production_records == 15 and a.pairs == 10 and a.orphans == 1
    assert a.sampling_rate == pytest.approx(10 / 15)
    assert a.compared_pairs == 6 and a.agreement_rate == 1.0
    assert a.shadow_outcomes() == {"error": 1, "failed": 1, "ok": 7, "timeout": 1}
    assert a.outcomes["failed/ok"] == 1 and a.outcomes["missing/ok"] == 1
    assert a.error_counts() == (10, 1, 3)
    failures = {f.event_id: f for f in a.failures}
    assert failures["t"].outcome == "timeout" and failures["t"].error == "2 s"
    assert failures["f"].outcome == "failed"
    assert failures["x"].outcome == "error" and failures["x"].status == 500


def test_shape_mismatch_counts_every_value_as_disagreeing() -> None:
    pairs = [pair("e", record("e", "[1, 2]"), {"cand": record("e", "[1, 2, 3]")})]
    a = compare(pairs).agreements[0]
    assert (a.shape_mismatches, a.values, a.agreeing_values) == (1, 3, 0)
    assert a.examples[0].detail == "production gave 2 values, the shadow 3"


def test_unparsable_outputs_are_compared_as_bytes_and_reported() -> None:
    pairs = [pair("e", record("e", '{"labels": [1]}'), {"cand": record("e", '{"label": 1}')})]
    a = compare(pairs, options=CompareOptions(selector="labels")).agreements[0]
    assert a.not_parsed == {"shadow": 1}
    assert a.agreement_rate == 0.0
    assert any("no key 'labels'" in problem for problem in a.parse_problems)


def test_samples_are_bounded_and_said_so() -> None:
    options = CompareOptions(selector="predictions", examples=5, value_sample=50)
    a = compare(_regression(0.5, n=300), options=options).agreements[0]
    assert len(a.examples) == 5 and a.disagreeing_pairs == 300
    assert a.ks is not None and a.ks.n_production == 50 and a.ks.sampled_from == 300
    assert any("50 of 300 value pairs" in note for note in a.notes)


def test_label_auto_detection_can_be_overridden() -> None:
    pairs = label_pairs([1, 2, 3] * 10, [1, 2, 4] * 10)
    assert compare(pairs, options=CompareOptions(selector="labels")).agreements[0].kind == "labels"
    numeric = compare(pairs, options=CompareOptions(selector="labels", labels=False)).agreements[0]
    assert numeric.kind == "numeric" and numeric.numeric is not None
    assert numeric.numeric.mean_abs_diff == pytest.approx(1 / 3)


def test_confusion_is_dropped_beyond_max_classes() -> None:
    pairs = label_pairs(list(range(20)), list(range(20)))
    a = compare(pairs, options=CompareOptions(selector="labels", max_classes=10)).agreements[0]
    assert a.labels is not None and a.labels.confusion is None and a.labels.classes_capped


def test_progress_is_reported_every_n_pairs_and_at_the_end() -> None:
    seen: list[int] = []
    pairs = label_pairs([0] * 25, [0] * 25)
    compare(iter(pairs), options=CompareOptions(progress_every=10), progress=seen.append)
    assert seen == [10, 20, 25]
