"""Request ids, one log line per request, and Prometheus metrics.

Routes are labelled by their template (``/integrations/{id}``), never the raw
path, so label sets stay bounded; unmatched paths share one label. Query
strings are never logged: OAuth callbacks carry codes and state there.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from bisect import bisect_left
from collections import defaultdict
from typing import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("nexusctl.access")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_ID = web.RequestKey("request_id", str)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class Metrics:
    """Counters and latency histograms by route and status; gauges added by later features."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        # Async sources of whole metric families (labelled gauges read from the database at scrape time).
        self.collectors: list[Callable[[], Awaitable[list[str]]]] = []

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency[(method, route)][bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[(method, route)] += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def collector(self, collect: Callable[[], Awaitable[list[str]]]) -> None:
        self.collectors.append(collect)

    async def render_all(self) -> str:
        """``render`` plus every collector's lines; a failing collector is logged and left out."""
        lines = []
        for collect in self.collectors:
            try:
                lines += await collect()
            except Exception:  # noqa: BLE001 - one family missing beats a /metrics that fails
                log.warning("a metrics collector failed", exc_info=True)
        return self.render() + ("\n".join(lines) + "\n" if lines else "")

    def render(self) -> str:
        lines = ["# HELP nexus_http_requests_total HTTP requests by route and status.",
                 "# TYPE nexus_http_requests_total counter"]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(f'nexus_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
        lines += ["# HELP nexus_http_request_duration_seconds Time to answer, by route.",
                  "# TYPE nexus_http_request_duration_seconds histogram"]
        for (method, route), counts in sorted(self.latency.items()):
            labels = f'method="{method}",route="{route}"'
            running = 0
            for bound, count in zip((*BUCKETS, "+Inf"), counts, strict=False):
                running += count
                lines.append(f'nexus_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
            lines.append(f"nexus_http_request_duration_seconds_sum{{{labels}}} {self.latency_sum[(method, route)]:.6f}")
            lines.append(f"nexus_http_request_duration_seconds_count{{{labels}}} {running}")
        for name, (help_text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()}"]
        return "\n".join(lines) + "\n"


METRICS = web.AppKey("metrics", Metrics)


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def observe_middleware(request: web.Request, handler):
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:  # redirects and the like pass through
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        request.app[METRICS].observe(request.method, route, status, elapsed)
        log.info(
            "%s %s %s %.1fms",
            request.method, request.path if route != "unmatched" else "(unmatched)", status, elapsed * 1000,
            extra={"action": "http_request", "method": request.method, "route": route, "status": status,
                   "duration_ms": round(elapsed * 1000, 2), "request_id": request_id},
        )


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(text=await request.app[METRICS].render_all(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line with the record's structured extras."""

    FIELDS = ("action", "method", "route", "status", "duration_ms", "request_id")
    converter = time.gmtime  # timestamps in UTC

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
