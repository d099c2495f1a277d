"""CaptureConfig from SageMaker's two shapes, checked against botocore's own model."""

from __future__ import annotations

import os
import uuid

import botocore.session
import pytest

from shadowlab.capture.config import CaptureConfig, CaptureConfigError, media_type, parse_s3_uri
from shadowlab.dataplane import observer
from shadowlab.dataplane.observer import new_event_id


def test_member_names_and_enums_are_botocore_s() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    capture = model.shape_for("DataCaptureConfig").members
    assert {
        "EnableCapture",
        "InitialSamplingPercentage",
        "DestinationS3Uri",
        "KmsKeyId",
        "CaptureOptions",
        "CaptureContentTypeHeader",
    } <= set(capture)
    assert model.shape_for("CaptureMode").enum == ["Input", "Output", "InputAndOutput"]
    assert set(model.shape_for("CaptureContentTypeHeader").members) == {
        "CsvContentTypes",
        "JsonContentTypes",
    }
    storage = model.shape_for("InferenceExperimentDataStorageConfig").members
    assert set(storage) == {"Destination", "KmsKey", "ContentType"}


def test_from_data_capture_config() -> None:
    config = CaptureConfig.from_data_capture_config(
        {
            "EnableCapture": True,
            "InitialSamplingPercentage": 30,
            "DestinationS3Uri": "s3://bucket/data-capture/",
            "KmsKeyId": "alias/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["Application/JSON"],
            },
        }
    )
    assert (config.bucket, config.prefix) == ("bucket", "data-capture")
    assert config.kms_key_id == "alias/capture"
    assert config.sampling_percentage == 30
    assert (config.capture_input, config.capture_output) == (True, False)
    assert config.csv_content_types == ("text/csv",)
    assert config.json_content_types == ("application/json",)
    assert config.enabled


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (["Input", "Output"], (True, True)),
        (["InputAndOutput"], (True, True)),
        (["Output"], (False, True)),
    ],
)
def test_capture_modes(modes: list[str], expected: tuple[bool, bool]) -> None:
    config = CaptureConfig.from_data_capture_config(
        {
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://b",
            "CaptureOptions": [{"CaptureMode": mode} for mode in modes],
        }
    )
    assert (config.capture_input, config.capture_output) == expected
    # No header: SageMaker base64-encodes everything (botocore's CaptureContentTypeHeader doc).
    assert config.csv_content_types == config.json_content_types == ()
    assert config.enabled  # "defaults to enabled"


def test_disabled_and_invalid() -> None:
    base = {"InitialSamplingPercentage": 5, "DestinationS3Uri": "s3://b/p"}
    disabled = CaptureConfig.from_data_capture_config(
        {**base, "EnableCapture": False, "CaptureOptions": [{"CaptureMode": "Input"}]}
    )
    assert not disabled.enabled
    with pytest.raises(CaptureConfigError, match="CaptureMode"):
        CaptureConfig.from_data_capture_config({**base, "CaptureOptions": [{"CaptureMode": "X"}]})
    with pytest.raises(CaptureConfigError, match="DestinationS3Uri"):
        CaptureConfig.from_data_capture_config({"InitialSamplingPercentage": 5})
    with pytest.raises(CaptureConfigError, match="s3://"):
        CaptureConfig(destination="/tmp/x")
    with pytest.raises(CaptureConfigError, match="between 0 and 100"):
        CaptureConfig(destination="s3://b", sampling_percentage=101)


def test_from_data_storage_config() -> None:
    config = CaptureConfig.from_data_storage_config(
        {
            "Destination": "s3://experiments/shadow",
            "KmsKey": KMS,
            "ContentType": {"JsonContentTypes": ["application/json"]},
        }
    )
    assert (config.bucket, config.prefix, config.kms_key_id) == ("experiments", "shadow", KMS)
    assert config.sampling_percentage == 100
    assert config.capture_input and config.capture_output
    assert config.json_content_types == ("application/json",)
    assert config.csv_content_types == ()


KMS = "arn:aws:kms:us-east-1:000000000000:key/abc"


def test_sampling_keeps_events_whole_and_matches_the_share() -> None:
    config = CaptureConfig(destination="s3://b", sampling_percentage=25)
    ids = [uuid.uuid4().hex for _ in range(20_000)]
    kept = [event_id for event_id in ids if config.sampled(event_id)]
    assert 0.23 < len(kept) / len(ids) < 0.27
    # The data plane's own ids, which count up: sampling must still spread them evenly.
    for share in (1, 10, 50, 90):
        sample = CaptureConfig(destination="s3://b", sampling_percentage=share)
        ours = [new_event_id() for _ in range(20_000)]
        assert abs(sum(map(sample.sampled, ours)) / len(ours) - share / 100) < 0.01
    assert not CaptureConfig(destination="s3://b", enabled=False).sampled(ids[0])
    # Deterministic per event id: production and shadow records are kept together.
    assert all(config.sampled(event_id) for event_id in kept)
    assert config.sampled("not-hex") == config.sampled("not-hex")
    assert not CaptureConfig(destination="s3://b", sampling_percentage=0).sampled(ids[0])


def test_event_ids_are_unique_uuids() -> None:
    ids = [new_event_id() for _ in range(100_000)]  # a few hundred blocks
    assert len(set(ids)) == len(ids)
    for event_id in ids[::97]:
        parsed = uuid.UUID(event_id)
        assert (str(parsed), parsed.version, parsed.variant) == (event_id, 4, uuid.RFC_4122)


def test_native_event_ids_equal_the_python_ones() -> None:
    """dataplane/_eventids.c against observer.py's Python ids, from the same seeds (wrapping at
    12 hex digits included); CI insists on the C ones being built."""
    if observer.NATIVE_IDS is None:
        assert os.environ.get("CI") != "true", "dataplane/_eventids.c did not build"
        pytest.skip("dataplane/_eventids.c is not built (no C compiler)")
    native_id, native_seed = observer.NATIVE_IDS
    prefix = "0123abcd-4567-4890-a123-"
    try:
        for start in (0, 15, 2**47 - 1, 2**48 - 2, 2**64 - 2):
            native_seed(prefix, start)
            observer._Ids.seed(prefix, start)
            ours = [native_id() for _ in range(4)]
            assert ours == [observer._Ids.new_event_id() for _ in range(4)]
            assert all(len(event_id) == 36 and event_id.startswith(prefix) for event_id in ours)
        for bad in ("short", "é" * 12, "a" * 23 + "é"):  # 24 bytes in UTF-8; 24 characters
            with pytest.raises(ValueError, match="24 ASCII characters"):
                native_seed(bad, 0)
            with pytest.raises(ValueError, match="24 ASCII characters"):
                observer._Ids.seed(bad, 0)
    finally:
        observer._new_process()  # a fresh prefix and start for the rest of this process


def test_helpers() -> None:
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert media_type(" Text/CSV ; charset=utf-8") == "text/csv"
    assert media_type(None) == ""
