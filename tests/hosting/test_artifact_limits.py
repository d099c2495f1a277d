"""Model artifacts are bounded: a small archive cannot fill the disk or the inode table."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from shadowlab.hosting.artifacts import ArtifactError, ArtifactLimits, prepare_model_dir

MB = 1_000_000


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in pieces: a big member without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def zeros_archive(path: Path, size: int, name: str = "weights.bin") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        member = tarfile.TarInfo(name)
        member.size = size
        tar.addfile(member, io.BufferedReader(Zeros(size)))
    return path


def many_files_archive(path: Path, count: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for n in range(count):
            member = tarfile.TarInfo(f"f/{n}.txt")
            member.size = 1
            tar.addfile(member, io.BytesIO(b"x"))
    return path


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_a_zip_bomb_is_refused_before_it_is_written(tmp_path: Path) -> None:
    archive = zeros_archive(tmp_path / "s3" / "m" / "model.tar.gz", 50 * MB)
    assert archive.stat().st_size < 100_000  # 50 MB of zeros in under 100 KB
    limits = ArtifactLimits(max_bytes=10 * MB)
    started = time.monotonic()
    with pytest.raises(ArtifactError) as caught:
        prepare_model_dir("s3://m/model.tar.gz", tmp_path / "hosting" / "model", tmp_path / "s3")
        prepare_model_dir(
            "s3://m/model.tar.gz", tmp_path / "hosting" / "again", tmp_path / "s3", None, limits
        )
    assert caught.value.message == (
        "ModelDataUrl s3://m/model.tar.gz: model.tar.gz expands to more than 10000000 bytes "
        "(limit SHADOWLAB_ARTIFACT_MAX_BYTES)"
    )
    assert time.monotonic() - started < 10
    # The default limit let the first one through; the second left nothing behind.
    assert leftovers(tmp_path / "hosting") == ["model"]


def test_an_archive_within_the_limit_is_extracted(tmp_path: Path) -> None:
    archive = zeros_archive(tmp_path / "model.tar.gz", 5 * MB)
    dest = prepare_model_dir(
        f"file://{archive}", tmp_path / "model", tmp_path / "s3", None, ArtifactLimits(10 * MB)
    )
    assert (dest / "weights.bin").stat().st_size == 5 * MB


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = many_files_archive(tmp_path / "model.tar.gz", 1000)
    limits = ArtifactLimits(max_members=100)
    with pytest.raises(ArtifactError) as caught:
        prepare_model_dir(f"file://{archive}", tmp_path / "out" / "model", tmp_path, None, limits)
    assert caught.value.message == (
        f"ModelDataUrl file://{archive}: model.tar.gz has more than 100 files "
        "(limit SHADOWLAB_ARTIFACT_MAX_MEMBERS)"
    )
    assert leftovers(tmp_path / "out") == []
    # Exactly at the limit is fine.
    small = many_files_archive(tmp_path / "small.tar.gz", 99)  # 99 files and their directory
    dest = prepare_model_dir(f"file://{small}", tmp_path / "ok", tmp_path, None, limits)
    assert len(list((dest / "f").iterdir())) == 99


def test_hard_links_count_once(tmp_path: Path) -> None:
    """A hard link adds no bytes on disk, so it costs nothing against the byte limit."""
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("weights.bin")
        member.size = 6 * MB
        tar.addfile(member, io.BufferedReader(Zeros(member.size)))
        for n in range(3):
            link = tarfile.TarInfo(f"link{n}.bin")
            link.type, link.linkname = tarfile.LNKTYPE, "weights.bin"
            tar.addfile(link)
    dest = prepare_model_dir(
        f"file://{archive}", tmp_path / "model", tmp_path, None, ArtifactLimits(10 * MB)
    )
    assert (dest / "link2.bin").stat().st_nlink == 4


def test_directories_are_bounded_too(tmp_path: Path) -> None:
    """A directory (file:// or an object-store prefix) is copied under the same limits."""
    source = tmp_path / "s3" / "models" / "dir"
    source.mkdir(parents=True)
    (source / "big.bin").write_bytes(bytes(2 * MB))
    for n in range(20):
        (source / f"{n}.txt").write_text("x")
    with pytest.raises(ArtifactError, match="the model directory expands to more than 1000000"):
        prepare_model_dir(
            f"file://{source}", tmp_path / "a", tmp_path / "s3", None, ArtifactLimits(MB)
        )
    with pytest.raises(ArtifactError, match="the model directory has more than 10 files"):
        prepare_model_dir(
            "s3://models/dir/", tmp_path / "b", tmp_path / "s3", None, ArtifactLimits(10 * MB, 10)
        )
    dest = prepare_model_dir(
        "s3://models/dir/", tmp_path / "c", tmp_path / "s3", None, ArtifactLimits(10 * MB, 21)
    )
    assert (dest / "big.bin").stat().st_size == 2 * MB
