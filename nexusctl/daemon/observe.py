"""Request ids, one log line per request, and Prometheus metrics (prometheus-client).

Routes are labelled by their template (``/integrations/{id}``), never the raw
path, so label sets stay bounded; unmatched paths share one label. Query
strings are never logged: OAuth callbacks carry codes and state there.

Each daemon process has its own registry and answers its own figures: run several daemons on one
host and Prometheus scrapes each of them (one target per daemon). The figures read from the database
at scrape time (integrations by health, the delivery queue) are the same whichever daemon answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Awaitable, Callable

import orjson
import prometheus_client
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from nexusctl import logrecords, tracing

log = logging.getLogger("nexusctl.access")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From an event's emit to its delivery's first attempt: milliseconds when the worker keeps up, minutes
# behind a backlog.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# The database is read at most once a second however many scrapers there are.
DB_READ_INTERVAL = 1.0
CHILDREN_KEPT = 4096  # labelled children Metrics keeps at hand (more: forgotten and looked up again)
REQUEST_ID = web.RequestKey("request_id", str)
# Why an answer whose status went out already had its body cut short (its connection closed, so the caller sees
# a truncated body): the cause is a metrics label, so one of these.
CUT_CAUSES = {
    "provider": "the provider's answer broke off",
    "caller": "the caller went away",
    "stopping": "the daemon is stopping",
    "error": "an unexpected error",
}
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

# A *_created sample per counter doubles the series and says nothing a scraper needs.
prometheus_client.disable_created_metrics()


class Streamed(web.StreamResponse):
    """A streamed answer (the API proxy's): its status goes out before its body is known to arrive whole. When
    the body is then cut short, ``cut_short`` closes the connection (a caller reading a chunked or sized answer
    sees it end early, never a clean short one) and the request's record (access line, metrics) keeps the status
    that went out, with the cause, instead of whatever an exception would make of it (aiohttp's 500)."""

    cut: str | None = None  # a CUT_CAUSES key, once cut short

    def cut_short(self, request: web.Request, cause: str) -> None:
        if self.cut is None:  # the first cause is the one (a stop that comes after a broken-off answer)
            self.cut = cause
        if request.transport is not None:
            request.transport.close()


STREAMED = web.RequestKey("streamed", Streamed)  # the request's streamed answer, once its status went out


def streamed(request: web.Request) -> Streamed | None:
    """The request's streamed answer whose status went out already, if any."""
    answer = request.get(STREAMED)
    return answer if answer is not None and answer.prepared else None


class _Totals:
    """Counters and gauges kept by their owners (the delivery worker's claims, the relay's published events), read
    at scrape."""

    def __init__(self) -> None:
        self.reads: dict[str, tuple[str, Callable[[], float]]] = {}
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self):
        for name, (help_text, read) in sorted(self.reads.items()):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], read())
            yield family
        for name, (help_text, read) in sorted(self.gauges.items()):
            family = GaugeMetricFamily(name, help_text)
            family.add_metric([], read())
            yield family


class Metrics:
    """This daemon's registry: requests, the process, what core reports (nexusctl.telemetry) and gauges
    read from the database at scrape time."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, cpu, open fds (Linux)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.requests = Counter(
            "nexus_http_requests_total",
            "HTTP requests by route and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "nexus_http_request_duration_seconds",
            "Time to answer, by route.",
            ("method", "route"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.attempts = Counter(
            "nexus_delivery_attempts_total",
            "Webhook delivery attempts by outcome (delivered, retrying, failed, disabled, lost, released).",
            ("outcome",),
            registry=registry,
        )
        self.lag = Histogram(
            "nexus_delivery_emit_to_attempt_seconds",
            "Time from an event's emit to its delivery's first attempt.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.refreshes = Counter(
            "nexus_token_refreshes_total",
            "Token refreshes by provider and outcome (refreshed, not_yet, failed, revoked, error, not_extended).",
            ("provider", "outcome"),
            registry=registry,
        )
        self.syncs = Counter(
            "nexus_sync_runs_total",
            "Finished sync runs by action and outcome (completed, failed, cancelled, deferred).",
            ("action", "outcome"),
            registry=registry,
        )
        self.provider_calls = Counter(
            "nexus_provider_requests_total",
            "Calls to providers' APIs by provider and HTTP status (error: no answer).",
            ("provider", "status"),
            registry=registry,
        )
        self.provider_latency = Histogram(
            "nexus_provider_request_duration_seconds",
            "Time a provider's API took to answer, by provider.",
            ("provider",),
            buckets=BUCKETS,
            registry=registry,
        )
        self.oauth = Counter(
            "nexus_oauth_flows_total",
            "OAuth connect flows by provider and outcome (started, connected, denied, failed, bad_state).",
            ("provider", "outcome"),
            registry=registry,
        )
        self.proxy_calls = Counter(
            "nexus_proxy_calls_total",
            "Provider calls made through the API proxy, by provider, method and status (0: unreachable).",
            ("provider", "method", "status"),
            registry=registry,
        )
        self.proxy_latency = Histogram(
            "nexus_proxy_call_seconds",
            "Time to the provider's response headers, by provider.",
            ("provider",),
            buckets=BUCKETS,
            registry=registry,
        )
        self.cut_short = Counter(
            "nexus_http_answers_cut_short_total",
            "Answers whose status went out but whose body was cut short (the connection closed), by route and "
            "cause (provider, caller, stopping, error); nexus_http_requests_total counts them by the status sent.",
            ("method", "route", "cause"),
            registry=registry,
        )
        # Read from the database at scrape time (see db_reader).
        self.integrations = Gauge(
            "nexus_integrations",
            "Integrations by provider and health status (unknown: not checked yet).",
            ("provider", "status"),
            registry=registry,
        )
        self.tokens_expiring = Gauge(
            "nexus_tokens_expiring_24h",
            "Active integrations whose access token expires within 24 hours.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "nexus_delivery_queue_depth",
            "Deliveries waiting to be sent, by status (counted up to a cap: nexusctl.core.activity.QUEUE_COUNT_CAP).",
            ("status",),
            registry=registry,
        )
        self.queue_oldest = Gauge(
            "nexus_delivery_queue_oldest_due_age_seconds",
            "How long the longest-waiting due delivery that can be sent (its webhook active) has been due, by "
            "status (0: none due); those of a webhook switched off wait uncounted here (nexus_delivery_queue_depth "
            "counts them).",
            ("status",),
            registry=registry,
        )
        self.totals = _Totals()
        registry.register(self.totals)
        self.readers: list[Callable[[], Awaitable[None]]] = []
        self._read_at = -DB_READ_INTERVAL
        # The labelled children of the per-request metrics, by their labels: prometheus_client's labels() takes
        # a lock and validates the names on every call, half of what counting a request cost.
        self._children: dict[tuple, tuple] = {}

    def _pair(self, key: tuple, make: Callable[[], tuple]) -> tuple:
        pair = self._children.get(key)
        if pair is None:
            if len(self._children) >= CHILDREN_KEPT:  # label sets are bounded; this only bounds the shortcut
                self._children.clear()
            pair = self._children[key] = make()
        return pair

    # --- what the middleware and nexusctl.telemetry report ------------------------

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        count, latency = self._pair(
            ("http", method, route, status),
            lambda: (self.requests.labels(method, route, str(status)), self.latency.labels(method, route)),
        )
        count.inc()
        latency.observe(seconds)

    def refresh(self, provider: str, outcome: str) -> None:
        # The labelled child kept (as for requests): ``labels()`` cost the sweep ~10 µs a refresh.
        self._pair(("refresh", provider, outcome), lambda: (self.refreshes.labels(provider, outcome),))[0].inc()

    def sync_run(self, action: str, outcome: str) -> None:
        self.syncs.labels(action, outcome).inc()

    def provider_call(self, provider: str, status: str, seconds: float) -> None:
        count, latency = self._pair(
            ("provider", provider, status),
            lambda: (self.provider_calls.labels(provider, status), self.provider_latency.labels(provider)),
        )
        count.inc()
        latency.observe(seconds)

    def proxy_call(self, provider: str, method: str, status: int, seconds: float) -> None:
        count, latency = self._pair(
            ("proxy", provider, method, status),
            lambda: (self.proxy_calls.labels(provider, method, str(status)), self.proxy_latency.labels(provider)),
        )
        count.inc()
        latency.observe(seconds)

    def oauth_flow(self, provider: str, outcome: str) -> None:
        self.oauth.labels(provider, outcome).inc()

    def delivery_attempt(self, outcome: str) -> None:
        self.attempts.labels(outcome).inc()

    def emit_to_attempt(self, seconds: float) -> None:
        self.lag.observe(max(seconds, 0.0))

    # --- sources read at scrape time -------------------------------------------

    def counter_from(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A total kept by its owner (``name`` ends in _total), read at each scrape."""
        self.totals.reads[name] = (help_text, read)

    def gauge_from(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value kept by its owner, read at each scrape."""
        self.totals.gauges[name] = (help_text, read)

    def db_reader(self, read: Callable[[], Awaitable[None]]) -> None:
        """An async reader that sets gauges from the database before a scrape (at most once a second)."""
        self.readers.append(read)

    async def render_all(self) -> bytes:
        """The exposition; a failing reader is logged and its gauges keep their last values."""
        if time.monotonic() - self._read_at >= DB_READ_INTERVAL:
            self._read_at = time.monotonic()
            for read in self.readers:
                try:
                    await read()
                except Exception:  # noqa: BLE001 - stale gauges beat a /metrics that fails
                    log.warning("a metrics reader failed", exc_info=True)
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def observe_middleware(request: web.Request, handler):
    incoming = request.headers.get("X-Request-Id", "")
    # 128 random bits in hex, as uuid4().hex spelled them, for a seventh of its CPU (no UUID object built).
    request_id = incoming if _VALID_ID.match(incoming) else os.urandom(16).hex()
    request[REQUEST_ID] = request_id
    if not tracing.enabled():
        return await _observed(request, handler, request_id, None)
    # A span per request, named by the route template (never the raw path nor its query string), the child
    # of the caller's `traceparent` when it sent one.
    route = _route_label(request)
    with tracing.span(
        f"{request.method} {route}" if route != "unmatched" else request.method,
        {"http.request.method": request.method, "http.route": route, "nexus.request_id": request_id},
        parent=request.headers,
        kind=tracing.SERVER,
    ) as span:
        return await _observed(request, handler, request_id, span)


async def _observed(request: web.Request, handler, request_id: str, span):
    started = time.perf_counter()
    status, cut = 500, None
    try:
        response = await handler(request)
        status = response.status
        cut = getattr(response, "cut", None)  # a Streamed answer cut short (absent on the others)
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:  # redirects and the like pass through
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    except BaseException:
        # Raised after a streamed answer's status went out (the daemon stopping cuts it short): the caller got
        # that status and a truncated body, not the 500 an exception would otherwise be recorded as.
        sent = streamed(request)
        if sent is not None:
            status, cut = sent.status, sent.cut or "error"
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics = request.app[METRICS]
        metrics.observe(request.method, route, status, elapsed)
        if cut is not None:
            metrics.cut_short.labels(request.method, route, cut).inc()
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:  # OpenTelemetry's HTTP conventions: a server span fails on 5xx only
                tracing.mark_error(span, f"HTTP {status}")
            elif cut is not None:
                tracing.mark_error(span, f"HTTP {status}, body cut short: {CUT_CAUSES[cut]}")
        if log.isEnabledFor(logging.INFO):
            # Made and handled directly: log.info would first walk the stack for the caller's file and line
            # (findCaller: 3% of the read route's CPU, py-spy), which none of the daemon's formatters writes.
            args = (request.method, request.path if route != "unmatched" else "(unmatched)", status, elapsed * 1000)
            fields = {
                "action": "http_request",
                "method": request.method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "request_id": request_id,
            }
            if cut is None:
                log.handle(_access_record(args, fields))
            else:  # the status the caller got, and that its body was cut short: the line says both
                fields["error"] = error = f"body cut short: {CUT_CAUSES[cut]}"
                log.handle(_access_record((*args, error), fields, _CUT_LINE))


_ACCESS_LINE = "%s %s %s %.1fms"
_CUT_LINE = _ACCESS_LINE + " (%s)"


def _access_record(args: tuple, fields: dict, line: str = _ACCESS_LINE) -> logging.LogRecord:
    """The access line's record, as ``log.makeRecord`` makes it, for a third of its CPU (nexusctl.logrecords)."""
    return logrecords.record(log, logging.INFO, line, args, fields, pathname=__file__, func=None)


async def metrics_handler(request: web.Request) -> web.Response:
    # text/plain is the exposition format 0.0.4 (prometheus_client.CONTENT_TYPE_LATEST adds version=0.0.4).
    return web.Response(
        body=await request.app[METRICS].render_all(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line with the record's structured extras."""

    FIELDS = ("action", "method", "route", "status", "duration_ms", "error", "request_id", "trace_id", "span_id")
    converter = time.gmtime  # timestamps in UTC
    # What orjson refuses (a lone surrogate in a logged path, an integer beyond 64 bits) goes through the
    # standard library's encoder, built once: json.dumps with a non-default option builds one per call.
    _fallback = json.JSONEncoder(ensure_ascii=False).encode

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second  # read once: another thread's line may replace it meanwhile
        if second != cached[0]:  # strftime once a second, not once a line
            cached = self._second = (second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S"))
        entry = {
            "time": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extras = record.__dict__
        entry.update({k: extras[k] for k in self.FIELDS if k in extras})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encode(entry)

    def _encode(self, entry: dict) -> str:
        # orjson: a tenth of the standard library's time for a request's line (5 of the 13 µs a line cost).
        # Its text is compact (no space after `,` and `:`) and UTF-8 as before (ensure_ascii=False).
        try:
            return orjson.dumps(entry).decode()
        except orjson.JSONEncodeError:
            return self._fallback(entry)
