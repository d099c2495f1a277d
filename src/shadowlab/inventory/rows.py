"""What the inventory commands do with rows of the view: select them, check their tags, print
them. Plain functions over plain dicts, shared by the HTTP route and the CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from shadowlab.store.inventory import COLUMNS, JSON_COLUMNS

Row = Mapping[str, Any]
FORMATS = ("json", "ndjson", "csv")
# Keys AWS reserves: AWS Config's *-tagged rules neither count nor accept them.
RESERVED_PREFIX = "aws:"


def parse_tag(text: str) -> tuple[str, str]:
    """`key=value` (the value may contain `=`; an empty one matches an empty tag value)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ValueError(f"tag filter {text!r} is not key=value")
    return key, value


def region_of(row: Row) -> str:
    # arn:partition:sagemaker:region:account:inference-experiment/name
    return str(row["arn"]).split(":")[3]


def select(
    rows: Iterable[Row],
    *,
    region: str | None = None,
    statuses: Sequence[str] = (),
    tags: Sequence[tuple[str, str]] = (),
) -> list[Row]:
    """The rows in `region` (any if None), in one of `statuses` (any if empty) and carrying
    every `tags` pair."""
    chosen = []
    for row in rows:
        if region is not None and region_of(row) != region:
            continue
        if statuses and row["status"] not in statuses:
            continue
        carried = row["tags"] or {}
        if all(carried.get(key) == value for key, value in tags):
            chosen.append(row)
    return chosen


def required_keys(text: str) -> list[str]:
    """`--require-tags k1,k2` as AWS Config's requiredKeyTags: case-sensitive keys, none
    reserved. Empty: only "has at least one tag" is checked."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    reserved = [key for key in keys if key.startswith(RESERVED_PREFIX)]
    if reserved:
        raise ValueError(
            f"tag keys starting with {RESERVED_PREFIX!r} cannot be required "
            f"(AWS Config refuses them too): {', '.join(reserved)}"
        )
    return keys


def missing_tags(row: Row, required: Sequence[str]) -> list[str] | None:
    """Why `row` breaks the rule of AWS Config's sagemaker-inferenceexperiment-tagged: the
    required keys it lacks (`[]` if none is required and it has no tag at all); None when it
    complies. Tags starting with `aws:` do not count."""
    keys = {key for key in (row["tags"] or {}) if not key.startswith(RESERVED_PREFIX)}
    if not keys:
        return list(required)
    lacking = [key for key in required if key not in keys]
    return lacking or None


def write(rows: Sequence[Row], fmt: str, out: TextIO) -> None:
    """Rows in the view's column order: a JSON array, JSON Lines, or CSV (JSON members and
    tags as compact JSON text, NULL as an empty cell)."""
    if fmt == "json":
        json.dump([{c: row[c] for c in COLUMNS} for row in rows], out, indent=2)
        out.write("\n")
    elif fmt == "ndjson":
        for row in rows:
            out.write(json.dumps({c: row[c] for c in COLUMNS}, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(c, row[c]) for c in COLUMNS])
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in JSON_COLUMNS:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)
