"""Integration health routes and the health gauges of /metrics: thin over nexusctl.core.health_checks."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import with_config
from typing_extensions import TypedDict

from nexusctl.core import health_checks
from nexusctl.core.ids import parse_uuid
from nexusctl.daemon import responses as out
from nexusctl.daemon.fields import QUERY, QueryInt, Text
from nexusctl.daemon.keys import DB, SETTINGS
from nexusctl.daemon.observe import METRICS
from nexusctl.daemon.routing import PRINCIPAL, Route, ok, owner_filter, read_query, run_db

log = logging.getLogger(__name__)


@with_config(QUERY)
class HealthQuery(TypedDict, total=False):
    status: Text(max_length=64, description="healthy, degraded, broken (comma-separated)")
    limit: QueryInt(1, health_checks.LIST_MAX, "rows per page")
    cursor: Text(max_length=512, description="from paging.nextCursor")


def _windows(request: web.Request) -> dict:

    return health_checks.windows(request.app[SETTINGS])


async def one(request: web.Request) -> web.Response:
    record = await run_db(
        request, health_checks.check, request.match_info["id"], owner_id=owner_filter(request), **_windows(request)
    )
    return ok(record)


async def for_user(request: web.Request) -> web.Response:
    user_id = parse_uuid(request.match_info["userId"], "userId")
    request[PRINCIPAL].require_user(user_id)
    q = read_query(request)
    page = await run_db(
        request,
        health_checks.list_page,
        user_id=user_id,
        statuses=q.get("status"),
        limit=q.get("limit"),
        cursor=q.get("cursor"),
    )
    return ok(page.items, page=page)


ROUTES = [
    Route(
        "GET",
        "/integrations/user/{userId}/health",
        for_user,
        "A user's integrations' last stored health, worst first (checkedAt says when; unknown: not checked yet)",
        "integrations",
        query=HealthQuery,
        paged=True,
        data=list[out.HealthSummary],
        errors=("VALIDATION_ERROR", "FORBIDDEN"),
    ),
    Route(
        "GET",
        "/integrations/{id}/health",
        one,
        "One integration's health: status, reasons and what they come from",
        "integrations",
        data=out.HealthRecord,
        errors=("INTEGRATION_NOT_FOUND", "VALIDATION_ERROR"),
    ),
]


def metrics_reader(app: web.Application):
    """Sets /metrics' health gauges from two aggregate queries (run on the database threads at scrape time)."""

    async def read() -> None:

        gauges = await app[DB].run(health_checks.gauges)
        metrics = app[METRICS]
        metrics.integrations.clear()  # a provider/status with no integration left is no series, not a stale one
        for provider, status, count in gauges["byStatus"]:
            metrics.integrations.labels(provider, status).set(count)
        metrics.tokens_expiring.set(gauges["expiringWithin24h"])

    return read
