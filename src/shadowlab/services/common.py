"""Helpers every resource service shares: lookups that fail the AWS way, paging, lists."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shadowlab.domain.arns import make_arn
from shadowlab.domain.kinds import ResourceKind
from shadowlab.errors import ResourceNotFound, ServiceError, ValidationException
from shadowlab.services.context import RequestContext, to_datetime
from shadowlab.store import AlreadyExists, ListQuery, Record, Store

# How SageMaker's own list calls default.
DEFAULT_PAGE_SIZE = 10
_SORT_COLUMNS = {"Name": "name_key", "CreationTime": "created_at", "Status": "status"}


def not_found(ctx: RequestContext, kind: ResourceKind, name: str) -> ServiceError:
    """SageMaker answers a missing model, config or endpoint with ValidationException and this
    text; inference-experiment operations declare ResourceNotFound instead."""
    arn = make_arn(ctx.region, ctx.account, kind, name)
    message = f'Could not find {kind.label} "{arn}".'
    if kind is ResourceKind.INFERENCE_EXPERIMENT:
        return ResourceNotFound(message)
    return ValidationException(message)


def already_exists(ctx: RequestContext, kind: ResourceKind, name: str) -> ValidationException:
    arn = make_arn(ctx.region, ctx.account, kind, name)
    return ValidationException(f'Cannot create already existing {kind.label} "{arn}".')


def being_changed(ctx: RequestContext, kind: ResourceKind, name: str) -> ValidationException:
    """What a caller hears when its operation lost every compare-and-set race it ran."""
    arn = make_arn(ctx.region, ctx.account, kind, name)
    return ValidationException(
        f'{kind.label.capitalize()} "{arn}" is being changed by another request; retry.'
    )


def insert_new(
    store: Store, ctx: RequestContext, record: Record, tags: list[tuple[str, str]]
) -> None:
    """Store a newly created resource with its tags, both or neither (in the caller's unit of
    work if one is open); a taken name fails the AWS way."""
    with store.unit_of_work():
        try:
            store.insert(record)
        except AlreadyExists:
            raise already_exists(ctx, record.kind, record.name) from None
        if tags:
            store.put_tags(record.arn, tags)


def require(store: Store, ctx: RequestContext, kind: ResourceKind, name: str) -> Record:
    record = store.get(ctx.region, kind, name)
    if record is None:
        raise not_found(ctx, kind, name)
    return record


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def plain(value: Any) -> Any:
    """`value` with datetimes as epoch seconds, recursively: how documents are stored (JSON)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def with_datetimes(document: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The stored document (epoch floats) with the named timestamp members as datetimes."""
    out = dict(document)
    for key in keys:
        if out.get(key) is not None:
            out[key] = to_datetime(out[key])
    return out


# -- paging ------------------------------------------------------------------------------------


def _encode_token(values: tuple[Any, str], fingerprint: str) -> str:
    raw = json.dumps({"after": list(values), "q": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str, fingerprint: str) -> tuple[Any, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["after"]
        if data["q"] != fingerprint or not isinstance(after, list) or len(after) != 2:
            raise ValueError
        return after[0], str(after[1])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationException(
            "The pagination token is not valid for this request. Use the NextToken from the "
            "previous response of the same call with the same filters."
        ) from None


def list_page(
    store: Store,
    ctx: RequestContext,
    kind: ResourceKind,
    params: Mapping[str, Any],
    summarize: Callable[[Record], dict[str, Any]],
    *,
    default_sort: str = "CreationTime",
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a ListX call: filters, sort and keyset paging shared by every kind."""
    sort_by = params.get("SortBy", default_sort)
    filters = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    # The token is only good for the same call: same kind of resource, same filters and order.
    fingerprint = json.dumps([kind.value, filters], sort_keys=True, default=str)
    after = None
    if params.get("NextToken"):
        after = _decode_token(params["NextToken"], fingerprint)
    limit = int(params.get("MaxResults", DEFAULT_PAGE_SIZE))
    query = ListQuery(
        name_contains=params.get("NameContains"),
        created_before=epoch(params.get("CreationTimeBefore")),
        created_after=epoch(params.get("CreationTimeAfter")),
        modified_before=epoch(params.get("LastModifiedTimeBefore")),
        modified_after=epoch(params.get("LastModifiedTimeAfter")),
        status=params.get("StatusEquals"),
        sort_by=_SORT_COLUMNS[sort_by],
        descending=params.get("SortOrder", "Descending") == "Descending",
        after=after,
        limit=limit + 1,  # one more tells whether another page exists
    )
    records = store.list_records(ctx.region, kind, query)
    token = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        sort_value = {"name_key": last.name_key, "created_at": last.created_at}.get(
            query.sort_by, last.status
        )
        token = _encode_token((sort_value, last.name_key), fingerprint)
    return [summarize(r) for r in records], token
