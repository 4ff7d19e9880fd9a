"""OpenTelemetry traces for the daemon: on when OTEL_EXPORTER_OTLP_ENDPOINT is set and the ``otel`` extra
(opentelemetry-sdk and its OTLP/HTTP exporter) is installed.

The SDK reads the standard variables itself: OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, OTEL_PROPAGATORS
(incoming headers; the outbox stores W3C ``traceparent``), OTEL_SDK_DISABLED. OTEL_SERVICE_NAME defaults
to ``nexusctl``. Spans leave in batches from the SDK's own thread; the daemon flushes them as it stops.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Callable

from nexusctl import tracing

log = logging.getLogger(__name__)

W3C_KEY = "traceparent"


def setup() -> Callable[[], None] | None:
    """Install the tracer if tracing is asked for; the function that flushes and stops it, or None."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    try:
        # the otel optional extra, imported only when traces are asked for
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): no traces; "
            "pip install 'nexusctl[otel]'",
            exc.name,
        )
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "nexusctl"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracing.install(OtelTracer(provider.get_tracer("nexusctl")))
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIds())

    def shutdown() -> None:
        tracing.install(None)
        provider.shutdown()  # exports what is still queued

    del trace  # imported to fail early when the API is missing
    return shutdown


class OtelTracer:
    """nexusctl.tracing's Tracer over an SDK tracer."""

    def __init__(self, tracer) -> None:
        # the otel optional extra: setup() has checked it is installed
        from opentelemetry import propagate, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._trace = trace
        self._propagate = propagate
        self._w3c = TraceContextTextMapPropagator()
        self._kinds = {
            tracing.SERVER: trace.SpanKind.SERVER,
            tracing.CLIENT: trace.SpanKind.CLIENT,
            tracing.PRODUCER: trace.SpanKind.PRODUCER,
            tracing.CONSUMER: trace.SpanKind.CONSUMER,
            tracing.INTERNAL: trace.SpanKind.INTERNAL,
        }

    @contextmanager
    def span(self, name, attributes, parent, kind):
        if parent is None:
            context = None
        elif isinstance(parent, str):  # stored with an outbox row: always W3C
            context = self._w3c.extract({W3C_KEY: parent})
        else:  # incoming headers: the configured propagators (OTEL_PROPAGATORS; W3C by default)
            context = self._propagate.extract(parent)
        # A request's span carries its status code; what passes through it (a redirect) is no failure.
        answered = kind == tracing.SERVER
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=self._kinds[kind],
            attributes=attributes,
            record_exception=not answered,
            set_status_on_exception=not answered,
        ) as span:
            yield span

    def mark_error(self, span, description: str) -> None:
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description))

    def traceparent(self) -> str | None:
        carrier: dict = {}
        self._w3c.inject(carrier)
        return carrier.get(W3C_KEY)

    def log_ids(self) -> tuple[str, str] | None:
        context = self._trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format(context.trace_id, "032x"), format(context.span_id, "016x")


class TraceIds(logging.Filter):
    """Puts the current trace and span ids on each record (``trace_id``, ``span_id``) while tracing is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = tracing.log_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True
