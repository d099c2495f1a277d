"""The inventory view against a real server, on SQLite and PostgreSQL: experiments created and
moved through their states with boto3, then read with plain SQL, the HTTP route and the CLI.
Every column must equal what DescribeInferenceExperiment / ListTags say for the experiment."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATABASES, PG_URL, fresh_database_url
from tests.contract.helpers import (
    checked,
    create_endpoint,
    create_model,
    experiment_request,
    in_seconds,
    wait_endpoint,
    wait_experiment,
)
from tests.serverproc import CREDENTIALS, REGION, ServerProcess, signed_urlopen

COLUMNS = [
    "_key",
    "account_id",
    "arn",
    "completion_time",
    "creation_time",
    "data_storage_config",
    "description",
    "endpoint_metadata",
    "last_modified_time",
    "model_variants",
    "name",
    "role_arn",
    "schedule",
    "shadow_mode_config",
    "status",
    "status_reason",
    "tags",
    "type",
]
JSON_COLUMNS = {
    "data_storage_config",
    "endpoint_metadata",
    "model_variants",
    "schedule",
    "shadow_mode_config",
}
TIME_COLUMNS = {"completion_time", "creation_time", "last_modified_time"}


@dataclass
class Lab:
    kind: str
    server: ServerProcess
    read_sql: Callable[[], dict[str, dict[str, Any]]]  # name -> row, as plain SQL reads it
    names: dict[str, str] = field(default_factory=dict)  # role in the story -> experiment name


def _pg_database() -> tuple[str, Callable[[], None]]:
    """A database of its own (not just a schema), so the view is exactly `aws.<table>`."""
    fresh_database_url("postgres", "")  # skips (or fails on CI) when PostgreSQL is absent
    import psycopg

    name = f"inv_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return PG_URL.rsplit("/", 1)[0] + f"/{name}", drop


def _pg_reader(url: str) -> Callable[[], dict[str, dict[str, Any]]]:
    def read() -> dict[str, dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(url.replace("+psycopg", ""), row_factory=dict_row) as conn:
            rows = conn.execute(
                "SELECT *, hstore_to_json(tags) AS tags_json "
                "FROM aws.sagemaker_inference_experiment"
            ).fetchall()
        out = {}
        for row in rows:
            row["tags"] = row.pop("tags_json")
            out[row["name"]] = row
        return out

    return read


def _sqlite_reader(path: Path) -> Callable[[], dict[str, dict[str, Any]]]:
    def read() -> dict[str, dict[str, Any]]:
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM aws_sagemaker_inference_experiment").fetchall()
        finally:
            conn.close()
        out = {}
        for raw in rows:
            row = dict(raw)
            for column in JSON_COLUMNS | {"tags"}:
                row[column] = None if row[column] is None else json.loads(row[column])
            for column in TIME_COLUMNS:
                row[column] = None if row[column] is None else datetime.fromisoformat(row[column])
            out[row["name"]] = row
        return out

    return read


def _story(sm: Any) -> dict[str, str]:
    """Three experiments in three states: completed (tagged team+owner, stopped with a reason),
    created for later (tagged team, retagged), cancelled (no tags)."""
    names = {}
    first = create_endpoint(sm)
    shadow = create_model(sm)
    done = f"done-{uuid.uuid4().hex[:6]}"
    request = experiment_request(done, first, shadow)
    request["Tags"] = [{"Key": "team", "Value": "ml"}, {"Key": "owner", "Value": "ana"}]
    request["DataStorageConfig"] = {"Destination": "s3://captures/inventory/"}
    checked(sm, "CreateInferenceExperiment", **request)
    wait_experiment(sm, done, "Running")
    names["done"] = done
    second = create_endpoint(sm)
    later = f"later-{uuid.uuid4().hex[:6]}"
    request = experiment_request(
        later, second, create_model(sm), schedule={"StartTime": in_seconds(3600)}
    )
    request["Tags"] = [{"Key": "team", "Value": "old"}]
    checked(sm, "CreateInferenceExperiment", **request)
    wait_experiment(sm, later, "Created")
    arn = sm.describe_inference_experiment(Name=later)["Arn"]
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "search"}, {"Key": "x", "Value": ""}]
    )
    sm.delete_tags(ResourceArn=arn, TagKeys=["x"])
    names["created"] = later
    third = create_endpoint(sm)
    gone = f"gone-{uuid.uuid4().hex[:6]}"
    checked(sm, "CreateInferenceExperiment", **experiment_request(gone, third, create_model(sm)))
    wait_experiment(sm, gone, "Running")
    checked(
        sm,
        "StopInferenceExperiment",
        Name=gone,
        ModelVariantActions={"variant-1": "Retain", "shadow-1": "Remove"},
        DesiredState="Cancelled",
        Reason="abandoned",
    )
    names["cancelled"] = gone
    return names


@pytest.fixture(scope="module", params=DATABASES)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root: Path = tmp_path_factory.mktemp(f"inventory-{request.param}")
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if request.param == "postgres":
        url, drop = _pg_database()
        server = ServerProcess(data_dir=root / "data", database_url=url).start()
        read = _pg_reader(url)
    else:
        server = ServerProcess(data_dir=root / "data").start()
        read = _sqlite_reader(root / "data" / "shadowlab.db")
    try:
        yield Lab(request.param, server, read, _story(server.client()))
    finally:
        server.stop()
        drop()


def _expected(describe: dict[str, Any], tags: list[dict[str, str]]) -> dict[str, Any]:
    """The row the view must hold for this Describe and ListTags answer."""
    arn = describe["Arn"]
    return {
        "_key": arn,
        "account_id": arn.split(":")[4],
        "arn": arn,
        "completion_time": describe.get("CompletionTime"),
        "creation_time": describe["CreationTime"],
        "data_storage_config": describe.get("DataStorageConfig"),
        "description": describe.get("Description"),
        "endpoint_metadata": describe["EndpointMetadata"],
        "last_modified_time": describe["LastModifiedTime"],
        "model_variants": describe["ModelVariants"],
        "name": describe["Name"],
        "role_arn": describe["RoleArn"],
        "schedule": describe["Schedule"],
        "shadow_mode_config": describe["ShadowModeConfig"],
        "status": describe["Status"],
        "status_reason": describe.get("StatusReason"),
        "tags": {t["Key"]: t["Value"] for t in tags},
        "type": describe["Type"],
    }


def _as_read(row: dict[str, Any]) -> dict[str, Any]:
    """A view row with the Schedule's ISO 8601 text parsed, to compare with Describe's."""
    out = dict(row)
    out["schedule"] = {k: datetime.fromisoformat(v) for k, v in (row["schedule"] or {}).items()}
    return out


def _settled(sm: Any, name: str, read: Callable[[], dict[str, Any]]) -> tuple[Any, Any]:
    """Describe, the row and Describe again until both Describes agree: the reconciler may move
    the experiment between reads."""
    for _ in range(50):
        before = sm.describe_inference_experiment(Name=name)
        tags = sm.list_tags(ResourceArn=before["Arn"])["Tags"]
        row = read()[name]
        after = sm.describe_inference_experiment(Name=name)
        before.pop("ResponseMetadata")
        after.pop("ResponseMetadata")
        if before == after:
            return _expected(before, tags), row
    raise AssertionError(f"{name} never held still")


def _check_all(lab: Lab) -> None:
    sm = lab.server.client()
    for name in lab.names.values():
        expected, row = _settled(sm, name, lab.read_sql)
        assert list(row) == COLUMNS
        assert _as_read(row) == expected, name


def test_every_column_matches_describe_in_every_state(lab: Lab) -> None:
    sm = lab.server.client()
    _check_all(lab)  # Running, Created, Stopping or Cancelled
    wait_experiment(sm, lab.names["cancelled"], "Cancelled")
    checked(
        sm,
        "StopInferenceExperiment",
        Name=lab.names["done"],
        ModelVariantActions={"variant-1": "Retain", "shadow-1": "Remove"},
        Reason="enough data",
    )
    done = wait_experiment(sm, lab.names["done"], "Completed")
    wait_endpoint(sm, done["EndpointMetadata"]["EndpointName"], "InService")
    _check_all(lab)
    rows = lab.read_sql()
    assert {rows[n]["status"] for n in lab.names.values()} == {"Completed", "Created", "Cancelled"}
    assert rows[lab.names["done"]]["completion_time"] is not None
    assert rows[lab.names["cancelled"]]["status_reason"] == "abandoned"
    assert rows[lab.names["created"]]["tags"] == {"team": "search"}


# One engine's tests ask for that engine's server alone (the fixture is parametrized over both).
POSTGRES_ONLY = pytest.mark.parametrize(
    "lab", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
# The command reads the route, which test_route_serves_the_view checks on both engines.
SQLITE_ONLY = pytest.mark.parametrize("lab", ["sqlite"], indirect=True)


@POSTGRES_ONLY
def test_postgres_column_types_and_hstore(lab: Lab) -> None:
    import psycopg

    url = lab.server.database_url
    assert url is not None
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = 'aws' AND table_name = 'sagemaker_inference_experiment' "
                "ORDER BY ordinal_position"
            ).fetchall()
        )
        name = lab.names["done"]
        team = conn.execute(
            "SELECT tags -> 'team' FROM aws.sagemaker_inference_experiment WHERE name = %s",
            (name,),
        ).fetchone()
    json_types = {c: "json" for c in JSON_COLUMNS}
    times = {c: "timestamptz" for c in TIME_COLUMNS}
    assert types == {c: json_types.get(c) or times.get(c) or "text" for c in COLUMNS} | {
        "tags": "hstore"
    }
    assert team == ("ml",)


def test_route_serves_the_view(lab: Lab) -> None:
    rows = lab.read_sql()
    with signed_urlopen(f"{lab.server.url}/shadowlab/inventory?status=Created,Cancelled") as reply:
        answer = json.loads(reply.read())
    assert answer["table"] == "aws.sagemaker_inference_experiment"
    assert answer["columns"] == COLUMNS
    assert sorted(r["name"] for r in answer["rows"]) == sorted(
        n for n, r in rows.items() if r["status"] in ("Created", "Cancelled")
    )
    for served in answer["rows"]:
        read = rows[served["name"]]
        for column in TIME_COLUMNS:
            value = served[column]
            assert (value and datetime.fromisoformat(value)) == read[column]
        assert {k: v for k, v in served.items() if k not in TIME_COLUMNS} == {
            k: v for k, v in read.items() if k not in TIME_COLUMNS
        }
    url = f"{lab.server.url}/shadowlab/inventory?tag=team%3Dsearch&region=us-west-2"
    with signed_urlopen(url) as reply:
        assert json.loads(reply.read())["rows"] == []


def _cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shadowlab", "inventory", *args]
    command += ["--endpoint-url", lab.server.url]
    env = {**os.environ, **CREDENTIALS, "AWS_DEFAULT_REGION": REGION}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


@SQLITE_ONLY
def test_cli_exports_round_trip(lab: Lab) -> None:
    as_json = _cli(lab, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert sorted(r["name"] for r in rows) == sorted(lab.names.values())
    assert all(list(r) == COLUMNS for r in rows)
    as_ndjson = _cli(lab, "--format", "ndjson")
    assert [json.loads(line) for line in as_ndjson.stdout.splitlines()] == rows
    as_csv = _cli(lab, "--format", "csv")
    read = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(read) == len(rows)
    for cells, row in zip(read, rows, strict=True):
        assert list(cells) == COLUMNS
        for column in COLUMNS:
            value = row[column]
            if column in JSON_COLUMNS or column == "tags":
                assert (json.loads(cells[column]) if cells[column] else None) == value
            else:
                assert cells[column] == ("" if value is None else value)
    tagged = _cli(lab, "--tag", "team=ml", "--status", "Completed,Running", "--format", "ndjson")
    assert [json.loads(line)["name"] for line in tagged.stdout.splitlines()] == [lab.names["done"]]


@SQLITE_ONLY
def test_cli_tag_compliance(lab: Lab) -> None:
    failing = _cli(lab, "--require-tags", "team,owner")
    assert failing.returncode == 1, failing.stderr
    offenders = dict(line.split("\t")[0::2] for line in failing.stdout.splitlines())
    assert offenders == {lab.names["created"]: "missing owner", lab.names["cancelled"]: "no tags"}
    assert "2 of 3" in failing.stderr
    any_tag = _cli(lab, "--require-tags")
    assert any_tag.returncode == 1 and any_tag.stdout.split("\t")[0] == lab.names["cancelled"]
    passing = _cli(lab, "--require-tags", "team", "--tag", "team=ml")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert passing.stdout == ""


@SQLITE_ONLY
def test_cli_errors_exit_2(lab: Lab) -> None:
    reserved = _cli(lab, "--require-tags", "aws:cloudformation:stack-name")
    assert reserved.returncode == 2 and reserved.stderr.count("\n") == 1
    bad_tag = _cli(lab, "--tag", "novalue")
    assert bad_tag.returncode == 2 and "key=value" in bad_tag.stderr
    command = [
        sys.executable,
        "-m",
        "shadowlab",
        "inventory",
        "--endpoint-url",
        "http://127.0.0.1:9",
    ]
    env = {**os.environ, **CREDENTIALS}
    unreachable = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
