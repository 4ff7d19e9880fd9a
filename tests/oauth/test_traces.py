"""OpenTelemetry traces from a real daemon to a real OTLP/HTTP receiver, on SQLite and PostgreSQL.

The receiver is a small aiohttp server taking ``POST /v1/traces`` and decoding the protobuf with
opentelemetry-proto, as a collector does: the daemon runs with the ``otel`` extra, only
OTEL_EXPORTER_OTLP_ENDPOINT pointing at it. A caller's ``traceparent`` on ``POST /integrations/:id/events``
starts one trace that runs through the outbox to the delivery attempt's span; the connect flow, a
refresh, a sync and the scheduled jobs leave their spans too, and no attribute anywhere holds a token, a
secret, a query string or a receiver's path.
"""

from __future__ import annotations

import gzip
import os
import secrets
import threading

import pytest
from aiohttp import web
from emulators.testkit import CallbackSink
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from support import clock
from support.receivers import ThreadedApp
from support.stack import ENCRYPTION_KEY
from support.tokens import JWT_SECRET
from support.waiting import wait_for
from test_refresh_flows import connected


class OtlpReceiver(ThreadedApp):
    """``POST /v1/traces`` (OTLP/HTTP, protobuf): every span received, with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        super().__init__(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        return app

    async def _export(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf", request.content_type
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource_spans in export.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "status": span.status.code,  # 0 unset, 1 ok, 2 error
                                "attributes": _attributes(span.attributes),
                                "events": [_attributes(event.attributes) for event in span.events],
                                "links": [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                                "resource": resource,
                            }
                        )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    def named(self, name: str, **attributes) -> list[dict]:
        with self.lock:
            return [
                s
                for s in self.spans
                if s["name"] == name and all(s["attributes"].get(k) == v for k, v in attributes.items())
            ]


def _attributes(pairs) -> dict:
    """An OTLP KeyValue list as a dict of plain values."""
    found = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind) if kind else None
    return found


@pytest.fixture(scope="module")
def receiver():
    served = OtlpReceiver()
    yield served
    served.stop()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, receiver, emulators, tmp_path_factory, pg_template, stack_launcher):  # noqa: F811
    env = {
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds: spans leave at once, the test need not wait long
    }
    with stack_launcher(request.param, tmp_path_factory.mktemp("traces"), emulators, pg_template, extra_env=env) as s:
        yield s


def test_one_trace_runs_from_the_emit_to_the_delivery_attempt(stack, receiver, fresh_emulators):
    user, integration = connected(stack, "SLACK")  # the browser flow: its callback's query carries code and state
    path_token = secrets.token_hex(12)
    with CallbackSink(200) as sink:
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": f"{sink.url}/{path_token}", "events": ["post.*"]},
        )
        assert hook.status == 201, hook.text
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        query_secret = secrets.token_hex(10)
        sent = stack.api(
            "POST",
            f"/integrations/{integration}/events?probe={query_secret}",
            user=user,
            body={"type": "post.created", "data": {"n": 1}},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert sent.status == 202, sent.text
        wait_for(lambda: sink.received, 20, "the delivery")
        attempts = wait_for(
            lambda: [s for s in receiver.named("webhook delivery attempt") if s["trace_id"] == trace_id],
            20,
            "the attempt's span exported",
        )

    # The request's span: the caller's child, named by the route template (no id, no query string).
    (request_span,) = [s for s in receiver.spans if s["trace_id"] == trace_id and s["kind"] == 2]  # SERVER
    assert request_span["name"] == "POST /integrations/{id}/events"
    assert request_span["parent_id"] == caller_span
    assert request_span["attributes"]["http.route"] == "/integrations/{id}/events"
    assert request_span["attributes"]["http.response.status_code"] == 202
    # The attempt's span: the request's child through the outbox row, naming the receiver by its host only.
    (attempt,) = attempts
    assert attempt["parent_id"] == request_span["span_id"]
    assert attempt["attributes"]["nexus.event.type"] == "post.created"
    assert attempt["attributes"]["nexus.delivery.outcome"] == "delivered"
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert attempt["attributes"]["server.address"] == "127.0.0.1"
    assert attempt["resource"]["service.name"] == "nexusctl"  # OTEL_SERVICE_NAME's default
    # The trace id is in the request's log line.
    wait_for(lambda: f"trace_id={trace_id}" in stack.logs(), 5, "the trace id logged")

    # A refresh (the route, then the provider's token endpoint), a sync run and the scheduled jobs.
    assert stack.api("POST", f"/integrations/{integration}/refresh", user=user).status == 200
    stack.emulators["SLACK"].set_records("channels", [{"id": f"C{i:08d}", "name": f"c{i}"} for i in range(3)])
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_channels"})
    assert started.status == 202, started.text
    (refresh,) = wait_for(
        lambda: receiver.named("token refresh", **{"nexus.integration.id": integration}), 20, "the refresh span"
    )
    assert any(s["parent_id"] == refresh["span_id"] and s["name"] == "SLACK POST" for s in receiver.spans)
    log_id = started.json()["data"]["id"]  # this run's (the receiver keeps the other database's spans too)
    (sync,) = wait_for(
        lambda: receiver.named("sync run", **{"nexus.sync.outcome": "completed", "nexus.sync_log.id": log_id}),
        30,
        "the sync span",
    )
    assert sync["attributes"]["nexus.sync.action"] == "fetch_channels"
    assert any(s["parent_id"] == sync["span_id"] and s["name"].startswith("SLACK ") for s in receiver.spans)
    wait_for(lambda: receiver.named("job token-refresh"), 20, "a scheduled job's span")
    # A request answered 5xx (the provider's 503 passed through the proxy) is a failed span; a 2xx is not.
    stack.emulators["SLACK"].fail_next("whoami", 503)
    proxied_trace = secrets.token_hex(16)
    proxied = stack.api(
        "POST",
        f"/integrations/{integration}/proxy/auth.test",
        user=user,
        headers={"traceparent": f"00-{proxied_trace}-{secrets.token_hex(8)}-01"},
    )
    assert proxied.status == 503, proxied.text
    (failed,) = wait_for(
        lambda: [s for s in receiver.spans if s["trace_id"] == proxied_trace and s["kind"] == 2],
        20,
        "the proxied request's span",
    )
    assert failed["attributes"]["http.response.status_code"] == 503 and failed["status"] == 2  # ERROR
    assert failed["name"].startswith("POST /integrations/{id}/proxy")
    assert request_span["status"] == 0
    callbacks = receiver.named("GET /integrations/oauth/callback/{provider}")
    assert callbacks and all(
        s["attributes"]["http.route"] == "/integrations/oauth/callback/{provider}" for s in callbacks
    )

    # No attribute anywhere (spans, their events, the resource) holds a secret, a token or a query string.
    emulator = stack.emulators["SLACK"]
    forbidden = {
        path_token,
        query_secret,
        "probe=",
        "code=",
        "state=",
        "eyJ",  # any JWT: the callers' bearer tokens, an id_token
        "Bearer",
        JWT_SECRET,
        ENCRYPTION_KEY,
        *emulator.tokens,  # every access and refresh token the provider issued
        *(v for k, v in stack.env.items() if k.endswith(("_SECRET", "_KEY")) and len(v) >= 8),  # client secrets
    }
    if hook.json()["data"].get("secret"):
        forbidden.add(hook.json()["data"]["secret"])
    values = [
        str(v)
        for s in receiver.spans
        for attributes in [s["attributes"], s["resource"], *s["events"]]
        for v in attributes.values()
    ]
    assert len(values) > 50
    leaks = [(secret, v) for secret in forbidden for v in values if secret and secret in v]
    assert leaks == []


def test_swept_refreshes_stored_together_keep_their_own_traces(stack, receiver, fresh_emulators):
    """The sweep stores refreshes in batches: each integration.refreshed event still carries its own refresh's
    span (its deliveries' attempts join that trace), not the span of the refresh the batch was stored under."""
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(3)]
    clock.expire_in(stack, 120, ids[0])  # time passes: all three expire within the sweep's window

    def spans():
        found = [receiver.named("token refresh", **{"nexus.integration.id": i}) for i in ids]
        return found if all(found) else None

    for integration, (span,) in zip(ids, wait_for(spans, 30, "the swept refreshes' spans")):
        assert span["attributes"]["nexus.refresh.trigger"] == "sweep"
        rows = stack.sql(
            "SELECT trace_parent FROM outbox_events WHERE integration_id = %s AND type = 'integration.refreshed'",
            integration,
        )
        ((trace_parent,),) = rows
        trace_id, span_id = trace_parent.split("-")[1:3]
        assert trace_id == span["trace_id"]  # its own refresh's trace: the refresh's span or a child of it

        def under_refresh(span_id=span_id, refresh=span):
            return span_id == refresh["span_id"] or any(
                s["span_id"] == span_id and s["parent_id"] == refresh["span_id"] for s in receiver.spans
            )

        wait_for(under_refresh, 10, "the span the event was written under: its refresh's, or a child of it")


def test_without_the_endpoint_nothing_is_exported_and_the_extra_is_not_loaded():
    """The CLI never imports opentelemetry (tests/test_startup.py lists it); the daemon's setup answers None."""
    from nexusctl import tracing
    from nexusctl.daemon import traces

    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ
    assert traces.setup() is None and not tracing.enabled()
    with tracing.span("anything", {"a": 1}) as span:  # the shared no-op
        span.set_attribute("b", 2)
    assert tracing.current_traceparent() is None and tracing.log_ids() is None
