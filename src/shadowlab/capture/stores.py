"""Where capture files go: the embedded local store, or any S3-compatible service via boto3.

Both speak buckets and keys exactly as S3 does, so the writer and the reader never care which
one they have. The local store maps ``s3://bucket/key`` to ``<root>/bucket/key`` (the data dir's
``s3/`` by default, as the ARCHITECTURE contract says) and writes atomically: a reader or a crash
sees the old object or the new one, never half of one, which is what makes a re-upload after a
crash a harmless overwrite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

_TMP_PREFIX = ".tmp-"  # in-progress local writes; never listed


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    """What the capture writer and reader need from an object store."""

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None
    ) -> None:
        """Store `data` at bucket/key, replacing what was there."""

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        """Store the file's bytes at bucket/key (streamed, not read into memory)."""

    def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    def iter_lines(self, bucket: str, key: str) -> Iterator[bytes]:
        """The object's lines without their newlines, streamed."""

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, in key order (as S3 lists them)."""

    def delete(self, bucket: str, key: str) -> None:
        """Remove bucket/key; no error when it is already gone."""


class LocalObjectStore:
    """``s3://bucket/key`` -> ``root/bucket/key`` on this machine. KMS keys are accepted and
    ignored: encryption at rest is the disk's business here.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, bucket: str, key: str) -> Path:
        """The file that holds bucket/key; refuses names that would leave the root."""
        if not bucket or "/" in bucket or bucket in (".", ".."):
            raise ValueError(f"invalid bucket name {bucket!r}")
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts) or parts[-1].startswith(_TMP_PREFIX):
            raise ValueError(f"key {key!r} cannot be stored in a local directory")
        return self.root.joinpath(bucket, *parts)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None
    ) -> None:
        with self._atomic(bucket, key) as out:
            out.write(data)

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        with self._atomic(bucket, key) as out, open(path, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)

    @contextlib.contextmanager
    def _atomic(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        target = self.path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)

    def get(self, bucket: str, key: str) -> bytes:
        return self.path(bucket, key).read_bytes()

    def iter_lines(self, bucket: str, key: str) -> Iterator[bytes]:
        with open(self.path(bucket, key), "rb") as source:
            for line in source:
                yield line[:-1] if line.endswith(b"\n") else line

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        bucket_dir = self.path(bucket, "x").parent
        # Walk only the directory the prefix names fully; the rest is a string match, as in S3.
        start = bucket_dir.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else bucket_dir
        found: list[ObjectInfo] = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                full = Path(dirpath, name)
                key = full.relative_to(bucket_dir).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        found.append(ObjectInfo(key, full.stat().st_size))
        found.sort(key=lambda info: info.key.encode())  # S3 orders by UTF-8 bytes
        yield from found

    def delete(self, bucket: str, key: str) -> None:
        self.path(bucket, key).unlink(missing_ok=True)


class S3ObjectStore:
    """Through a boto3 S3 client (AWS or any S3-compatible endpoint). The client is shared by
    threads, which boto3 clients allow; give it short timeouts (botocore ``Config``) so that an
    unreachable store fails fast and the writer's own backoff takes over.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def _encryption(kms_key_id: str | None) -> dict[str, str]:
        if not kms_key_id:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None
    ) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, **self._encryption(kms_key_id))

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        # One PUT streamed from the file (files rotate well below S3's 5 GB single-PUT limit).
        with open(path, "rb") as body:
            self.client.put_object(
                Bucket=bucket, Key=key, Body=body, **self._encryption(kms_key_id)
            )

    def get(self, bucket: str, key: str) -> bytes:
        body = self._body(bucket, key)
        try:
            return bytes(body.read())
        finally:
            body.close()

    def iter_lines(self, bucket: str, key: str) -> Iterator[bytes]:
        body = self._body(bucket, key)
        try:
            # Split on b"\n" only (StreamingBody.iter_lines would also split on a raw b"\r").
            pending = b""
            for chunk in body.iter_chunks(1 << 16):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                yield from lines
            if pending:
                yield pending
        finally:
            body.close()

    def _body(self, bucket: str, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"s3://{bucket}/{key}") from None

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield ObjectInfo(item["Key"], int(item["Size"]))

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (POSIX needs the directory synced too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
