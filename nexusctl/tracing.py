"""Traces (OpenTelemetry), optional: spans for requests, provider calls, deliveries, refreshes, syncs and jobs.

The kernel holds no tracing library. ``nexusctl daemon`` installs a tracer (``nexusctl.daemon.traces``)
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the ``otel`` extra is installed; otherwise nothing is
installed and every call here is one ``None`` check answering a shared no-op (the CLI never imports
opentelemetry: start-up time).

Attributes are chosen by the callers from ids, names, hosts, methods, route templates and status
codes: never a token, a secret, a URL's path or query string (a receiver's path may carry a token, an
OAuth callback's query carries the code).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Mapping, Protocol

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = "server", "client", "producer", "consumer", "internal"


class Span(Protocol):
    def set_attribute(self, key: str, value) -> None: ...


class Tracer(Protocol):
    def span(
        self, name: str, attributes: dict | None, parent: str | Mapping | None, kind: str
    ) -> AbstractContextManager: ...
    def traceparent(self) -> str | None: ...
    def log_ids(self) -> tuple[str, str] | None: ...
    def mark_error(self, span, description: str) -> None: ...


class _NoSpan:
    __slots__ = ()

    def set_attribute(self, key: str, value) -> None:
        pass


_NO_SPAN = _NoSpan()
_NOOP = nullcontext(_NO_SPAN)  # stateless: one shared instance serves every caller
_tracer: Tracer | None = None


def install(tracer: Tracer | None) -> None:
    global _tracer
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: dict | None = None, *, parent: str | Mapping | None = None, kind: str = INTERNAL
) -> AbstractContextManager:
    """A span around the ``with`` block, the current one's child, or ``parent``'s: a W3C ``traceparent``
    value, or incoming headers (a mapping read by the configured propagators). ``as`` gives the span
    (``set_attribute``); an exception leaving the block is recorded on it."""
    if _tracer is None:
        return _NOOP
    return _tracer.span(name, attributes, parent, kind)


def current_traceparent() -> str | None:
    """The current span's context as a W3C ``traceparent`` value (stored with an outbox row), or None."""
    if _tracer is None:
        return None
    return _tracer.traceparent()


def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None without one."""
    if _tracer is None:
        return None
    return _tracer.log_ids()


def mark_error(span, description: str) -> None:
    """The span's operation failed though no exception left it (a request answered 5xx): its status is ERROR."""
    if _tracer is not None and span is not _NO_SPAN:
        _tracer.mark_error(span, description)
