"""Integration health routes and the health gauges of /metrics: thin over nexusctl.core.health_checks."""

from __future__ import annotations

import logging

from aiohttp import web

from daemon import models_schema as out
from daemon.routing import PRINCIPAL, Route, ok, owner_filter, read_query, run_db
from daemon.schema import Int, Query, Str
from nexusctl.core import health_checks
from nexusctl.core.ids import parse_uuid

log = logging.getLogger(__name__)


def _windows(request: web.Request) -> dict:
    from daemon.app import SETTINGS

    return health_checks.windows(request.app[SETTINGS])


async def one(request: web.Request) -> web.Response:
    record = await run_db(request, health_checks.check, request.match_info["id"], owner_id=owner_filter(request),
                          **_windows(request))
    return ok(record)


async def for_user(request: web.Request) -> web.Response:
    user_id = parse_uuid(request.match_info["userId"], "userId")
    request[PRINCIPAL].require_user(user_id)
    q = read_query(request)
    page = await run_db(request, health_checks.list_page, user_id=user_id, statuses=q.get("status"),
                        limit=q.get("limit"), cursor=q.get("cursor"))
    return ok(page.items, page=page)


ROUTES = [
    Route("GET", "/integrations/user/{userId}/health", for_user,
          "A user's integrations' last stored health, worst first (checkedAt says when; unknown: not checked yet)", "integrations",
          query=Query({"status": Str(max_length=64, description="healthy, degraded, broken (comma-separated)"),
                       "limit": Int(1, health_checks.LIST_MAX, "rows per page"),
                       "cursor": Str(max_length=512, description="from paging.nextCursor")}),
          paged=True, data=out.list_of(out.HEALTH_SUMMARY), errors=("VALIDATION_ERROR", "FORBIDDEN")),
    Route("GET", "/integrations/{id}/health", one,
          "One integration's health: status, reasons and what they come from", "integrations",
          data=out.HEALTH_RECORD, errors=("INTEGRATION_NOT_FOUND", "VALIDATION_ERROR")),
]


def metrics_collector(app: web.Application):
    """Gauge lines for /metrics from two aggregate queries (run on the database threads at scrape time)."""

    async def collect() -> list[str]:
        from daemon.app import DB

        gauges = await app[DB].run(health_checks.gauges)
        lines = ["# HELP nexus_integrations Integrations by provider and health status (unknown: not checked yet).",
                 "# TYPE nexus_integrations gauge"]
        for provider, status, count in sorted(gauges["byStatus"]):
            lines.append(f'nexus_integrations{{provider="{provider}",status="{status}"}} {count}')
        lines += ["# HELP nexus_tokens_expiring_24h Active integrations whose access token expires within 24 hours.",
                  "# TYPE nexus_tokens_expiring_24h gauge", f"nexus_tokens_expiring_24h {gauges['expiringWithin24h']}"]
        return lines

    return collect
