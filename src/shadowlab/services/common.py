"""Helpers every resource service shares: lookups that fail the AWS way, paging, lists."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from shadowlab.domain.arns import make_arn
from shadowlab.domain.kinds import ResourceKind
from shadowlab.errors import ResourceNotFound, ServiceError, ValidationException
from shadowlab.services.context import RequestContext, to_datetime
from shadowlab.store import AlreadyExists, ListQuery, Record, RecordKind, Store
from shadowlab.store.records import ResourceState

# What a service call answers: members of the operation's output shape, which the wire layer
# checks and serialises against botocore's model (so values need no finer type here).
Output = dict[str, object]

S = TypeVar("S", bound=ResourceState)

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
    store: Store, ctx: RequestContext, record: Record[S], tags: list[tuple[str, str]]
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


def require(store: Store, ctx: RequestContext, kind: RecordKind[S], name: str) -> Record[S]:
    record = store.get(ctx.region, kind, name)
    if record is None:
        raise not_found(ctx, kind.resource, name)
    return record


def epoch(value: object) -> float | None:
    """A timestamp member of a request as epoch seconds. The wire layer parses timestamps into
    datetimes; botocore's shapes also let a caller in the same process give ISO 8601 text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ValidationException(f"Not a timestamp: {value!r}.")


def stored_times(times: Mapping[str, object] | None) -> dict[str, float]:
    """A request's timestamps (a Schedule) as the epoch seconds documents store (JSON)."""
    return {k: t for k, v in (times or {}).items() if (t := epoch(v)) is not None}


def with_datetimes(document: Mapping[str, object], keys: tuple[str, ...]) -> Output:
    """The stored document (epoch floats) with the named timestamp members as datetimes."""
    out = dict(document)
    for key in keys:
        value = out.get(key)
        if isinstance(value, int | float):
            out[key] = to_datetime(value)
    return out


# -- paging ------------------------------------------------------------------------------------


def _encode_token(values: tuple[object, str], fingerprint: str) -> str:
    raw = json.dumps({"after": list(values), "q": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str, fingerprint: str) -> tuple[object, str]:
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


def _text(params: Mapping[str, object], member: str) -> str | None:
    value = params.get(member)
    return None if value is None else str(value)


def list_page(
    store: Store,
    ctx: RequestContext,
    kind: RecordKind[S],
    params: Mapping[str, object],
    summarize: Callable[[Record[S]], Output],
    *,
    default_sort: str = "CreationTime",
) -> tuple[list[Output], str | None]:
    """One page of a ListX call: filters, sort and keyset paging shared by every kind. `params`
    is the ListX request (its members are the same for every kind that has them)."""
    sort_by = _text(params, "SortBy") or default_sort
    filters = {k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}
    # The token is only good for the same call: same kind of resource, same filters and order.
    fingerprint = json.dumps([kind.resource.value, filters], sort_keys=True, default=str)
    after = None
    token = _text(params, "NextToken")
    if token:
        after = _decode_token(token, fingerprint)
    max_results = params.get("MaxResults")
    limit = max_results if isinstance(max_results, int) else DEFAULT_PAGE_SIZE
    query = ListQuery(
        name_contains=_text(params, "NameContains"),
        created_before=epoch(params.get("CreationTimeBefore")),
        created_after=epoch(params.get("CreationTimeAfter")),
        modified_before=epoch(params.get("LastModifiedTimeBefore")),
        modified_after=epoch(params.get("LastModifiedTimeAfter")),
        status=_text(params, "StatusEquals"),
        sort_by=_SORT_COLUMNS[sort_by],
        descending=_text(params, "SortOrder") in (None, "Descending"),
        after=after,
        limit=limit + 1,  # one more tells whether another page exists
    )
    records = store.list_records(ctx.region, kind, query)
    next_token = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        sort_value = {"name_key": last.name_key, "created_at": last.created_at}.get(
            query.sort_by, last.status
        )
        next_token = _encode_token((sort_value, last.name_key), fingerprint)
    return [summarize(r) for r in records], next_token
