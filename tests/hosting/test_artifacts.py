"""ModelDataUrl -> model directory: file://, s3:// (embedded store and an S3 API), tar safety."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import pytest

from shadowlab.hosting.artifacts import ArtifactError, prepare_model_dir
from tests.hosting.modelfiles import iris_model_dir, make_tar


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def model_src(tmp_path: Path) -> Path:
    return iris_model_dir(tmp_path / "src")


def test_file_url_tarball_is_extracted(tmp_path: Path, model_src: Path) -> None:
    archive = make_tar(model_src, tmp_path / "artifacts" / "model.tar.gz")
    dest = prepare_model_dir(f"file://{archive}", tmp_path / "model", tmp_path / "s3")
    assert dest == tmp_path / "model"
    assert tree(dest) == {"model.joblib", "code/inference.py", "code/labels.py"}


def test_file_url_directory_is_copied(tmp_path: Path, model_src: Path) -> None:
    dest = prepare_model_dir(f"file://{model_src}", tmp_path / "model", tmp_path / "s3")
    assert tree(dest) == tree(model_src)
    (dest / "scratch").write_text("model code may write here")
    assert not (model_src / "scratch").exists()


def test_s3_url_maps_to_the_embedded_object_store(tmp_path: Path, model_src: Path) -> None:
    store = tmp_path / "s3"
    make_tar(model_src, store / "models" / "iris" / "v1" / "model.tar.gz")
    url = "s3://models/iris/v1/model.tar.gz"
    dest = prepare_model_dir(url, tmp_path / "model", store)
    assert "model.joblib" in tree(dest)
    # A prefix that is a "directory" of objects works as well.
    dest = prepare_model_dir("s3://models/iris/v1/", tmp_path / "model2", store)
    assert tree(dest) == {"model.tar.gz"}


def test_preparing_again_replaces_the_old_content(tmp_path: Path, model_src: Path) -> None:
    dest = tmp_path / "model"
    prepare_model_dir(f"file://{model_src}", dest, tmp_path / "s3")
    (dest / "stale.txt").write_text("x")
    prepare_model_dir(f"file://{model_src}", dest, tmp_path / "s3")
    assert not (dest / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model")] == []


def test_no_model_data_url_gives_an_empty_directory(tmp_path: Path) -> None:
    dest = prepare_model_dir(None, tmp_path / "model", tmp_path / "s3")
    assert dest.is_dir() and list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://models/nope/model.tar.gz", "ModelDataUrl s3://models/nope/model.tar.gz: no such"),
        ("s3://models/../etc/passwd", "may not contain"),
        ("file:///definitely/not/here.tar.gz", "no such object"),
        ("https://example.com/model.tar.gz", "only s3:// and file://"),
        ("file://relative/model.tar.gz", "local absolute path"),
    ],
)
def test_bad_urls_say_what_is_wrong(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ArtifactError, match=r"^ModelDataUrl") as caught:
        prepare_model_dir(url, tmp_path / "model", tmp_path / "s3")
    assert message in caught.value.message
    assert not (tmp_path / "model").exists()


def _tar_with(tmp_path: Path, name: str) -> Path:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        good = tarfile.TarInfo("model.joblib")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"abc"))
        bad = tarfile.TarInfo(name)
        bad.size = 5
        tar.addfile(bad, io.BytesIO(b"owned"))
    return archive


@pytest.mark.parametrize("member", ["../outside.txt", "code/../../outside.txt", "/tmp/abs.txt"])
def test_tar_members_escaping_the_model_dir_are_rejected(tmp_path: Path, member: str) -> None:
    archive = _tar_with(tmp_path, member)
    with pytest.raises(ArtifactError, match="escapes the model dir"):
        prepare_model_dir(f"file://{archive}", tmp_path / "work" / "model", tmp_path / "s3")
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "work" / "model").exists()


def test_tar_with_a_link_outside_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("model.joblib")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(ArtifactError, match="unsafe archive member"):
        prepare_model_dir(f"file://{archive}", tmp_path / "model", tmp_path / "s3")


def test_a_file_that_is_not_a_tarball_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not a tar")
    with pytest.raises(ArtifactError, match="not a tar archive"):
        prepare_model_dir(f"file://{tmp_path / 'model.joblib'}", tmp_path / "m", tmp_path / "s3")


# -- a real S3 API over HTTP (just enough of it: HEAD/GET object, ListObjectsV2) ---------------


class _S3Handler(BaseHTTPRequestHandler):
    objects: dict[str, bytes] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _split(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        return bucket, key, parse_qs(parts.query)

    def _send(self, status: int, body: bytes, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        bucket, key, _ = self._split()
        data = self.objects.get(f"{bucket}/{key}")
        self._send(200 if data is not None else 404, data or b"", head=True)

    def do_GET(self) -> None:
        bucket, key, query = self._split()
        if not key and "list-type" in query:
            prefix = query.get("prefix", [""])[0]
            keys = sorted(k for k in self.objects if k.startswith(f"{bucket}/{prefix}"))
            items = "".join(
                f"<Contents><Key>{escape(k.split('/', 1)[1])}</Key>"
                f"<Size>{len(self.objects[k])}</Size></Contents>"
                for k in keys
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(keys)}"
                f"</KeyCount><IsTruncated>false</IsTruncated>{items}</ListBucketResult>"
            )
            self._send(200, body.encode())
            return
        data = self.objects.get(f"{bucket}/{key}")
        if data is None:
            error = "<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"
            self._send(404, error.encode())
        else:
            self._send(200, data)


@pytest.fixture
def s3_client(tmp_path: Path, model_src: Path) -> Iterator[Any]:
    import boto3
    from botocore.config import Config

    archive = make_tar(model_src, tmp_path / "upload" / "model.tar.gz")
    objects = {"models/iris/model.tar.gz": archive.read_bytes()}
    for path in model_src.rglob("*"):
        if path.is_file():
            objects[f"models/unpacked/{path.relative_to(model_src)}"] = path.read_bytes()
    handler = type("Handler", (_S3Handler,), {"objects": objects})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_s3_client_downloads_a_tarball(tmp_path: Path, s3_client: Any) -> None:
    url = "s3://models/iris/model.tar.gz"
    dest = prepare_model_dir(url, tmp_path / "model", tmp_path / "unused", s3_client)
    assert tree(dest) == {"model.joblib", "code/inference.py", "code/labels.py"}


def test_s3_client_downloads_a_prefix(tmp_path: Path, s3_client: Any) -> None:
    url = "s3://models/unpacked"
    dest = prepare_model_dir(url, tmp_path / "model", tmp_path / "unused", s3_client)
    assert tree(dest) == {"model.joblib", "code/inference.py", "code/labels.py"}


def test_s3_client_missing_object(tmp_path: Path, s3_client: Any) -> None:
    with pytest.raises(ArtifactError, match=r"^ModelDataUrl s3://models/gone.tar.gz: no such"):
        prepare_model_dir("s3://models/gone.tar.gz", tmp_path / "m", tmp_path / "x", s3_client)


def test_s3_client_downloads_are_bounded(tmp_path: Path, s3_client: Any) -> None:
    from shadowlab.hosting.artifacts import ArtifactLimits

    # The download itself stops at the limit: an archive larger than its model may be is
    # refused before it is extracted (and before all of it is fetched).
    url = "s3://models/iris/model.tar.gz"
    with pytest.raises(ArtifactError, match=r"model.tar.gz is more than 100 bytes \(limit SHAD"):
        prepare_model_dir(url, tmp_path / "a", tmp_path / "x", s3_client, ArtifactLimits(100))
    limits = ArtifactLimits(max_members=2)
    with pytest.raises(ArtifactError, match=r"the model has more than 2 files \(limit SHADOWLAB_"):
        prepare_model_dir("s3://models/unpacked", tmp_path / "b", tmp_path / "x", s3_client, limits)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
