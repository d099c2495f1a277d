"""The `shadowlab` command. Nothing happens at import time."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import get_args

from shadowlab import __version__, captures, inventory, report
from shadowlab.settings import Hosting, LogLevel, Settings, SettingsError, load_settings


def _choices(kind: object) -> str:
    return "{" + ",".join(get_args(kind)) + "}"


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Values are checked by load_settings, as the same values from the environment are: a bad
    # one stops `serve` with one line naming the flag or variable (no argparse usage dump).
    serve = sub.add_parser("serve", help="run the SageMaker-compatible server")
    defaults = Settings()
    serve.add_argument("--host", help=f"address to bind (default {defaults.host})")
    serve.add_argument("--port", help=f"port to bind (default {defaults.port})")
    serve.add_argument("--data-dir", help=f"state directory (default {defaults.data_dir})")
    serve.add_argument("--database-url", help="postgresql://... to share state (default SQLite)")
    serve.add_argument("--s3-endpoint-url", help="S3-compatible store for s3:// URIs")
    serve.add_argument("--account-id", help="AWS account id used in ARNs")
    serve.add_argument(
        "--hosting",
        metavar=_choices(Hosting),
        help="run real worker processes (default) or manage resources only",
    )
    serve.add_argument("--log-level", metavar=_choices(LogLevel))
    serve.add_argument("--worker-user", help="run model workers as this user (server as root)")
    serve.add_argument(
        "--credentials-file",
        help="AWS credentials file: each profile's key pair may sign requests (SigV4, verified)",
    )
    serve.add_argument(
        "--allow-unsigned",
        action="store_true",
        default=None,
        help="accept unsigned requests (development only; loopback binds only)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"shadowlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    captures.add_parser(sub)
    report.add_parser(sub)
    inventory.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            settings = load_settings({k: v for k, v in vars(args).items() if k != "command"})
        except SettingsError as exc:
            for line in str(exc).splitlines():
                print(f"shadowlab serve: {line}", file=sys.stderr)
            return 2
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        from shadowlab.auth import CredentialsError
        from shadowlab.hosting.isolation import WorkerUserError
        from shadowlab.server import serve

        try:
            return serve(settings)
        except (CredentialsError, WorkerUserError) as exc:
            print(f"shadowlab serve: {exc}", file=sys.stderr)
            return 2
    if args.command == "captures":
        return captures.run(args)
    if args.command == "report":
        return report.run(args)
    if args.command == "inventory":
        return inventory.run(args)
    return 2
