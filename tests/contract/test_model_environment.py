"""A model's Environment and artifact against a real server through boto3: refused variables,
upstreams off the allow-list, artifact limits, and what a real worker sees of the server."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.contract import hosting_helpers as h
from tests.contract.helpers import ROLE, unique, wait_endpoint
from tests.serverproc import ACCOUNT, REGION, ServerProcess

SECRET = "server-secret-value"
ENV_INFERENCE = textwrap.dedent(
    """
    import json
    import os


    def model_fn(model_dir):
        return None


    def transform_fn(model, data, content_type, accept):
        with open("/proc/self/limits") as limits:
            seen = {**os.environ, "__limits__": limits.read()}
        return json.dumps(seen), "application/json"
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("environment")
    extra = {
        "SHADOWLAB_ARTIFACT_MAX_BYTES": "10000000",  # 10 MB, so a small bomb trips it
        "SHADOWLAB_WORKER_MAX_OPEN_FILES": "1234",
        "SHADOWLAB_TEST_SECRET": SECRET,
        "AWS_SESSION_TOKEN": SECRET,
    }
    proc = ServerProcess(data_dir=root / "data", hosting="process", extra_env=extra).start()
    yield proc
    proc.stop()


@pytest.fixture
def sm(server: ServerProcess) -> Any:
    return server.client()


def create_error(sm: Any, name: str, **containers: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, **containers)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def assert_not_created(sm: Any, name: str) -> None:
    with pytest.raises(ClientError) as caught:
        sm.describe_model(ModelName=name)
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name.lower()}"
    assert caught.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": f'Could not find model "{arn}".',
    }


def test_variables_that_load_code_are_refused(sm: Any) -> None:
    name = unique("chain")
    environment = {
        "PERL5OPT": "-Mwarnings",
        "BROWSER": "sh -c id",
        "PYTHONWARNINGS": "ignore::antigravity.Foo",
        "MODEL_NAME": "harmless",
    }
    container = {"Image": "shadowlab/builtin", "Environment": environment}
    assert create_error(sm, name, PrimaryContainer=container) == (
        "ValidationException",
        "Environment variable(s) PERL5OPT, BROWSER, PYTHONWARNINGS are not allowed: they change "
        "how programs load code.",
    )
    assert_not_created(sm, name)


def test_every_container_is_checked(sm: Any) -> None:
    name = unique("containers")
    containers = [
        {"Image": "shadowlab/builtin", "Environment": {"MODEL_NAME": "first"}},
        {"Image": "shadowlab/builtin", "Environment": {"LD_PRELOAD": "/tmp/x.so"}},
    ]
    assert create_error(sm, name, Containers=containers) == (
        "ValidationException",
        "Environment variable(s) LD_PRELOAD are not allowed: they change how programs load code.",
    )
    assert_not_created(sm, name)


def test_upstream_off_the_allow_list_is_refused(sm: Any) -> None:
    # Never connected to: the refusal comes from the allow-list alone.
    name = unique("upstream")
    container = {
        "Image": "shadowlab/builtin",
        "Environment": {"SHADOWLAB_UPSTREAM_URL": "http://10.255.255.1:22"},
    }
    assert create_error(sm, name, PrimaryContainer=container) == (
        "ValidationException",
        "SHADOWLAB_UPSTREAM_URL host '10.255.255.1' is not on this server's upstream allow-list "
        "(setting upstream_hosts, SHADOWLAB_UPSTREAM_HOSTS).",
    )
    assert_not_created(sm, name)


def test_workers_see_their_environment_not_the_servers(
    server: ServerProcess, sm: Any, tmp_path: Path
) -> None:
    model = h.register(sm, h.code_model(server, tmp_path, ENV_INFERENCE), {"GREETING": "hi"})
    endpoint = h.deploy(sm, [("AllTraffic", model, 1.0, 1)])["endpoint"]
    runtime = server.client("sagemaker-runtime")
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"{}")
    seen = json.loads(response["Body"].read())
    limits = seen.pop("__limits__")
    open_files = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert open_files.split()[3:5] == ["1234", "1234"], open_files  # soft and hard
    assert seen["GREETING"] == "hi"
    assert SECRET not in json.dumps(seen)
    assert not [k for k in seen if k.startswith("AWS_") or k == "SHADOWLAB_DATABASE_URL"]


def test_an_artifact_over_the_limit_fails_the_endpoint(
    server: ServerProcess, sm: Any, tmp_path: Path
) -> None:
    name = unique("bomb")
    archive = server.data_dir / "s3" / "models" / name / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("weights.bin")
        member.size = 50_000_000
        tar.addfile(member, io.BytesIO(bytes(member.size)))
    assert archive.stat().st_size < 100_000
    url = f"s3://models/{name}/model.tar.gz"
    model = h.register(sm, url)
    deployed = h.deploy(sm, [("AllTraffic", model, 1.0, 1)], status="Failed")
    reason = wait_endpoint(sm, deployed["endpoint"], "Failed")["FailureReason"]
    assert (
        f"ModelDataUrl {url}: model.tar.gz expands to more than 10000000 bytes "
        "(limit SHADOWLAB_ARTIFACT_MAX_BYTES)"
    ) in reason
