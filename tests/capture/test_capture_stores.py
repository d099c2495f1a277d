"""Both object stores behave as S3 does; KMS headers reach the real (moto) S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowlab.capture.stores import LocalObjectStore, ObjectStore, S3ObjectStore
from tests.capture.support import KMS_KEY


@pytest.fixture(params=["local", "s3"])
def store_and_bucket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ObjectStore, str]]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "s3"), "bucket"
    else:
        yield S3ObjectStore(request.getfixturevalue("s3")), request.getfixturevalue("bucket")


def test_put_get_list_delete(store_and_bucket: tuple[ObjectStore, str], tmp_path: Path) -> None:
    store, bucket = store_and_bucket
    source = tmp_path / "file.jsonl"
    source.write_bytes(b'{"a":1}\n{"b":"\\r"}\n')
    store.put_file(bucket, "p/ep/v/2026/01/02/03/00-00-000-x.jsonl", source)
    store.put_bytes(bucket, "p/ep/v/2026/01/02/03/zz.json", b"{}")
    store.put_bytes(bucket, "p-other/k", b"other")
    store.put_bytes(bucket, "p/ep/v/2026/01/02/03/zz.json", b'{"v":2}')  # overwrite
    keys = [info.key for info in store.list(bucket, "p/")]
    assert keys == ["p/ep/v/2026/01/02/03/00-00-000-x.jsonl", "p/ep/v/2026/01/02/03/zz.json"]
    assert [info.key for info in store.list(bucket, "p")] == ["p-other/k", *keys]  # "-" < "/"
    assert [info.size for info in store.list(bucket, "p/ep/v/2026/01/02/03/z")] == [7]
    assert store.get(bucket, keys[1]) == b'{"v":2}'
    assert list(store.iter_lines(bucket, keys[0])) == [b'{"a":1}', b'{"b":"\\r"}']
    store.delete(bucket, keys[0])
    store.delete(bucket, keys[0])  # already gone: no error
    assert [info.key for info in store.list(bucket, "p/")] == [keys[1]]
    with pytest.raises(FileNotFoundError):
        store.get(bucket, keys[0])
    assert list(store.list(bucket, "nothing/")) == []


def test_local_store_layout_and_atomicity(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("bucket", "a/b/c.jsonl", b"x\n")
    assert (tmp_path / "bucket" / "a" / "b" / "c.jsonl").read_bytes() == b"x\n"
    # No temporary file is left behind or listed.
    assert [p.name for p in (tmp_path / "bucket" / "a" / "b").iterdir()] == ["c.jsonl"]
    for bad in ("../escape", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            store.put_bytes("bucket", bad, b"x")
    with pytest.raises(ValueError):
        store.put_bytes("..", "k", b"x")


def test_kms_headers_on_stored_objects(s3: Any, bucket: str, tmp_path: Path) -> None:
    store = S3ObjectStore(s3)
    source = tmp_path / "data.jsonl"
    source.write_bytes(b"{}\n")
    store.put_file(bucket, "with-kms.jsonl", source, kms_key_id=KMS_KEY)
    store.put_bytes(bucket, "with-kms.json", b"{}", kms_key_id=KMS_KEY)
    store.put_bytes(bucket, "plain.json", b"{}")
    for key in ("with-kms.jsonl", "with-kms.json"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == KMS_KEY
    assert "SSEKMSKeyId" not in s3.head_object(Bucket=bucket, Key="plain.json")
