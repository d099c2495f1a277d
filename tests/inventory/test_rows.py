"""Selection, tag compliance and output of inventory rows, without a server."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from shadowlab.inventory.rows import missing_tags, parse_tag, required_keys, select, write
from shadowlab.store.inventory import COLUMNS


def _row(
    name: str, tags: dict[str, str], status: str = "Running", region: str = "us-east-1"
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    arn = f"arn:aws:sagemaker:{region}:123456789012:inference-experiment/{name}"
    row.update(_key=arn, arn=arn, name=name, status=status, tags=tags, schedule={"a": "b,c"})
    return row


def test_aws_config_rule_ignores_reserved_tags() -> None:
    # As sagemaker-inferenceexperiment-tagged: no tags (aws: ones do not count) is non-compliant.
    assert missing_tags(_row("a", {}), []) == []
    assert missing_tags(_row("a", {"aws:cloudformation:stack-name": "s"}), []) == []
    assert missing_tags(_row("a", {"team": "ml"}), []) is None
    assert missing_tags(_row("a", {"team": "ml"}), ["team", "Owner"]) == ["Owner"]
    assert missing_tags(_row("a", {"team": "ml", "Owner": ""}), ["team", "Owner"]) is None
    assert missing_tags(_row("a", {"Team": "ml"}), ["team"]) == ["team"]  # case-sensitive
    assert required_keys(" team, owner ,,") == ["team", "owner"]
    with pytest.raises(ValueError, match="aws:"):
        required_keys("team,aws:createdBy")


def test_select_by_region_status_and_tags() -> None:
    rows = [
        _row("a", {"team": "ml"}),
        _row("b", {"team": "ml", "env": "a=b"}, status="Completed"),
        _row("c", {"team": "ml"}, region="eu-west-1"),
    ]
    assert [r["name"] for r in select(rows, region="us-east-1")] == ["a", "b"]
    assert [r["name"] for r in select(rows, statuses=["Completed"])] == ["b"]
    assert [r["name"] for r in select(rows, tags=[parse_tag("env=a=b")])] == ["b"]
    assert [r["name"] for r in select(rows, tags=[("team", "ml"), ("env", "x")])] == []
    with pytest.raises(ValueError, match="key=value"):
        parse_tag("=x")


def test_formats_round_trip() -> None:
    rows = [_row("a", {"team": "ml"}), _row("b", {})]
    out = io.StringIO()
    write(rows, "json", out)
    assert json.loads(out.getvalue()) == rows
    out = io.StringIO()
    write(rows, "ndjson", out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == rows
    out = io.StringIO()
    write(rows, "csv", out)
    cells = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [json.loads(c["tags"]) for c in cells] == [{"team": "ml"}, {}]
    assert cells[0]["schedule"] == '{"a":"b,c"}' and cells[0]["description"] == ""
