"""Buckets and objects on disk: the embedded object store's tree, `<root>/<bucket>/<key>`.

The tree is the one `capture.LocalObjectStore` writes (capture files) and hosting reads (s3://
model data), so what either puts there is an object here, and the reverse.

Writes are atomic: the bytes go to a temporary file under `<root>/.shadowlab/tmp`, are synced,
then renamed into place, so a reader or a crash sees the old object or the new one, never part
of one; a temporary file left by a crash is in no bucket and is swept at start-up.

What S3 keeps beside the bytes (ETag, Content-Type and the other content headers, x-amz-meta-*,
checksums, the part count) lives in a JSON sidecar under `<root>/.shadowlab/meta/<bucket>/`,
named by the SHA-256 of the key: `.shadowlab` starts with a dot, so it can never be a bucket
name, ListBuckets skips it and `LocalObjectStore.list` (per bucket) never walks it. Sidecars
rather than extended attributes because xattrs are not kept by every filesystem (overlay and
some container volumes drop them) nor by the copies people make of a data dir. A sidecar
records the inode, size and mtime of the file it describes; an object replaced by anything else
(a capture upload, a hand edit) no longer matches it and is described afresh: its ETag is then
the MD5 of its bytes, computed once and written back as a sidecar.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from shadowlab.capture.stores import LocalObjectStore, fsync_dir
from shadowlab.s3api.errors import S3Error, no_such_bucket, no_such_key

SYSTEM_DIR = ".shadowlab"
_STALE_TMP_S = 3600.0  # temporary files older than this at start-up are a crash's leftovers
# S3's rules for new bucket names (general purpose buckets).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_CHUNK = 1 << 20


@dataclass
class ObjectMeta:
    """What an object is besides its bytes. `headers` holds content headers by their model
    member names (ContentType, CacheControl ...); `checksums` ChecksumCRC32 ... -> base64."""

    etag: str  # quoted, as on the wire
    size: int
    modified: float  # epoch seconds
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    parts: int = 0  # multipart objects: how many parts

    @property
    def last_modified(self) -> datetime:
        # S3 reports whole seconds (HTTP dates cannot carry more).
        return datetime.fromtimestamp(int(self.modified), UTC)


def valid_new_bucket_name(name: str) -> bool:
    return (
        _BUCKET_NAME.fullmatch(name) is not None
        and ".." not in name
        and _IP_LIKE.fullmatch(name) is None
    )


class ObjectFiles:
    """The store's operations on files; every method is blocking I/O (run in a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.system = self.root / SYSTEM_DIR
        self.tmp = self.system / "tmp"
        self.meta = self.system / "meta"
        self.buckets_meta = self.system / "buckets"
        self.local = LocalObjectStore(self.root)  # its key -> path rules, shared

    def prepare(self) -> None:
        for path in (self.tmp, self.meta, self.buckets_meta):
            path.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - _STALE_TMP_S
        for leftover in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    # -- buckets ---------------------------------------------------------------------------
    def bucket_dir(self, bucket: str) -> Path:
        """The bucket's directory; NoSuchBucket if there is none (or the name is not one)."""
        if not bucket or "/" in bucket or bucket.startswith("."):
            raise no_such_bucket(bucket)
        path = self.root / bucket
        if not path.is_dir():
            raise no_such_bucket(bucket)
        return path

    def create_bucket(self, bucket: str) -> None:
        if not valid_new_bucket_name(bucket):
            raise S3Error(
                "InvalidBucketName", "The specified bucket is not valid.", BucketName=bucket
            )
        try:
            (self.root / bucket).mkdir(parents=True)
        except FileExistsError:
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                BucketName=bucket,
            ) from None
        self.buckets_meta.mkdir(parents=True, exist_ok=True)
        self._write_json(self.buckets_meta / bucket, {"created": time.time()})

    def delete_bucket(self, bucket: str) -> None:
        path = self.bucket_dir(bucket)
        # Directories bottom-up with rmdir, never rmtree: an object written meanwhile makes
        # this fail (BucketNotEmpty) instead of being deleted with the bucket.
        try:
            for dirpath, _dirs, files in os.walk(path, topdown=False):
                for name in files:
                    if not name.startswith(".tmp-"):
                        raise _not_empty(bucket)
                os.rmdir(dirpath)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise _not_empty(bucket) from None
            raise
        with contextlib.suppress(FileNotFoundError):
            (self.buckets_meta / bucket).unlink()
        _remove_tree(self.meta / bucket)

    def list_buckets(self) -> list[tuple[str, datetime]]:
        found: list[tuple[str, datetime]] = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            info = self._read_json(self.buckets_meta / entry.name)
            created = info.get("created") if info else None
            if not isinstance(created, int | float):
                created = entry.stat().st_mtime  # made by a capture upload or by hand
            found.append((entry.name, datetime.fromtimestamp(int(created), UTC)))
        return found

    # -- objects ---------------------------------------------------------------------------
    def path(self, bucket: str, key: str, *, writing: bool = False) -> Path:
        base = self.bucket_dir(bucket)
        if len(key.encode("utf-8")) > 1024:
            raise S3Error("KeyTooLongError", "Your key is too long")
        try:
            path = self.local.path(bucket, key)
        except ValueError:
            if not writing:
                raise no_such_key(key) from None
            raise S3Error(
                "InvalidArgument",
                f"The key {key[:128]!r} cannot be stored in the local object store: empty, '.' "
                "or '..' path segments and a last segment starting with '.tmp-' are not "
                "possible there.",
                ArgumentName="key",
            ) from None
        assert path.parent == base or base in path.parents
        return path

    def head(self, bucket: str, key: str) -> ObjectMeta:
        path = self.path(bucket, key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_key(key) from None
        if not path.is_file():
            raise no_such_key(key)  # a "directory" of deeper keys is not an object
        stored = self._read_json(self._sidecar(bucket, key))
        if stored is not None and stored.pop("identity", None) == _identity(st):
            with contextlib.suppress(TypeError):  # a sidecar of an older layout: redo it
                return ObjectMeta(**stored)
        # Written by something else (capture, by hand): describe it now, once.
        md5 = hashlib.md5()
        with open(path, "rb") as source:
            while chunk := source.read(_CHUNK):
                md5.update(chunk)
        meta = ObjectMeta(f'"{md5.hexdigest()}"', st.st_size, st.st_mtime)
        with contextlib.suppress(OSError):
            self._save_meta(bucket, key, meta, st)
        return meta

    def read(self, bucket: str, key: str, start: int, length: int) -> bytes:
        try:
            with open(self.path(bucket, key), "rb") as source:
                source.seek(start)
                return source.read(length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise no_such_key(key) from None

    def write(
        self, bucket: str, key: str, fill: Callable[[BinaryIO], str], meta: ObjectMeta
    ) -> ObjectMeta:
        """Store the bytes `fill` writes (it returns the quoted ETag) atomically at bucket/key,
        described by `meta` (its etag, size and modified are set here)."""
        target = self.path(bucket, key, writing=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                meta.etag = fill(out)
                out.flush()
                os.fsync(out.fileno())
                st = os.fstat(out.fileno())  # the inode keeps these through the rename
            self._rename_into(tmp, target, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(target.parent)
        meta.size, meta.modified = st.st_size, st.st_mtime
        self._save_meta(bucket, key, meta, st)
        return meta

    def _rename_into(self, tmp: str, target: Path, key: str) -> None:
        for attempt in range(3):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_dir():
                    raise IsADirectoryError
                os.replace(tmp, target)
                return
            except FileNotFoundError:
                if attempt == 2:  # a parent pruned by a concurrent delete, three times
                    raise
            except (NotADirectoryError, FileExistsError, IsADirectoryError):
                raise S3Error(
                    "InvalidArgument",
                    f"The key {key[:128]!r} cannot be stored in the local object store: it "
                    "conflicts with another key that is a prefix of it (or has it as one).",
                    ArgumentName="key",
                ) from None

    def delete(self, bucket: str, key: str) -> None:
        """Remove bucket/key (no error when there is none), and directories it leaves empty."""
        try:
            path = self.path(bucket, key)
        except S3Error as error:
            if error.code == "NoSuchKey":
                return
            raise
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._sidecar(bucket, key).unlink()
        base = self.root / bucket
        parent = path.parent
        while parent != base and base in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break  # not empty (or gone): S3 has no directories, so only empty ones go
            parent = parent.parent

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Keys starting with `prefix`, in S3's order (UTF-8 bytes)."""
        self.bucket_dir(bucket)
        for info in self.local.list(bucket, prefix):
            yield info.key

    # -- sidecars --------------------------------------------------------------------------
    def _sidecar(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.meta / bucket / digest[:2] / f"{digest}.json"

    def _save_meta(self, bucket: str, key: str, meta: ObjectMeta, st: os.stat_result) -> None:
        path = self._sidecar(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_json(path, {**asdict(meta), "identity": _identity(st)})

    def _write_json(self, path: Path, value: object) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="meta-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(value, out)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as source:
                value = json.load(source)
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _not_empty(bucket: str) -> S3Error:
    return S3Error(
        "BucketNotEmpty", "The bucket you tried to delete is not empty", BucketName=bucket
    )


def _remove_tree(path: Path) -> None:
    for dirpath, _dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(dirpath, name))
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
