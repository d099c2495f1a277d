"""AddTags, ListTags, DeleteTags for every resource ARN shadowlab manages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shadowlab.domain.arns import parse_arn
from shadowlab.errors import ValidationException
from shadowlab.services.common import Output
from shadowlab.services.context import RequestContext
from shadowlab.store import Store

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import (
        AddTagsInputTypeDef,
        DeleteTagsInputTypeDef,
        ListTagsInputTypeDef,
        TagTypeDef,
    )

MAX_TAGS_PER_RESOURCE = 50
_LIST_TAGS_DEFAULT = 50


def _pairs(tags: Sequence[TagTypeDef] | None) -> list[tuple[str, str]]:
    pairs = [(t["Key"], t.get("Value", "")) for t in tags or ()]
    for key, _ in pairs:
        # AWS reserves the prefix for its own tags.
        if key.lower().startswith("aws:"):
            raise ValidationException(f"Tag keys starting with 'aws:' are reserved: '{key}'.")
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValidationException(f"Duplicate tag keys in the request: {', '.join(duplicates)}.")
    return pairs


class TagService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def check_new(self, tags: Sequence[TagTypeDef] | None) -> list[tuple[str, str]]:
        """Validate the Tags of a CreateX call before anything is written."""
        pairs = _pairs(tags)
        if len(pairs) > MAX_TAGS_PER_RESOURCE:
            raise ValidationException(
                f"A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; got {len(pairs)}."
            )
        return pairs

    def _resource(self, ctx: RequestContext, arn: str) -> str:
        """The stored ARN of the resource `arn` names, if this account has it."""
        parsed = parse_arn(arn)
        record = self.store.get_by_arn(arn.lower()) if parsed else None
        if record is None or parsed is None or parsed.account != ctx.account:
            raise ValidationException(f"Resource {arn} does not exist.")
        return record.arn

    def add_tags(self, ctx: RequestContext, params: AddTagsInputTypeDef) -> Output:
        # One unit: the count checked is the count written to (two concurrent AddTags cannot
        # pass the limit together on SQLite), and the resource is there when its tags are.
        with self.store.unit_of_work():
            arn = self._resource(ctx, params["ResourceArn"])
            pairs = _pairs(params["Tags"])
            existing: dict[str, str] = dict(self.store.list_tags(arn))
            total = len(existing.keys() | {k for k, _ in pairs})
            if total > MAX_TAGS_PER_RESOURCE:
                raise ValidationException(
                    f"Resource {arn} would have {total} tags; the limit is {MAX_TAGS_PER_RESOURCE}."
                )
            self.store.put_tags(arn, pairs)
        return {"Tags": [{"Key": k, "Value": v} for k, v in pairs]}

    def list_tags(self, ctx: RequestContext, params: ListTagsInputTypeDef) -> Output:
        pairs = self.store.list_tags(self._resource(ctx, params["ResourceArn"]))
        start = 0
        if params.get("NextToken"):
            token = params["NextToken"]
            if not token.isdigit() or int(token) > len(pairs):
                raise ValidationException("The pagination token is not valid for this request.")
            start = int(token)
        limit = int(params.get("MaxResults", _LIST_TAGS_DEFAULT))
        page = pairs[start : start + limit]
        result: Output = {"Tags": [{"Key": k, "Value": v} for k, v in page]}
        if start + limit < len(pairs):
            result["NextToken"] = str(start + limit)
        return result

    def delete_tags(self, ctx: RequestContext, params: DeleteTagsInputTypeDef) -> Output:
        arn = self._resource(ctx, params["ResourceArn"])
        self.store.delete_tags(arn, params["TagKeys"])
        return {}
