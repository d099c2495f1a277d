"""Turn a container's `ModelDataUrl` into a local model directory, as SageMaker does.

SageMaker downloads `ModelDataUrl` and unpacks it into `/opt/ml/model` before the container starts;
here the same happens into `dest`. Sources are `file://` paths or `s3://bucket/key` URIs, the latter
read from the embedded object store (`<object_store_root>/<bucket>/<key>`) or, when an S3 client is
given, from a real S3-compatible service. A source is either a directory (copied, so that model
code writing into its model dir cannot touch the original) or a tar archive (extracted safely).

`ArtifactLimits` bound what one model may put on disk (bytes and files), whatever the source: a
few KB of gzip can expand to gigabytes. Archive members are checked by their declared sizes
before anything is written, then by the bytes actually on disk after each one, so neither a
lying header nor hard-link copies get past the limit.

This module does blocking I/O; callers on an event loop run it in a thread.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["ArtifactError", "ArtifactLimits", "prepare_model_dir"]

_COPY_CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """The model artifact could not be made into a model directory; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ArtifactLimits:
    """What one model may unpack to. 10 GiB: far above the scikit-learn and small deep-learning
    models this server hosts, while a bomb stops long before it fills a disk; raise it
    (SHADOWLAB_ARTIFACT_MAX_BYTES) for large models. 100 000 files: more than any real model
    with its code and vendored packages, far fewer than a "many tiny files" bomb."""

    max_bytes: int = 10 * 1024**3
    max_members: int = 100_000


class _Budget:
    """Counts members and bytes against the limits; raises ArtifactError once either is over."""

    def __init__(
        self, url: str, limits: ArtifactLimits, what: str, grows: str = "expands to"
    ) -> None:
        self.url, self.limits, self.what, self.grows = url, limits, what, grows
        self.members = 0
        self.bytes = 0

    def add_members(self, count: int = 1) -> None:
        self.members += count
        if self.members > self.limits.max_members:
            raise ArtifactError(
                f"ModelDataUrl {self.url}: {self.what} has more than {self.limits.max_members} "
                "files (limit SHADOWLAB_ARTIFACT_MAX_MEMBERS)"
            )

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise ArtifactError(
                f"ModelDataUrl {self.url}: {self.what} {self.grows} more than "
                f"{self.limits.max_bytes} bytes (limit SHADOWLAB_ARTIFACT_MAX_BYTES)"
            )


def prepare_model_dir(
    model_data_url: str | None,
    dest: Path,
    object_store_root: Path,
    s3_client: Any | None = None,
    limits: ArtifactLimits | None = None,
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
            root = Path(object_store_root)
            _fill(model_data_url, staging, root, s3_client, limits or ArtifactLimits())
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _fill(
    url: str, staging: Path, object_store_root: Path, s3_client: Any | None, limits: ArtifactLimits
) -> None:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArtifactError(f"ModelDataUrl {url}: file URLs must name a local absolute path")
        _from_local(url, Path(unquote(parts.path)), staging, limits)
    elif parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket:
            raise ArtifactError(f"ModelDataUrl {url}: no bucket")
        if s3_client is not None:
            _from_s3(url, s3_client, bucket, key, staging, limits)
        else:
            source = _object_store_path(url, object_store_root, bucket, key)
            _from_local(url, source, staging, limits)
    else:
        raise ArtifactError(f"ModelDataUrl {url}: only s3:// and file:// URLs are supported")


def _object_store_path(url: str, root: Path, bucket: str, key: str) -> Path:
    # Keys are untrusted: a `..` segment would read outside the object store.
    segments = [bucket, *PurePosixPath(key).parts] if key else [bucket]
    if any(segment in ("..", ".") or "\\" in segment for segment in segments):
        raise ArtifactError(f"ModelDataUrl {url}: bucket and key may not contain . or .. segments")
    return root.joinpath(*segments)


def _from_local(url: str, source: Path, staging: Path, limits: ArtifactLimits) -> None:
    if not source.is_absolute():
        raise ArtifactError(f"ModelDataUrl {url}: path must be absolute")
    if source.is_dir():
        budget = _Budget(url, limits, "the model directory")

        def count(_directory: str, names: list[str]) -> set[str]:
            budget.add_members(len(names))
            return set()

        def copy(src: str, dst: str) -> object:
            budget.add_bytes(os.lstat(src).st_size)
            return shutil.copy2(src, dst, follow_symlinks=False)

        shutil.copytree(
            source, staging, symlinks=True, dirs_exist_ok=True, ignore=count, copy_function=copy
        )
    elif source.is_file():
        _extract(url, source, staging, limits)
    else:
        raise ArtifactError(f"ModelDataUrl {url}: no such object")


def _from_s3(
    url: str, client: Any, bucket: str, key: str, staging: Path, limits: ArtifactLimits
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if key and not key.endswith("/") and _s3_object_exists(client, bucket, key):
            with tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
                archive = Path(scratch) / "model.tar.gz"
                # An archive larger than what it may expand to is not worth downloading.
                budget = _Budget(url, limits, PurePosixPath(key).name, "is")
                _s3_download(client, bucket, key, archive, budget)
                _extract(url, archive, staging, limits)
            return
        # Not a single object: treat the key as a prefix ("directory") and fetch everything below.
        prefix = key if not key or key.endswith("/") else key + "/"
        found = False
        budget = _Budget(url, limits, "the model")
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue  # "folder" placeholder objects
                target = _safe_join(url, staging, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                budget.add_members()
                _s3_download(client, bucket, item["Key"], target, budget)
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


def _s3_download(client: Any, bucket: str, key: str, target: Path, budget: _Budget) -> None:
    # get_object streamed in chunks rather than download_file: no transfer threads, no ranged
    # GETs, which keeps this working against minimal S3-compatible stores.
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with target.open("wb") as out:
            for chunk in iter(lambda: body.read(_COPY_CHUNK), b""):
                budget.add_bytes(len(chunk))
                out.write(chunk)
    finally:
        body.close()


def _safe_join(url: str, root: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise ArtifactError(f"ModelDataUrl {url}: object {relative!r} would land outside the model")
    return root.joinpath(*path.parts)


def _extract(url: str, archive: Path, staging: Path, limits: ArtifactLimits) -> None:
    what = PurePosixPath(urlsplit(url).path).name or "the archive"
    try:
        if not tarfile.is_tarfile(archive):
            raise ArtifactError(
                f"ModelDataUrl {url}: not a tar archive (expected a model.tar.gz or a directory)"
            )
        with tarfile.open(archive, "r:*") as tar:
            members = _declared(url, tar, _Budget(url, limits, what))
            # "data" also refuses links pointing outside, device files and setuid bits.
            written = _written(members, staging, _Budget(url, limits, what))
            tar.extractall(staging, members=written, filter="data")
    except ArtifactError:
        raise
    except tarfile.FilterError as exc:
        raise ArtifactError(f"ModelDataUrl {url}: unsafe archive member: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArtifactError(f"ModelDataUrl {url}: cannot extract archive: {exc}") from exc


def _declared(url: str, tar: tarfile.TarFile, budget: _Budget) -> list[tarfile.TarInfo]:
    """Every member, read header by header (nothing is written yet): stops at the first member
    over a limit, so a bomb is refused without decompressing the rest of it."""
    members = []
    for member in tar:
        # The "data" filter would silently strip a leading "/"; an archive that tries to
        # write outside its directory is broken or hostile, so refuse it outright.
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or os.path.isabs(member.name):
            raise ArtifactError(
                f"ModelDataUrl {url}: archive member {member.name!r} escapes the model dir"
            )
        budget.add_members()
        if member.isreg():  # for a sparse file: its full size
            budget.add_bytes(member.size)
        members.append(member)
    return members


def _written(
    members: Iterable[tarfile.TarInfo], staging: Path, budget: _Budget
) -> Iterator[tarfile.TarInfo]:
    """Hands members to extractall one at a time and counts what each left on disk before the
    next is extracted: a hard link tarfile could not link is written as a full copy."""
    seen: set[tuple[int, int]] = set()
    for member in members:
        yield member  # extractall extracts it before asking for the next
        if not (member.isreg() or member.islnk()):
            continue
        try:
            stat = os.lstat(staging / member.name)
        except OSError:
            continue  # skipped by the filter
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            budget.add_bytes(stat.st_size)
