"""The built-in model runtime: the SageMaker inference-toolkit convention, without a container.

Model code written for SageMaker's framework containers (scikit-learn, PyTorch, ...) lives in
`code/inference.py` of the model archive (or the file `SAGEMAKER_PROGRAM` names) and may define
`model_fn(model_dir)`, `input_fn(input_data, content_type)`, `predict_fn(input_data, model)`,
`output_fn(prediction, accept)`, or instead of the last three `transform_fn(model, data,
content_type, accept)`. Each may take one extra trailing `context` argument, as the toolkit
allows; it gets a `RequestContext`. `predict_fn`, `output_fn` or `transform_fn` may return a
generator (or an async generator) of bytes/str instead of the whole answer: the worker then
streams it, piece by piece (see `streaming`). Missing functions fall back to defaults: a single
joblib/pickle file as the model, `codecs.decode`/`codecs.encode` for the wire, `model.predict`
for the prediction.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from shadowlab.hosting.codecs import JSON, UTF8_TYPES, InvocationError, base_type, decode, encode
from shadowlab.hosting.streaming import StreamedOutput, is_stream

__all__ = [
    "CUSTOM_ATTRIBUTES",
    "InvocationError",
    "ModelLoadError",
    "ModelRuntime",
    "RequestContext",
    "StreamedOutput",
]

log = logging.getLogger("shadowlab.hosting.runtime")

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
_HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


class ModelLoadError(Exception):
    """The model could not be loaded; the message is what the endpoint's FailureReason shows."""


class RequestContext:
    """The `context` handed to model functions that ask for one: a small subset of the model
    server context the toolkit passes (request headers in, response headers out)."""

    def __init__(self, model_dir: str, headers: Mapping[str, str] | None = None) -> None:
        self.system_properties: dict[str, Any] = {"model_dir": model_dir}
        self.request_headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.response_headers: dict[str, str] = {}

    @property
    def custom_attributes(self) -> str | None:
        """The caller's `X-Amzn-SageMaker-Custom-Attributes` header."""
        return self.request_headers.get(CUSTOM_ATTRIBUTES)

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return dict(self.request_headers)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers[key.lower()] = value

    def set_custom_attributes(self, value: str) -> None:
        """Answer with this `X-Amzn-SageMaker-Custom-Attributes` (else the request's is echoed)."""
        self.response_headers[CUSTOM_ATTRIBUTES] = value


_Handler = Callable[..., Any]
# A handler and whether it takes the trailing context argument.
_Bound = tuple[_Handler | None, bool]


class ModelRuntime:
    """A loaded model and the functions that serve it. `invoke` is synchronous and not
    re-entrant: one prediction at a time, as in one SageMaker model server worker."""

    def __init__(
        self,
        model_dir: Path,
        model: Any,
        handlers: Mapping[str, _Handler | None],
        default_accept: str = JSON,
    ) -> None:
        self.model_dir = model_dir
        self.model = model
        self.default_accept = default_accept
        # inspect.signature is slow; the toolkit calls it per request, here it runs once.
        self._transform = _bind(handlers.get("transform_fn"), 4)
        self._input = _bind(handlers.get("input_fn"), 2, decode)
        self._predict = _bind(handlers.get("predict_fn"), 2, _default_predict)
        self._output = _bind(handlers.get("output_fn"), 2, encode)
        used = (
            [self._transform] if self._transform[0] else [self._input, self._predict, self._output]
        )
        self.wants_context = any(with_context for _, with_context in used)

    @classmethod
    def load(cls, model_dir: Path, environ: Mapping[str, str] | None = None) -> ModelRuntime:
        """Import the model's code and run `model_fn`; raise ModelLoadError saying what failed."""
        env = os.environ if environ is None else environ
        model_dir = Path(model_dir).resolve()
        module = _import_user_module(model_dir, env)
        handlers = {name: getattr(module, name, None) for name in _HANDLERS} if module else {}
        if handlers.get("transform_fn") and any(
            handlers.get(name) for name in ("input_fn", "predict_fn", "output_fn")
        ):
            raise ModelLoadError(
                "transform_fn cannot be combined with input_fn, predict_fn or output_fn"
            )
        model_fn: _Handler = handlers.get("model_fn") or _default_model_fn
        try:
            if _takes_context(model_fn, 1):
                model = model_fn(str(model_dir), RequestContext(str(model_dir)))
            else:
                model = model_fn(str(model_dir))
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"model_fn failed: {type(exc).__name__}: {exc}") from exc
        accept = env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON
        return cls(model_dir, model, handlers, default_accept=accept)

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        context: RequestContext | None = None,
    ) -> tuple[bytes | StreamedOutput, str]:
        """Run one request through the handlers; failures raise InvocationError. A handler
        that returns an iterator or async iterator of bytes/str gets a `StreamedOutput`."""
        # SageMaker lets InvokeEndpoint omit both; JSON is the toolkit's default either way.
        content_type = content_type or JSON
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: bytes | str = body
        if base_type(content_type) in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvocationError(400, f"{content_type} body is not valid UTF-8") from exc
        try:
            if self._transform[0] is not None:
                result = self._call(
                    self._transform, context, self.model, data, content_type, accept
                )
            else:
                features = self._call(self._input, context, data, content_type)
                prediction = self._call(self._predict, context, features, self.model)
                if self._output[0] is encode and is_stream(prediction):
                    # A predict_fn that yields tokens: the default encoder cannot take a
                    # generator, and the pieces are meant to go out as they come.
                    result = prediction
                else:
                    result = self._call(self._output, context, prediction, accept)
        except InvocationError:
            raise
        except Exception as exc:
            raise _as_invocation_error(exc) from exc
        # Handlers may return (body, content_type); otherwise the body is of the accepted type.
        payload, response_type = result if isinstance(result, tuple) else (result, accept)
        if is_stream(payload):
            # A generator (or async generator): the worker sends it chunk by chunk.
            return StreamedOutput(payload, _to_bytes), str(response_type)
        return _to_bytes(payload), str(response_type)

    def _call(self, bound: _Bound, context: RequestContext | None, *args: Any) -> Any:
        fn, with_context = bound
        assert fn is not None
        if with_context:
            return fn(*args, context or RequestContext(str(self.model_dir)))
        return fn(*args)


def _import_user_module(model_dir: Path, env: Mapping[str, str]) -> ModuleType | None:
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    # In SageMaker this may be an s3:// tarball of the code; only a local directory applies here.
    code_dir = Path(submit) if submit and Path(submit).is_dir() else model_dir / "code"
    program = env.get("SAGEMAKER_PROGRAM", "").strip()
    path = code_dir / (program or "inference.py")
    if path.suffix != ".py":
        path = path.with_name(path.name + ".py")
    if not path.is_file():
        if program:
            raise ModelLoadError(f"SAGEMAKER_PROGRAM {program!r}: no such file in {code_dir}")
        return None
    if (code_dir / "requirements.txt").is_file():
        log.warning("%s/requirements.txt is not installed by shadowlab", code_dir)
    # Like the toolkit: the code dir goes on sys.path so inference.py can import its siblings,
    # and the module is registered under its own name so pickles that reference it load.
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ModelLoadError(f"importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _default_model_fn(model_dir: str) -> Any:
    candidates = sorted(p for p in Path(model_dir).iterdir() if p.suffix in MODEL_SUFFIXES)
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ModelLoadError(
            f"the default model_fn needs exactly one {'/'.join(MODEL_SUFFIXES)} file in the "
            f"model directory (found {found}); add one or define model_fn in code/inference.py"
        )
    import joblib  # deferred: it pulls in a lot, and custom model_fn code may not need it

    # joblib.load reads both joblib dumps and plain pickles.
    return joblib.load(candidates[0])


def _default_predict(data: Any, model: Any) -> Any:
    predict = getattr(model, "predict", None)
    if predict is None:
        raise InvocationError(500, f"the model ({type(model).__name__}) has no predict method")
    return predict(data)


def _bind(fn: _Handler | None, arity: int, default: _Handler | None = None) -> _Bound:
    if fn is None:
        return default, False
    return fn, _takes_context(fn, arity)


def _takes_context(fn: _Handler, arity: int) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) > arity


def _as_invocation_error(exc: Exception) -> InvocationError:
    # The toolkit's own errors carry `status_code` (GenericInferenceToolkitError); honour it so
    # code ported from a SageMaker container keeps choosing its status.
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return InvocationError(status, str(getattr(exc, "message", exc)))
    return InvocationError(500, f"{type(exc).__name__}: {exc}")


def _to_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise InvocationError(
        500, f"output_fn returned {type(payload).__name__}; it must return bytes or str"
    )
