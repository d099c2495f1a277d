"""SageMaker ARNs.

SageMaker lower-cases the resource name inside an ARN (``MyEndpoint`` has
``arn:aws:sagemaker:us-east-1:123456789012:endpoint/myendpoint``), and names are unique without
regard to case, so the lower-cased name is also the storage key.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowlab.domain.kinds import ResourceKind

_PREFIX = "arn:aws:sagemaker:"


@dataclass(frozen=True)
class Arn:
    region: str
    account: str
    kind: ResourceKind
    name_key: str

    def __str__(self) -> str:
        return f"{_PREFIX}{self.region}:{self.account}:{self.kind.value}/{self.name_key}"


def make_arn(region: str, account: str, kind: ResourceKind, name: str) -> str:
    return str(Arn(region, account, kind, name.lower()))


def parse_arn(text: str) -> Arn | None:
    """The parts of a SageMaker ARN of a kind shadowlab manages, or None."""
    if not text.startswith(_PREFIX):
        return None
    try:
        region, account, resource = text[len(_PREFIX) :].split(":", 2)
        kind_text, name = resource.split("/", 1)
        kind = ResourceKind(kind_text)
    except ValueError:
        return None
    if not region or not account or not name:
        return None
    return Arn(region, account, kind, name.lower())
