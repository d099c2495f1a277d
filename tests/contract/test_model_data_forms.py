"""Every ModelDataUrl form the README documents, through boto3 against real workers: a
model.tar.gz or a directory, at s3:// (the embedded object store) or file:///; and
ModelDataSource.S3DataSource.S3Uri, which takes the same forms. file:// must be absolute."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import ROLE, checked, unique
from tests.contract.rejecting import both_ways
from tests.hosting.modelfiles import code_only_model_dir, make_tar
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess

# Answers with the content of a file shipped beside the code: the artifact really arrived.
SHIPPED_FILE_INFERENCE = textwrap.dedent(
    """
    import os

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.txt"), "rb") as handle:
            return handle.read()

    def transform_fn(model, data, content_type, accept):
        return model, "text/plain"
    """
)
_MODEL_URL_PATTERN = "(https|s3)://([^/]+)/?(.*)|file:///.*"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("model-forms")
    proc = ServerProcess(data_dir=root / "data", hosting="process").start()
    yield proc
    proc.stop()


def model_dir(root: Path, label: str) -> Path:
    source = code_only_model_dir(root / label, SHIPPED_FILE_INFERENCE)
    (source / "weights.txt").write_text(f"weights of {label}")
    return source


def test_each_documented_form_serves(hosted: ServerProcess, tmp_path: Path) -> None:
    sm = hosted.client()
    bucket = hosted.data_dir / "s3" / "models"
    make_tar(model_dir(tmp_path, "s3-tar"), bucket / "s3-tar" / "model.tar.gz")
    shutil.copytree(model_dir(tmp_path, "s3-dir"), bucket / "s3-dir")
    file_tar = make_tar(model_dir(tmp_path, "file-tar"), tmp_path / "file-tar.tar.gz")
    file_dir = model_dir(tmp_path, "file-dir")
    source_dir = model_dir(tmp_path, "source-dir")
    containers: dict[str, dict[str, Any]] = {
        "s3-tar": {"ModelDataUrl": "s3://models/s3-tar/model.tar.gz"},
        "s3-dir": {"ModelDataUrl": "s3://models/s3-dir/"},
        "file-tar": {"ModelDataUrl": file_tar.as_uri()},
        "file-dir": {"ModelDataUrl": file_dir.as_uri()},
        "source-dir": {
            "ModelDataSource": {
                "S3DataSource": {
                    "S3Uri": source_dir.as_uri() + "/",
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            }
        },
    }
    variants = []
    for label, container in containers.items():
        model = unique("model")
        checked(
            sm,
            "CreateModel",
            ModelName=model,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "shadowlab/builtin", **container},
        )
        described = checked(sm, "DescribeModel", ModelName=model)
        assert described["PrimaryContainer"] == {"Image": "shadowlab/builtin", **container}
        variants.append((label, model, 1.0, 1))
    endpoint = h.deploy(sm, variants)["endpoint"]
    runtime = hosted.client("sagemaker-runtime")
    for label in containers:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, TargetVariant=label, Body=b"x", ContentType="text/plain"
        )
        assert response["Body"].read() == f"weights of {label}".encode()


@pytest.mark.parametrize(
    "url",
    ["file://relative/model.tar.gz", "file:model.tar.gz", "ftp://host/model.tar.gz", "/abs/x"],
)
def test_other_urls_are_refused_in_aws_words(hosted: ServerProcess, url: str) -> None:
    client = boto3.client(
        "sagemaker", endpoint_url=hosted.url, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    code, message = both_ways(
        hosted,
        client,
        "CreateModel",
        ModelName=unique("model"),
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "shadowlab/builtin", "ModelDataUrl": url},
    )
    assert code == "ValidationException"
    assert message == (
        f"1 validation error detected: Value '{url}' at 'primaryContainer.modelDataUrl' failed "
        f"to satisfy constraint: Member must satisfy regular expression pattern: "
        f"{_MODEL_URL_PATTERN}"
    )


def test_a_missing_file_url_fails_the_endpoint_with_the_reason(
    hosted: ServerProcess, tmp_path: Path
) -> None:
    sm = hosted.client()
    missing = tmp_path / "nowhere" / "model.tar.gz"
    model = h.register(sm, missing.as_uri())
    described = h.deploy(sm, [("AllTraffic", model, 1.0, 1)], status="Failed")["described"]
    assert "no such object" in described["FailureReason"]
    assert missing.as_uri() in described["FailureReason"]
    with pytest.raises(ClientError):
        hosted.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=described["EndpointName"], Body=b"x"
        )
