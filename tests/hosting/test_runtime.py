"""The built-in runtime in-process: toolkit handlers, defaults, errors as data."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shadowlab.hosting.runtime import InvocationError, ModelLoadError, ModelRuntime, RequestContext
from tests.hosting.modelfiles import FAILING_INFERENCE, code_only_model_dir, iris_model_dir

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [7.7, 3.0, 6.1, 2.3]


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loading model code touches sys.path and sys.modules, as in a worker; undo it per test."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    base = str(tmp_path_factory.getbasetemp())
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(base):
            del sys.modules[name]


def test_user_handlers_with_sibling_import_and_context(tmp_path: Path) -> None:
    runtime = ModelRuntime.load(iris_model_dir(tmp_path / "m"), environ={})
    assert runtime.wants_context
    context = RequestContext(str(tmp_path), {"X-Amzn-SageMaker-Custom-Attributes": "trace=1"})
    body, content_type = runtime.invoke(
        json.dumps({"features": [SETOSA, VIRGINICA]}).encode(), "application/json", None, context
    )
    answer = json.loads(body)
    assert content_type == "application/json"
    assert answer["predictions"] == ["setosa", "virginica"]
    assert len(answer["probabilities"]) == 2 and abs(sum(answer["probabilities"][0]) - 1) < 1e-3
    assert context.response_headers["x-amzn-sagemaker-custom-attributes"] == "seen=trace=1"


def test_user_code_errors_are_500_with_their_text(tmp_path: Path) -> None:
    runtime = ModelRuntime.load(iris_model_dir(tmp_path / "m"), environ={})
    with pytest.raises(InvocationError) as caught:
        runtime.invoke(b"5,1,2,3", "text/csv", "application/json")
    assert caught.value.status == 500
    assert "ValueError: unsupported content type text/csv" in caught.value.message


@pytest.fixture(scope="module")
def default_runtime(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    model_dir = iris_model_dir(tmp_path_factory.mktemp("default"), with_code=False)
    return ModelRuntime.load(model_dir, environ={})


def test_default_csv_in_json_out(default_runtime: ModelRuntime) -> None:
    csv = "\n".join(",".join(map(str, row)) for row in (SETOSA, VIRGINICA)).encode()
    body, content_type = default_runtime.invoke(csv, "text/csv", "*/*")
    assert (json.loads(body), content_type) == ([0, 2], "application/json")


def test_default_json_in_csv_out(default_runtime: ModelRuntime) -> None:
    payloads = [
        ([SETOSA, VIRGINICA], "0\n2\n"),
        ({"instances": [SETOSA, VIRGINICA]}, "0\n2\n"),
        ({"inputs": [VIRGINICA]}, "2\n"),
        (VIRGINICA, "2\n"),  # a flat list of numbers is one record
    ]
    for payload, expected in payloads:
        body, content_type = default_runtime.invoke(
            json.dumps(payload).encode(), "application/json; charset=utf-8", "text/csv"
        )
        assert (body.decode(), content_type) == (expected, "text/csv")


def test_default_npy_round_trip(default_runtime: ModelRuntime) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([SETOSA, VIRGINICA, SETOSA]))
    body, content_type = default_runtime.invoke(
        buffer.getvalue(), "application/x-npy", "application/x-npy"
    )
    assert content_type == "application/x-npy"
    assert np.load(io.BytesIO(body)).tolist() == [0, 2, 0]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "text"),
    [
        (b"<x/>", "application/xml", None, 415, "application/xml"),
        (b"1,2,3,4", "text/csv", "application/xml", 415, "accept type"),
        (b"{not json", "application/json", None, 400, "invalid JSON"),
        (b'{"rows": []}', "application/json", None, 400, '"instances" or "inputs"'),
        (b"[[1, 2], [3]]", "application/json", None, 400, "rectangular"),
        (b"1,2\n3", "text/csv", None, 400, "different numbers of columns"),
        (b"", "text/csv", None, 400, "empty CSV"),
        (b"\xff\xfe", "text/csv", None, 400, "UTF-8"),
        (b"garbage", "application/x-npy", None, 400, "invalid application/x-npy"),
        (b"1,2", "text/csv", None, 500, "features"),  # the model's own complaint
    ],
)
def test_default_handler_errors(
    default_runtime: ModelRuntime,
    body: bytes,
    content_type: str,
    accept: str | None,
    status: int,
    text: str,
) -> None:
    with pytest.raises(InvocationError) as caught:
        default_runtime.invoke(body, content_type, accept)
    assert caught.value.status == status
    assert text in caught.value.message


def test_transform_fn_and_toolkit_status_codes(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        class GenericInferenceToolkitError(Exception):  # as sagemaker_inference.errors has it
            def __init__(self, status_code, message=None):
                super().__init__(message)
                self.status_code = status_code
                self.message = message

        def model_fn(model_dir):
            return "model"

        def transform_fn(model, data, content_type, accept):
            if data == "teapot":
                raise GenericInferenceToolkitError(418, "short and stout")
            return data.upper()
        """
    )
    runtime = ModelRuntime.load(code_only_model_dir(tmp_path / "m", code), environ={})
    assert runtime.invoke(b"hello", "text/csv", "text/csv") == (b"HELLO", "text/csv")
    with pytest.raises(InvocationError) as caught:
        runtime.invoke(b"teapot", "text/csv", None)
    assert (caught.value.status, caught.value.message) == (418, "short and stout")


def test_sagemaker_program_names_the_module(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "m", FAILING_INFERENCE)
    (model_dir / "code" / "serve.py").write_text(
        "def model_fn(model_dir):\n    return 1\n\n"
        "def transform_fn(model, data, content_type, accept):\n    return b'serve.py'\n"
    )
    runtime = ModelRuntime.load(model_dir, environ={"SAGEMAKER_PROGRAM": "serve.py"})
    assert runtime.invoke(b"", None, None) == (b"serve.py", "application/json")
    with pytest.raises(ModelLoadError, match=r"SAGEMAKER_PROGRAM 'nope\.py': no such file"):
        ModelRuntime.load(model_dir, environ={"SAGEMAKER_PROGRAM": "nope.py"})


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("failing", "model_fn failed: RuntimeError: weights are corrupt: checksum mismatch"),
        ("empty", "exactly one .joblib/.pkl/.pickle file in the model directory (found none)"),
        ("two", "(found a.pkl, b.joblib)"),
        ("syntax", "importing inference.py failed: SyntaxError"),
        ("mixed", "transform_fn cannot be combined"),
    ],
)
def test_load_failures_say_why(tmp_path: Path, setup: str, message: str) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    if setup == "failing":
        code_only_model_dir(model_dir / "x", FAILING_INFERENCE)
        model_dir = model_dir / "x"
    elif setup == "two":
        (model_dir / "a.pkl").write_bytes(b"")
        (model_dir / "b.joblib").write_bytes(b"")
    elif setup == "syntax":
        model_dir = code_only_model_dir(model_dir / "x", "def model_fn(:\n")
    elif setup == "mixed":
        code = "def transform_fn(m, d, c, a):\n    pass\n\ndef input_fn(d, c):\n    pass\n"
        model_dir = code_only_model_dir(model_dir / "x", code)
    with pytest.raises(ModelLoadError) as caught:
        ModelRuntime.load(model_dir, environ={})
    assert message in str(caught.value)


def test_output_must_be_bytes_or_str(tmp_path: Path) -> None:
    code = "def model_fn(d):\n    return 0\n\ndef transform_fn(m, d, c, a):\n    return 42\n"
    runtime = ModelRuntime.load(code_only_model_dir(tmp_path / "m", code), environ={})
    with pytest.raises(InvocationError, match="returned int"):
        runtime.invoke(b"x", "text/csv", None)


def test_submit_directory_and_default_accept(tmp_path: Path) -> None:
    model_dir = iris_model_dir(tmp_path / "m", with_code=False)
    submit = tmp_path / "src"
    submit.mkdir()
    (submit / "inference.py").write_text(
        "def predict_fn(data, model):\n    return model.predict(data) + 10\n"
    )
    environ = {
        "SAGEMAKER_SUBMIT_DIRECTORY": str(submit),
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
    }
    runtime = ModelRuntime.load(model_dir, environ=environ)
    assert runtime.invoke(b"7.7,3.0,6.1,2.3", "text/csv", "*/*") == (b"12\n", "text/csv")
    # An s3:// submit directory (the SageMaker SDK's usual) is not local: code/ is used.
    environ["SAGEMAKER_SUBMIT_DIRECTORY"] = "s3://bucket/sourcedir.tar.gz"
    runtime = ModelRuntime.load(model_dir, environ=environ)
    assert runtime.invoke(b"7.7,3.0,6.1,2.3", "text/csv", None) == (b"2\n", "text/csv")
