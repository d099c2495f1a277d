"""`shadowlab captures NAME`: what was captured for an inference experiment or an endpoint.

NAME is looked up through the SageMaker API of a running server, as any SageMaker client would:
an inference experiment's `DataStorageConfig.Destination`, or else an endpoint's
`DataCaptureConfig.DestinationS3Uri`. The captures are then read from the object store the
server writes to: the embedded one under `--data-dir` (the default), or the S3-compatible store
at `--s3-endpoint-url`. It prints, per variant, files, records, outcomes, shed copies and the
time range; `--pairs FILE` (or `-` for stdout) writes the production/shadow pairs joined on
eventId as JSON Lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from shadowlab.capture import ObjectStore, pairs, summarize
from shadowlab.remote import RemoteError as CapturesError
from shadowlab.remote import add_server_arguments, client, open_store


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "captures", help="list what an experiment or endpoint captured; export the pairs"
    )
    parser.add_argument("name", help="inference experiment name, or endpoint name")
    add_server_arguments(parser)
    parser.add_argument(
        "--pairs", metavar="FILE", help="write production/shadow pairs as JSON Lines ('-': stdout)"
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        target = _describe(args.name, args.endpoint_url, args.region)
        store = open_store(args.data_dir, args.s3_endpoint_url)
        report = _report(store, target)
        if args.pairs:
            count = _export(store, target, args.pairs, out)
            report["pairs"] = {"file": args.pairs, "count": count}
    except CapturesError as exc:
        print(f"shadowlab captures: {exc}", file=sys.stderr)
        return 2
    if args.pairs != "-":
        _print(report, out)
    return 0


def _describe(name: str, endpoint_url: str, region: str) -> dict[str, Any]:
    """Destination, endpoint and production variants of NAME (experiment first)."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    sm = client("sagemaker", endpoint_url, region)
    try:
        try:
            experiment = sm.describe_inference_experiment(Name=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFound":
                raise
        else:
            storage = experiment.get("DataStorageConfig") or {}
            if not storage.get("Destination"):
                raise CapturesError(f"inference experiment {name} has no DataStorageConfig")
            source = experiment["ShadowModeConfig"]["SourceModelVariantName"]
            return {
                "kind": "inference experiment",
                "name": name,
                "endpoint": experiment["EndpointMetadata"]["EndpointName"],
                "destination": storage["Destination"],
                "production_variants": [source],
            }
        try:
            endpoint = sm.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":
                raise CapturesError(
                    f"no inference experiment or endpoint named {name} at {endpoint_url}"
                ) from None
            raise
    except EndpointConnectionError:
        raise CapturesError(f"cannot reach the shadowlab server at {endpoint_url}") from None
    except ClientError as exc:
        error = exc.response["Error"]
        raise CapturesError(f"{error['Code']}: {error['Message']}") from None
    capture = endpoint.get("DataCaptureConfig") or {}
    if not capture.get("DestinationS3Uri"):
        raise CapturesError(f"endpoint {name} has no DataCaptureConfig")
    return {
        "kind": "endpoint",
        "name": name,
        "endpoint": name,
        "destination": capture["DestinationS3Uri"],
        "production_variants": [v["VariantName"] for v in endpoint["ProductionVariants"]],
    }


def _report(store: ObjectStore, target: dict[str, Any]) -> dict[str, Any]:
    variants = summarize(store, target["destination"], target["endpoint"])
    return {**target, "variants": [v.as_dict() for _, v in sorted(variants.items())]}


def _export(store: ObjectStore, target: dict[str, Any], path: str, out: TextIO) -> int:
    found = pairs(store, target["destination"], target["endpoint"], target["production_variants"])
    count = 0
    handle = out if path == "-" else open(path, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for pair in found:
            handle.write(json.dumps(pair, separators=(",", ":")) + "\n")
            count += 1
    finally:
        if handle is not out:
            handle.close()
    return count


def _print(report: dict[str, Any], out: TextIO) -> None:
    print(
        f"{report['kind']} {report['name']}: endpoint {report['endpoint']}, "
        f"captured to {report['destination']}",
        file=out,
    )
    header = ("variant", "role", "files", "records", "failed", "timeout", "shed", "from", "to")
    rows = [
        (
            v["variant"],
            ",".join(v["roles"]) or "-",
            str(v["files"]),
            str(v["records"]),
            str(v["failed"]),
            str(v["timeout"]),
            str(v["shed"]),
            v["firstInferenceTime"] or "-",
            v["lastInferenceTime"] or "-",
        )
        for v in report["variants"]
    ]
    if not rows:
        print("nothing captured yet", file=out)
    else:
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            print(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)),
                file=out,
            )
    if "pairs" in report:
        print(f"{report['pairs']['count']} pairs written to {report['pairs']['file']}", file=out)
