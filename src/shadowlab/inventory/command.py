"""`shadowlab inventory`: every inference experiment as a row of the asset-inventory table
`aws.sagemaker_inference_experiment`, read from a running server's `/shadowlab/inventory`.

`--format json|ndjson|csv` prints the rows; `--status` and `--tag key=value` narrow them.
`--require-tags k1,k2` checks them instead, as AWS Config's sagemaker-inferenceexperiment-tagged
rule does: an experiment without any tag, or without one of the keys, is listed and the command
exits 1 (0 when every experiment complies). Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from shadowlab.inventory.rows import (
    FORMATS,
    RESERVED_PREFIX,
    missing_tags,
    parse_tag,
    required_keys,
    select,
    write,
)
from shadowlab.remote import RemoteError, add_server_arguments, get_json
from shadowlab.store.inventory import TABLE

PATH = "/shadowlab/inventory"  # inventory.route.PATH, not imported: that pulls in the web stack


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "inventory", help=f"inference experiments as {TABLE} rows; tag compliance"
    )
    add_server_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="json", help="default %(default)s")
    parser.add_argument(
        "--status", action="append", default=[], help="only this status (repeatable)"
    )
    parser.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="only with this tag"
    )
    parser.add_argument(
        "--all-regions", action="store_true", help="every region, not only --region"
    )
    parser.add_argument(
        "--require-tags",
        nargs="?",
        const="",
        metavar="K1,K2",
        help="list experiments lacking these tag keys (or any tag) and exit 1 if there are any",
    )


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        tags = [parse_tag(t) for t in args.tag]
        required = None if args.require_tags is None else required_keys(args.require_tags)
        statuses = [s for given in args.status for s in given.split(",") if s]
        query = {"status": ",".join(statuses)}
        if not args.all_regions:
            query["region"] = args.region
        answer: dict[str, Any] = get_json(args.endpoint_url, PATH, query, args.region)
    except (RemoteError, ValueError) as exc:
        print(f"shadowlab inventory: {exc}", file=err)
        return 2
    # The route filters by tag too, but takes one query value per name; all of them apply here.
    rows = select(answer["rows"], tags=tags)
    if required is None:
        write(rows, args.format, out)
        return 0
    return _check(rows, required, out, err)


def _check(rows: list[Any], required: list[str], out: TextIO, err: TextIO) -> int:
    offenders = [
        (row, lacking) for row in rows if (lacking := missing_tags(row, required)) is not None
    ]
    for row, lacking in offenders:
        tagged = any(not key.startswith(RESERVED_PREFIX) for key in row["tags"] or {})
        why = f"missing {','.join(lacking)}" if tagged else "no tags"
        print(f"{row['name']}\t{row['arn']}\t{why}", file=out)
    rule = f"tag keys {','.join(required)}" if required else "at least one tag"
    if offenders:
        print(f"{len(offenders)} of {len(rows)} inference experiments lack {rule}", file=err)
        return 1
    print(f"all {len(rows)} inference experiments carry {rule}", file=err)
    return 0
