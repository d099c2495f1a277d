"""`GET /shadowlab/inventory`: the rows of the inventory view as JSON, read-only.

Query: `region` (default: every region), `status` (comma-separated), `tag=key=value`
(repeatable, all must match). The answer names the table and its columns, then the rows.
Behind the same SigV4 check as every other route (the front server verifies before routing).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shadowlab.inventory.rows import parse_tag, select
from shadowlab.store import Store
from shadowlab.store.inventory import COLUMNS, TABLE, read_rows

PATH = "/shadowlab/inventory"


def inventory_route(store: Store) -> Route:
    async def inventory(request: Request) -> Response:
        params = request.query_params
        statuses = [s for s in (params.get("status") or "").split(",") if s]
        try:
            tags = [parse_tag(t) for t in params.getlist("tag")]
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        # A store read blocks: off the event loop that also carries invocations.
        rows = await run_in_threadpool(read_rows, store)
        chosen = select(rows, region=params.get("region") or None, statuses=statuses, tags=tags)
        return JSONResponse({"table": TABLE, "columns": list(COLUMNS), "rows": chosen})

    return Route(PATH, inventory, methods=["GET"])
