"""How the client-side commands (`captures`, `report`) reach a running server and its store.

The server is reached as any SageMaker client reaches SageMaker, through boto3 with
`endpoint_url`; captures are read from the object store the server writes to: the embedded one
under its data dir, or the S3-compatible store at `--s3-endpoint-url`.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from shadowlab.capture import LocalObjectStore, ObjectStore, S3ObjectStore
from shadowlab.settings import Settings


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the server and its captures are: the flags every client-side command shares."""
    defaults = Settings()
    parser.add_argument(
        "--endpoint-url",
        default=f"http://{defaults.host}:{defaults.port}",
        help="the shadowlab server (default %(default)s)",
    )
    parser.add_argument("--region", default=defaults.default_region)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="the server's data dir, for the embedded store (default %(default)s)",
    )
    parser.add_argument("--s3-endpoint-url", help="read captures from this S3-compatible store")


class RemoteError(Exception):
    """Something the user can fix (a name, a URL, a path); the message says what."""


# Without configured credentials a server started with --allow-unsigned still answers; any
# key pair will do for it, and one with credentials says UnrecognizedClientException.
_UNSIGNED = "unsigned"
_NO_CREDENTIALS = {"aws_access_key_id": _UNSIGNED, "aws_secret_access_key": _UNSIGNED}


def client(service: str, endpoint_url: str, region: str) -> Any:
    import boto3

    session = boto3.session.Session()
    credentials = _NO_CREDENTIALS if session.get_credentials() is None else {}
    return session.client(service, endpoint_url=endpoint_url, region_name=region, **credentials)


def signed_request(
    url: str, region: str, *, method: str = "GET", body: bytes = b""
) -> urllib.request.Request:
    """A request to one of the server's own routes, signed (SigV4, service "sagemaker") with
    the credentials boto3 finds, as the server's API calls are."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    found = boto3.session.Session().get_credentials()
    credentials = (
        found.get_frozen_credentials() if found is not None else Credentials(_UNSIGNED, _UNSIGNED)
    )
    aws = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(credentials, "sagemaker", region).add_auth(aws)
    return urllib.request.Request(
        url, data=body or None, method=method, headers=dict(aws.headers.items())
    )


def open_store(data_dir: Path, s3_endpoint_url: str | None) -> ObjectStore:
    if s3_endpoint_url:
        return S3ObjectStore(client("s3", s3_endpoint_url, "us-east-1"))
    root = Path(data_dir) / "s3"
    if not root.is_dir():
        raise RemoteError(f"no embedded object store at {root} (is --data-dir right?)")
    return LocalObjectStore(root)


def get_json(endpoint_url: str, path: str, query: dict[str, str], region: str) -> Any:
    """GET one of the server's own JSON routes."""
    url = f"{endpoint_url.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(signed_request(url, region), timeout=30) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise RemoteError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RemoteError(f"cannot reach the shadowlab server at {endpoint_url}: {exc}") from None


def sync_captures(endpoint_url: str, region: str) -> None:
    """Ask the server to store what it has captured so far (open files sealed), so that a
    report on a running experiment sees every request; a server that captures nothing says
    404, which is fine."""
    url = f"{endpoint_url.rstrip('/')}/shadowlab/capture/sync"
    request = signed_request(url, region, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise RemoteError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RemoteError(f"cannot reach the shadowlab server at {endpoint_url}: {exc}") from None
