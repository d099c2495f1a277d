"""Unions (structures with exactly one member set) are validated like any other shape.

No operation shadowlab serves takes a union in its input today (botocore 1.44), so these check
the validator against a real SageMaker union, CustomFileSystem, inside CreateSpace's input. A
union with none or several members set cannot be deserialised: SerializationException, as
Smithy's protocol tests require (MalformedUnionMultipleFieldsSet, ...NoFieldsSet,
...KnownAndUnknownFieldsSet); the one member set is checked as any structure is.
"""

from __future__ import annotations

from typing import Any

import pytest

from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.awsprotocol.validation import validate, validation_errors
from shadowlab.errors import SerializationException, ValidationException

EFS = {"FileSystemId": "fs-0123456789abcdef"}
S3 = {"S3Uri": "s3://bucket/prefix"}
PATH = "spaceSettings.customFileSystems.1.member"


def space(file_system: dict[str, Any]) -> dict[str, Any]:
    return {
        "DomainId": "d-abc",
        "SpaceName": "space-a",
        "SpaceSettings": {"CustomFileSystems": [file_system]},
    }


def check(file_system: dict[str, Any]) -> None:
    validate(sagemaker_model().operation_model("CreateSpace").input_shape, space(file_system))


def test_is_a_union_in_the_model() -> None:
    assert sagemaker_model().shape_for("CustomFileSystem").metadata.get("union") is True


def test_one_member_set_is_valid() -> None:
    check({"EFSFileSystem": EFS})
    check({"S3FileSystem": S3, "FSxLustreFileSystem": None})  # null members are not set


@pytest.mark.parametrize(
    ("file_system", "detail"),
    [
        ({"EFSFileSystem": EFS, "S3FileSystem": S3}, "2 are set: EFSFileSystem, S3FileSystem"),
        ({"EFSFileSystem": EFS, "Unknown": 1}, "2 are set: EFSFileSystem, Unknown"),
        ({}, "0 are set"),
        ({"EFSFileSystem": None}, "0 are set"),
    ],
)
def test_none_or_several_members_set_cannot_be_deserialised(
    file_system: dict[str, Any], detail: str
) -> None:
    with pytest.raises(SerializationException) as caught:
        check(file_system)
    assert caught.value.message == (
        f"Union CustomFileSystem at '{PATH}' must have exactly one member set; {detail}"
    )


def test_the_member_set_is_validated_like_any_structure() -> None:
    with pytest.raises(ValidationException) as caught:
        check({"EFSFileSystem": {"FileSystemId": "nope"}})
    assert caught.value.message.startswith(
        f"2 validation errors detected: Value 'nope' at '{PATH}.eFSFileSystem.fileSystemId' "
        "failed to satisfy constraint: Member must have length greater than or equal to 11"
    )
    missing = validation_errors(
        sagemaker_model().operation_model("CreateSpace").input_shape,
        space({"EFSFileSystem": {}}),
    )
    assert missing == [
        f"Value null at '{PATH}.eFSFileSystem.fileSystemId' failed to satisfy constraint: "
        "Member must not be null"
    ]
