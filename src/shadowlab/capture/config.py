"""What one endpoint asks capture to do, read from either of SageMaker's two spellings.

An endpoint config carries a ``DataCaptureConfig`` (EnableCapture, InitialSamplingPercentage,
DestinationS3Uri, KmsKeyId, CaptureOptions, CaptureContentTypeHeader); a running inference
experiment carries a ``DataStorageConfig`` (Destination, KmsKey, ContentType). Member names and
enums follow botocore's SageMaker model (``CaptureMode`` is ``Input`` | ``Output`` |
``InputAndOutput``). Both become one frozen ``CaptureConfig`` so the writer never sees the wire
shapes.

Encoding default: botocore documents ``CaptureContentTypeHeader`` as "If no headers are
specified SageMaker will by default base64 encode when capturing the data", so without a header
both lists are empty and every payload is captured as BASE64. (The SageMaker Python SDK's own
``DataCaptureConfig`` class sends ``text/csv`` and ``application/json`` explicitly; that arrives
here as an ordinary header.)
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class CaptureConfigError(ValueError):
    """A capture configuration that cannot be honoured; the message says which field."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")`` (no trailing slash)."""
    if not uri.startswith("s3://"):
        raise CaptureConfigError(f"capture destination {uri!r} is not s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise CaptureConfigError(f"capture destination {uri!r} has no bucket")
    return bucket, prefix.strip("/")


def media_type(content_type: str | None) -> str:
    """The media type without parameters, lower case: ``Text/CSV; charset=utf-8`` -> ``text/csv``.

    SageMaker's own example captures ``text/csv; charset=utf-8`` as CSV with ``text/csv``
    configured, so matching ignores parameters (and the model's patterns forbid them anyway).
    """
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Capture for one endpoint: where, how much, what, and how to encode it."""

    destination: str  # s3://bucket/prefix
    kms_key_id: str | None = None
    sampling_percentage: int = 100  # 0..100 of events; production and shadow sampled together
    capture_input: bool = True
    capture_output: bool = True
    csv_content_types: tuple[str, ...] = ()
    json_content_types: tuple[str, ...] = ()
    enabled: bool = True
    # Derived once so that the hot path never parses: bucket and prefix of `destination`,
    # and the sampling threshold on the 32-bit prefix of an event id.
    bucket: str = field(init=False, compare=False, repr=False)
    prefix: str = field(init=False, compare=False, repr=False)
    _threshold: int = field(init=False, compare=False, repr=False)
    captures_all: bool = field(init=False, compare=False, repr=False)  # enabled, at 100%

    def __post_init__(self) -> None:
        if not 0 <= self.sampling_percentage <= 100:
            raise CaptureConfigError(
                f"sampling percentage {self.sampling_percentage} is not between 0 and 100"
            )
        if not (self.capture_input or self.capture_output):
            raise CaptureConfigError("capture options select neither Input nor Output")
        bucket, prefix = parse_s3_uri(self.destination)
        object.__setattr__(self, "bucket", bucket)
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(
            self, "csv_content_types", tuple(media_type(t) for t in self.csv_content_types)
        )
        object.__setattr__(
            self, "json_content_types", tuple(media_type(t) for t in self.json_content_types)
        )
        object.__setattr__(self, "_threshold", (self.sampling_percentage << 32) // 100)
        object.__setattr__(self, "captures_all", self.enabled and self.sampling_percentage == 100)

    def sampled(self, event_id: str) -> bool:
        """Whether this event is captured: decided by the event id, so that the production record
        and every shadow record of one request are kept or skipped together (pairs stay whole).

        The last 8 hex digits of the id (any hex string; others go through CRC-32), multiplied by
        an odd constant modulo 2**32 (Knuth's multiplicative hash, a bijection): random ids stay
        uniform, and the data plane's ids, which count up (``dataplane.observer.new_event_id``),
        spread evenly over the range. A disabled config samples nothing.
        """
        if not self.enabled:
            return False
        if self.sampling_percentage >= 100:
            return True
        if self.sampling_percentage <= 0:
            return False
        try:
            value = int(event_id[-8:], 16)
        except ValueError:  # not hex: still deterministic across processes, unlike hash()
            value = zlib.crc32(event_id.encode())
        return (value * 0x9E3779B1) & 0xFFFFFFFF < self._threshold

    @classmethod
    def from_data_capture_config(cls, config: Mapping[str, Any]) -> CaptureConfig:
        """From an endpoint config's ``DataCaptureConfig`` (as validated by botocore's model)."""
        try:
            destination = str(config["DestinationS3Uri"])
            sampling = int(config["InitialSamplingPercentage"])
            options: Sequence[Mapping[str, Any]] = config["CaptureOptions"]
        except KeyError as exc:
            raise CaptureConfigError(f"DataCaptureConfig lacks {exc.args[0]}") from None
        capture_input, capture_output = _capture_modes(options)
        csv, json_types = _content_types(config.get("CaptureContentTypeHeader"))
        return cls(
            destination=destination,
            kms_key_id=config.get("KmsKeyId") or None,
            sampling_percentage=sampling,
            capture_input=capture_input,
            capture_output=capture_output,
            csv_content_types=csv,
            json_content_types=json_types,
            # The model documents EnableCapture as "defaults to enabled".
            enabled=bool(config.get("EnableCapture", True)),
        )

    @classmethod
    def from_data_storage_config(cls, config: Mapping[str, Any]) -> CaptureConfig:
        """From an inference experiment's ``DataStorageConfig``: it has no sampling or capture
        options, so every request reaching a variant of the experiment is captured in and out.
        """
        try:
            destination = str(config["Destination"])
        except KeyError:
            raise CaptureConfigError("DataStorageConfig lacks Destination") from None
        csv, json_types = _content_types(config.get("ContentType"))
        return cls(
            destination=destination,
            kms_key_id=config.get("KmsKey") or None,
            csv_content_types=csv,
            json_content_types=json_types,
        )


def _capture_modes(options: Sequence[Mapping[str, Any]]) -> tuple[bool, bool]:
    capture_input = capture_output = False
    for option in options:
        mode = option.get("CaptureMode")
        if mode == "Input":
            capture_input = True
        elif mode == "Output":
            capture_output = True
        elif mode == "InputAndOutput":
            capture_input = capture_output = True
        else:
            raise CaptureConfigError(f"CaptureMode {mode!r} is not Input, Output or InputAndOutput")
    return capture_input, capture_output


def _content_types(header: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not header:
        return (), ()
    return tuple(header.get("CsvContentTypes") or ()), tuple(header.get("JsonContentTypes") or ())
