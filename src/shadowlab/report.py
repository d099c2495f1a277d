"""`shadowlab report EXPERIMENT`: how the shadow compares with production, and the verdict.

Reads the experiment through the SageMaker API of a running server (boto3, as any client), its
metrics from the server's `GET /shadowlab/metrics/query`, and its captured pairs from the object
store; compares them (`shadowlab.analysis`) and prints a terminal summary. `--html FILE` also
writes one self-contained HTML report, `--json FILE` (or `-`) the same data as JSON. How to
compare comes from the experiment's tags (`shadowlab:selector`, `shadowlab:max-p99-ratio` ...)
and may be overridden here. Exit status: 0 pass, 1 fail, 3 not enough data, 2 error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from shadowlab.analysis import FAIL, PASS, CompareOptions, render_html, render_text
from shadowlab.analysis.selector import SelectorError
from shadowlab.remote import (
    RemoteError,
    add_server_arguments,
    client,
    get_json,
    open_store,
    sync_captures,
)
from shadowlab.reporting import ReportError, compare_experiment, window

EXIT_CODES = {PASS: 0, FAIL: 1}
EXIT_NOT_ENOUGH_DATA = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("report", help="compare an experiment's shadow with production")
    parser.add_argument("experiment", help="inference experiment name")
    add_server_arguments(parser)
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    parser.add_argument("--json", metavar="FILE", help="also write the data as JSON ('-': stdout)")
    parser.add_argument("--selector", help="which part of a JSON answer is the prediction")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    progress = None if args.quiet else _Progress(err)
    try:
        experiment, endpoint, tags = _describe(args.experiment, args.endpoint_url, args.region)
        start, end = window(experiment)
        sync_captures(args.endpoint_url, args.region)
        metrics = get_json(
            args.endpoint_url,
            "/shadowlab/metrics/query",
            {
                "endpoint": experiment["EndpointMetadata"]["EndpointName"],
                "region": args.region,
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            args.region,
        )
        store = open_store(args.data_dir, args.s3_endpoint_url)
        base = CompareOptions()
        if args.selector:
            base = replace(base, selector=args.selector)
        comparison = compare_experiment(experiment, endpoint, tags, metrics, store, base, progress)
    except (RemoteError, ReportError, SelectorError) as exc:
        print(f"shadowlab report: {exc}", file=err)
        return 2
    finally:
        if progress is not None:
            progress.done()
    if args.json:
        text = comparison.to_json(indent=2)
        if args.json == "-":
            print(text, file=out)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.json != "-":
        print(render_text(comparison), file=out)
    if args.html:
        Path(args.html).write_text(render_html(comparison), encoding="utf-8")
        if args.json != "-":
            print(f"HTML report: {args.html}", file=out)
    return EXIT_CODES.get(comparison.verdict.status, EXIT_NOT_ENOUGH_DATA)


def _describe(
    name: str, endpoint_url: str, region: str
) -> tuple[dict[str, Any], dict[str, Any] | None, list[tuple[str, str]]]:
    from botocore.exceptions import ClientError, EndpointConnectionError

    sm = client("sagemaker", endpoint_url, region)
    try:
        experiment: dict[str, Any] = sm.describe_inference_experiment(Name=name)
        tags = sm.list_tags(ResourceArn=experiment["Arn"])["Tags"]
        endpoint = None
        # Deleted since: the experiment's own capture config still says where to look.
        with contextlib.suppress(ClientError):
            endpoint = sm.describe_endpoint(
                EndpointName=experiment["EndpointMetadata"]["EndpointName"]
            )
    except EndpointConnectionError:
        raise RemoteError(f"cannot reach the shadowlab server at {endpoint_url}") from None
    except ClientError as exc:
        error = exc.response["Error"]
        raise RemoteError(f"{error['Code']}: {error['Message']}") from None
    return experiment, endpoint, [(t["Key"], t["Value"]) for t in tags]


class _Progress:
    """Pairs read so far, on one rewritten line of stderr (only on a terminal)."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.shown = False
        self.tty = err.isatty()

    def __call__(self, pairs: int) -> None:
        if self.tty:
            print(f"\r  comparing: {pairs:,} pairs read", end="", file=self.err, flush=True)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            print(file=self.err)
