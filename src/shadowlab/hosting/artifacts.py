"""Turn a container's `ModelDataUrl` into a local model directory, as SageMaker does.

SageMaker downloads `ModelDataUrl` and unpacks it into `/opt/ml/model` before the container starts;
here the same happens into `dest`. Sources are `file://` paths or `s3://bucket/key` URIs, the latter
read from the embedded object store (`<object_store_root>/<bucket>/<key>`) or, when an S3 client is
given, from a real S3-compatible service. A source is either a directory (copied, so that model
code writing into its model dir cannot touch the original) or a tar archive (extracted safely).

This module does blocking I/O; callers on an event loop run it in a thread.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["ArtifactError", "prepare_model_dir"]

_COPY_CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """The model artifact could not be made into a model directory; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def prepare_model_dir(
    model_data_url: str | None,
    dest: Path,
    object_store_root: Path,
    s3_client: Any | None = None,
) -> Path:
    """Materialise `model_data_url` as the directory `dest` and return it.

    `dest` belongs to hosting: whatever was there is replaced. The new content is assembled in a
    sibling staging directory and renamed into place, so a failed or interrupted preparation never
    leaves a half-extracted model behind. `None` gives an empty model directory (SageMaker allows
    a model without ModelDataUrl, e.g. one whose code fetches everything itself).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        if model_data_url is not None:
            _fill(model_data_url, staging, Path(object_store_root), s3_client)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _fill(url: str, staging: Path, object_store_root: Path, s3_client: Any | None) -> None:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArtifactError(f"ModelDataUrl {url}: file URLs must name a local absolute path")
        _from_local(url, Path(unquote(parts.path)), staging)
    elif parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket:
            raise ArtifactError(f"ModelDataUrl {url}: no bucket")
        if s3_client is not None:
            _from_s3(url, s3_client, bucket, key, staging)
        else:
            _from_local(url, _object_store_path(url, object_store_root, bucket, key), staging)
    else:
        raise ArtifactError(f"ModelDataUrl {url}: only s3:// and file:// URLs are supported")


def _object_store_path(url: str, root: Path, bucket: str, key: str) -> Path:
    # Keys are untrusted: a `..` segment would read outside the object store.
    segments = [bucket, *PurePosixPath(key).parts] if key else [bucket]
    if any(segment in ("..", ".") or "\\" in segment for segment in segments):
        raise ArtifactError(f"ModelDataUrl {url}: bucket and key may not contain . or .. segments")
    return root.joinpath(*segments)


def _from_local(url: str, source: Path, staging: Path) -> None:
    if not source.is_absolute():
        raise ArtifactError(f"ModelDataUrl {url}: path must be absolute")
    if source.is_dir():
        shutil.copytree(source, staging, symlinks=True, dirs_exist_ok=True)
    elif source.is_file():
        _extract(url, source, staging)
    else:
        raise ArtifactError(f"ModelDataUrl {url}: no such object")


def _from_s3(url: str, client: Any, bucket: str, key: str, staging: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if key and not key.endswith("/") and _s3_object_exists(client, bucket, key):
            with tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
                archive = Path(scratch) / "model.tar.gz"
                _s3_download(client, bucket, key, archive)
                _extract(url, archive, staging)
            return
        # Not a single object: treat the key as a prefix ("directory") and fetch everything below.
        prefix = key if not key or key.endswith("/") else key + "/"
        found = False
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue  # "folder" placeholder objects
                target = _safe_join(url, staging, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                _s3_download(client, bucket, item["Key"], target)
                found = True
        if not found:
            raise ArtifactError(f"ModelDataUrl {url}: no such object")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in ("NoSuchBucket", "NoSuchKey", "404"):
            raise ArtifactError(f"ModelDataUrl {url}: no such object ({code})") from exc
        raise ArtifactError(f"ModelDataUrl {url}: S3 error {code}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise ArtifactError(f"ModelDataUrl {url}: S3 error: {exc}") from exc


def _s3_object_exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise
    return True


def _s3_download(client: Any, bucket: str, key: str, target: Path) -> None:
    # get_object streamed in chunks rather than download_file: no transfer threads, no ranged
    # GETs, which keeps this working against minimal S3-compatible stores.
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with target.open("wb") as out:
            for chunk in iter(lambda: body.read(_COPY_CHUNK), b""):
                out.write(chunk)
    finally:
        body.close()


def _safe_join(url: str, root: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise ArtifactError(f"ModelDataUrl {url}: object {relative!r} would land outside the model")
    return root.joinpath(*path.parts)


def _extract(url: str, archive: Path, staging: Path) -> None:
    try:
        if not tarfile.is_tarfile(archive):
            raise ArtifactError(
                f"ModelDataUrl {url}: not a tar archive (expected a model.tar.gz or a directory)"
            )
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                # The "data" filter would silently strip a leading "/"; an archive that tries to
                # write outside its directory is broken or hostile, so refuse it outright.
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts or os.path.isabs(member.name):
                    raise ArtifactError(
                        f"ModelDataUrl {url}: archive member {member.name!r} escapes the model dir"
                    )
            # "data" also refuses links pointing outside, device files and setuid bits.
            tar.extractall(staging, filter="data")
    except ArtifactError:
        raise
    except tarfile.FilterError as exc:
        raise ArtifactError(f"ModelDataUrl {url}: unsafe archive member: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArtifactError(f"ModelDataUrl {url}: cannot extract archive: {exc}") from exc
