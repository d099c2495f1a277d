"""Multipart uploads: parts kept outside the visible tree until the upload completes.

An upload is a directory `<root>/.shadowlab/uploads/<upload id>/` holding `upload.json` (bucket,
key, content headers, metadata, checksum algorithm) and one file per part, named
`<part number>.<md5 hex>`: written to a temporary file and renamed, so a part is whole or absent
and its ETag is read from its name. Completing concatenates the listed parts into one temporary
file that is renamed into the bucket (the same atomic write as a PutObject), with S3's multipart
ETag: the MD5 of the parts' binary MD5s, then "-" and the number of parts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from shadowlab.s3api.errors import S3Error, no_such_upload
from shadowlab.s3api.objects import ObjectFiles, ObjectMeta

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PART_NUMBER = 10_000
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{20,100}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    number: int
    etag: str  # quoted
    size: int
    modified: float
    path: Path


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    headers: dict[str, str]
    metadata: dict[str, str]
    checksum_algorithm: str | None


class Uploads:
    def __init__(self, files: ObjectFiles) -> None:
        self.files = files
        self.dir = files.system / "uploads"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def create(
        self,
        bucket: str,
        key: str,
        headers: dict[str, str],
        metadata: dict[str, str],
        checksum_algorithm: str | None,
    ) -> Upload:
        self.files.path(bucket, key, writing=True)  # the bucket exists, the key can be stored
        upload = Upload(
            secrets.token_urlsafe(48),
            bucket,
            key,
            time.time(),
            headers,
            metadata,
            checksum_algorithm,
        )
        staging = Path(tempfile.mkdtemp(dir=self.files.tmp, prefix="upload-"))
        (staging / "upload.json").write_text(json.dumps(upload.__dict__), encoding="utf-8")
        os.replace(staging, self.dir / upload.upload_id)  # visible whole or not at all
        return upload

    def get(self, upload_id: str, bucket: str, key: str) -> Upload:
        """The upload, which must be for bucket/key; NoSuchUpload otherwise."""
        if _UPLOAD_ID.fullmatch(upload_id) is None:
            raise no_such_upload(upload_id)
        try:
            raw: dict[str, Any] = json.loads(
                (self.dir / upload_id / "upload.json").read_text(encoding="utf-8")
            )
            upload = Upload(**raw)
        except (OSError, ValueError, TypeError):  # gone, or not one this server wrote
            raise no_such_upload(upload_id) from None
        if upload.bucket != bucket or upload.key != key:
            raise no_such_upload(upload_id)
        return upload

    def put_part(self, upload: Upload, number: int, data: bytes) -> str:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                ArgumentName="partNumber",
                ArgumentValue=str(number),
            )
        md5 = hashlib.md5(data).hexdigest()
        directory = self.dir / upload.upload_id
        fd, tmp = tempfile.mkstemp(dir=self.files.tmp, prefix="part-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, directory / f"{number}.{md5}")
        except FileNotFoundError:
            raise no_such_upload(upload.upload_id) from None  # aborted meanwhile
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        for old in self.parts(upload):  # an earlier upload of the same part number
            if old.number == number and old.etag != f'"{md5}"':
                with contextlib.suppress(FileNotFoundError):
                    old.path.unlink()
        return f'"{md5}"'

    def parts(self, upload: Upload) -> list[Part]:
        found: list[Part] = []
        try:
            entries = list(os.scandir(self.dir / upload.upload_id))
        except FileNotFoundError:
            raise no_such_upload(upload.upload_id) from None
        for entry in entries:
            number, _, md5 = entry.name.partition(".")
            if not number.isdigit() or len(md5) != 32:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat()
                found.append(Part(int(number), f'"{md5}"', st.st_size, st.st_mtime, Path(entry)))
        found.sort(key=lambda part: part.number)
        return found

    def complete(
        self, upload: Upload, listed: list[tuple[int, str]], checksums: dict[str, str]
    ) -> ObjectMeta:
        """Assemble the listed (part number, ETag) parts into the object."""
        if not listed:
            raise S3Error(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our "
                "published schema",
            )
        numbers = [number for number, _ in listed]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part "
                "number.",
                UploadId=upload.upload_id,
            )
        available = {part.number: part for part in self.parts(upload)}
        chosen: list[Part] = []
        for number, etag in listed:
            part = available.get(number)
            if part is None or part.etag.strip('"') != etag.strip().strip('"'):
                raise S3Error(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                    UploadId=upload.upload_id,
                    PartNumber=str(number),
                    ETag=etag,
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise S3Error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    ProposedSize=str(part.size),
                    MinSizeAllowed=str(MIN_PART_SIZE),
                    PartNumber=str(part.number),
                    ETag=part.etag,
                )

        def fill(out: BinaryIO) -> str:
            digests = hashlib.md5()
            for part in chosen:
                digests.update(bytes.fromhex(part.etag.strip('"')))
                with open(part.path, "rb") as source:
                    shutil.copyfileobj(source, out, _CHUNK)
            return f'"{digests.hexdigest()}-{len(chosen)}"'

        meta = ObjectMeta(
            "", 0, 0.0, dict(upload.headers), dict(upload.metadata), checksums, len(chosen)
        )
        stored = self.files.write(upload.bucket, upload.key, fill, meta)
        self.abort(upload)
        return stored

    def abort(self, upload: Upload) -> None:
        directory = self.dir / upload.upload_id
        # Renamed away first, so that a concurrent UploadPart cannot land in a half-removed dir.
        graveyard = Path(tempfile.mkdtemp(dir=self.files.tmp, prefix="aborted-"))
        try:
            os.replace(directory, graveyard / "upload")
        except FileNotFoundError:
            raise no_such_upload(upload.upload_id) from None
        finally:
            shutil.rmtree(graveyard, ignore_errors=True)
