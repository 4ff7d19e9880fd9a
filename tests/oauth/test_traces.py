"""OpenTelemetry traces from a real daemon to a real OTLP/HTTP receiver, on SQLite and PostgreSQL.

The receiver is a small aiohttp server taking ``POST /v1/traces`` and decoding the protobuf with
opentelemetry-proto, as a collector does: the daemon runs with the ``otel`` extra, only
OTEL_EXPORTER_OTLP_ENDPOINT pointing at it. A caller's ``traceparent`` on ``POST /integrations/:id/events``
starts one trace that runs through the outbox to the delivery attempt's span, and (with Redis) through the
stream entry's ``traceparent`` field to the consumer's span; the connect flow, a refresh, a sync and the
scheduled jobs leave their spans too, and no attribute anywhere holds a token, a secret, a query string or a
receiver's path.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import secrets
import threading
import uuid

import pytest
from aiohttp import web
from emulators.testkit import CallbackSink
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from support import clock
from support.receivers import ThreadedApp
from support.stack import ENCRYPTION_KEY, shared_redis_url
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


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def traced_bus(request, receiver, emulators, tmp_path_factory, pg_template, stack_launcher):  # noqa: F811
    """A traced daemon with Redis: its relay publishes to a stream of its own, which its consumer group reads."""
    stream = f"nexus.traces.{secrets.token_hex(4)}"
    env = {
        "REDIS_URL": shared_redis_url(),
        "EVENTS_STREAM": stream,
        "EVENTS_CONSUME_STREAMS": stream,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with stack_launcher(request.param, tmp_path_factory.mktemp("traced-bus"), emulators, pg_template, env) as s:
        import redis

        client = redis.Redis.from_url(s.env["REDIS_URL"], decode_responses=True)
        s.extra.update(stream=stream, redis=client)
        # The group is created at the stream's end when the consumer starts: entries written before it are not read.
        wait_for(lambda: _group(s) is not None, 20, "the consumer group")
        yield s
        client.delete(stream)


def _group(stack) -> dict | None:
    client, stream = stack.extra["redis"], stack.extra["stream"]
    if not client.exists(stream):
        return None
    return next((g for g in client.xinfo_groups(stream) if g["name"] == "nexusctl"), None)


def _consumed_up_to(stack, entry: str) -> bool:
    """The group has read ``entry`` and nothing is pending: everything up to it was handled and acknowledged."""
    group = _group(stack)
    read = tuple(map(int, group["last-delivered-id"].split("-")))
    return read >= tuple(map(int, entry.split("-"))) and group["pending"] == 0


def _processed(receiver, stack, **attributes) -> list[dict]:
    return receiver.named(f"process {stack.extra['stream']}", **attributes)


def test_the_stream_entry_carries_the_emitters_trace_to_the_consumers_span(traced_bus, receiver, fresh_emulators):
    stack, stream = traced_bus, traced_bus.extra["stream"]
    user, integration = connected(stack, "SLACK")
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    marker = secrets.token_hex(6)
    sent = stack.api(
        "POST",
        f"/integrations/{integration}/events",
        user=user,
        body={"type": "post.created", "data": {"marker": marker}},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert sent.status == 202, sent.text

    def published():
        client = stack.extra["redis"]
        found = [(e, f) for e, f in client.xrange(stream) if json.loads(f["payload"]).get("marker") == marker]
        return found or None

    ((entry, fields),) = wait_for(published, 20, "the relay to publish the event")
    wait_for(lambda: _consumed_up_to(stack, entry), 20, "the consumer to take the entry")
    (consumed,) = wait_for(lambda: _processed(receiver, stack, **{"nexus.event.id": fields["id"]}), 20, "its span")

    # The entry: the four fields it always had, and the emitting request's context in W3C form.
    assert set(fields) == {"id", "type", "occurredAt", "payload", "traceparent"}
    version, entry_trace, entry_span, flags = fields["traceparent"].split("-")
    assert (version, entry_trace, flags) == ("00", trace_id, "01")
    # The chain: caller -> the request's span -> the consumer's span, one trace.
    (request_span,) = [s for s in receiver.spans if s["trace_id"] == trace_id and s["kind"] == 2]  # SERVER
    assert request_span["name"] == "POST /integrations/{id}/events"
    assert request_span["parent_id"] == caller_span
    assert entry_span == request_span["span_id"]
    assert consumed["trace_id"] == trace_id
    assert consumed["parent_id"] == request_span["span_id"]
    assert consumed["kind"] == 5  # CONSUMER
    assert consumed["status"] == 0
    assert consumed["attributes"] == {
        "messaging.system": "redis",
        "messaging.operation.type": "process",
        "messaging.destination.name": stream,
        "messaging.consumer.group.name": "nexusctl",
        "messaging.message.id": entry,
        "nexus.event.id": fields["id"],
        "nexus.event.type": "post.created",
        "nexus.event.outcome": "ignored",  # this service's own event: acknowledged, not acted on
    }
    assert marker not in json.dumps(consumed)  # the payload stays off the span


def test_a_malformed_or_absent_traceparent_starts_a_trace_of_its_own(traced_bus, receiver, fresh_emulators):
    """Another service's entry whose traceparent is absent or not W3C is handled as ever, under a root span."""
    stack, stream = traced_bus, traced_bus.extra["stream"]
    zeros = f"00-{'0' * 32}-{secrets.token_hex(8)}-01"  # W3C's shape, but an all-zero trace id is invalid
    variants = {"garbage": "not-a-trace", "zeros": zeros, "cut": f"00-{secrets.token_hex(16)}", "absent": None}
    ids, last = {}, None
    for name, traceparent in variants.items():
        ids[name] = f"evt-{uuid.uuid4()}"
        entry = {
            "id": ids[name],
            "type": "user.deleted",
            "occurredAt": dt.datetime.now(dt.timezone.utc).isoformat(),
            "payload": json.dumps({"userId": str(uuid.uuid4())}),
        }
        if traceparent is not None:
            entry["traceparent"] = traceparent
        last = stack.extra["redis"].xadd(stream, entry)
    wait_for(lambda: _consumed_up_to(stack, last), 20, "the consumer to handle the entries")

    for name, event_id in ids.items():
        assert stack.sql("SELECT COUNT(*) FROM consumed_events WHERE key = %s", f"{stream}:{event_id}")[0][0] == 1, name
        (span,) = wait_for(
            lambda event_id=event_id: _processed(receiver, stack, **{"nexus.event.id": event_id}), 20, name
        )
        assert span["parent_id"] == "", (name, span)  # a root span
        assert span["trace_id"] != "0" * 32 and span["status"] == 0, (name, span)
        assert span["attributes"]["nexus.event.outcome"] == "handled", (name, span)
    assert "Traceback" not in stack.logs()


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
    span (its deliveries' attempts join that trace), not the span of the refresh the batch was stored under.
    More integrations than the sweep has places (REFRESH_SWEEP_CONCURRENCY, 5): a refresh started as another's
    answer frees its place is no child of that one's span either: all are children of the pass's."""
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(7)]
    clock.expire_in(stack, 120, ids[0])  # time passes: all of them expire within the sweep's window

    def spans():
        found = [receiver.named("token refresh", **{"nexus.integration.id": i}) for i in ids]
        return found if all(found) else None

    swept = [span for (span,) in wait_for(spans, 30, "the swept refreshes' spans")]
    assert len({span["parent_id"] for span in swept}) == 1  # the pass's (the job's): no refresh is under another
    assert not {span["parent_id"] for span in swept} & {span["span_id"] for span in swept}
    for integration, span in zip(ids, swept):
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
