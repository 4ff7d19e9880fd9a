"""The event bus with real daemons and a real Redis: the relay, the consumer group, a restart, a kill.

Each database kind gets its own Redis server (a private ``redis-server`` with an
append-only file, so it can be stopped and started again like a production
one) and a daemon with REDIS_URL pointing at it. Events are emitted through the
API, read back from the stream with XRANGE; platform events are written to the
stream with XADD, as another service would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import uuid
from pathlib import Path

import pytest
from support.callers import tenant_of
from support.servers import PrivateRedis
from support.waiting import wait_for

STREAM = "nexus.events"
GROUP = "nexusctl"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bus(request, emulators, tmp_path_factory, pg_template, private_redis, stack_launcher):
    if private_redis.process.poll() is not None:
        private_redis.start()
    private_redis.client().flushall()
    env = {"REDIS_URL": private_redis.url, "EVENTS_CLAIM_IDLE": "3s", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with stack_launcher(request.param, tmp_path_factory.mktemp("bus"), emulators, pg_template, env) as stack:
        stack.extra["redis"] = private_redis
        yield stack


def _connected(stack, provider: str, user=None) -> str:
    user = user or uuid.uuid4()
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return result["integrationId"]


def _emit(stack, integration: str, user, n: int) -> None:
    response = stack.api(
        "POST", f"/integrations/{integration}/events", user=user, body={"type": "post.created", "data": {"n": n}}
    )
    assert response.status == 202, response.text


def _owner(stack, integration: str) -> str:
    return stack.api("GET", f"/integrations/{integration}", roles=("admin",), user=uuid.uuid4()).json()["data"][
        "userId"
    ]


def _unpublished(stack) -> int:
    return stack.sql("SELECT COUNT(*) FROM outbox_events WHERE published_at IS NULL")[0][0]


def _stream(stack) -> list[tuple[str, dict]]:
    return stack.extra["redis"].client().xrange(STREAM)


def _numbers_in_stream_order(stack, integration: str) -> list[int]:
    """The ``n`` of each post.created of ``integration``, first occurrence of each event id only."""
    seen, numbers = set(), []
    for _entry, fields in _stream(stack):
        payload = json.loads(fields["payload"])
        if fields["type"] == "post.created" and payload["integrationId"] == integration and fields["id"] not in seen:
            seen.add(fields["id"])
            numbers.append(payload["n"])
    return numbers


def _xadd(stack, event_type: str, payload, event_id: str | None = None) -> tuple[str, str]:
    event_id = event_id or f"evt-{uuid.uuid4()}"
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    entry = (
        stack.extra["redis"]
        .client()
        .xadd(
            STREAM,
            {
                "id": event_id,
                "type": event_type,
                "occurredAt": dt.datetime.now(dt.timezone.utc).isoformat(),
                "payload": raw,
            },
        )
    )
    return event_id, entry


def _consumed_up_to(stack, entry: str) -> bool:
    """The group has read ``entry`` and has nothing pending: everything up to it is handled and acked."""
    client = stack.extra["redis"].client()
    group = next(g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP)
    last = tuple(map(int, group["last-delivered-id"].split("-")))
    return last >= tuple(map(int, entry.split("-"))) and group["pending"] == 0


def _count(stack, query: str, *params) -> int:
    return stack.sql(query, *params)[0][0]


# --- the relay ------------------------------------------------------------------------------


def test_events_reach_the_stream_in_order_and_are_marked_published(bus, fresh_emulators):
    first, second = _connected(bus, "DISCORD"), _connected(bus, "SLACK")
    owners = {first: _owner(bus, first), second: _owner(bus, second)}
    for n in range(25):
        for integration in (first, second):
            _emit(bus, integration, owners[integration], n)
    wait_for(lambda: _unpublished(bus) == 0, 20, "the relay to publish the outbox")

    assert _numbers_in_stream_order(bus, first) == list(range(25))
    assert _numbers_in_stream_order(bus, second) == list(range(25))
    entries = [fields for _, fields in _stream(bus)]
    assert all(set(fields) == {"id", "type", "occurredAt", "payload"} for fields in entries)
    connected = [json.loads(f["payload"]) for f in entries if f["type"] == "integration.connected"]
    assert {c["integrationId"] for c in connected} >= {first, second}
    assert not any("token" in key.lower() for c in connected for key in c)  # never a secret on the bus


def test_the_relay_survives_a_redis_restart_without_losing_or_reordering(bus, fresh_emulators):
    integration = _connected(bus, "DISCORD")
    owner = _owner(bus, integration)
    for n in range(10):
        _emit(bus, integration, owner, n)
    wait_for(lambda: _unpublished(bus) == 0, 20, "the relay to publish the first ten")

    bus.extra["redis"].stop()
    for n in range(10, 40):  # the API keeps accepting events: they wait in the outbox
        _emit(bus, integration, owner, n)
    assert _unpublished(bus) >= 30
    # The relay has tried against the stopped server and failed (it says so once): it must not drop anything.
    wait_for(lambda: "event relay: cannot publish" in bus.logs(), 20, "the relay to fail against the stopped Redis")
    assert _unpublished(bus) >= 30
    bus.extra["redis"].start()

    wait_for(lambda: _unpublished(bus) == 0, 30, "the relay to publish the backlog after the restart")
    assert _numbers_in_stream_order(bus, integration) == list(range(40))
    # The relay says so once its pass has committed the backlog as published: the line follows the commit.
    wait_for(lambda: "event relay: publishing again" in bus.logs(), 15, "the relay to say it publishes again")
    assert "event relay: cannot publish" in bus.logs()
    # Redis-backed OAuth states work at once too: no pooled socket from before the restart is reused.
    for _ in range(5):
        assert bus.initiate("DISCORD", uuid.uuid4()).status == 200


def test_with_two_daemons_each_event_is_published_once_in_order(bus, fresh_emulators):
    """On PostgreSQL a second daemon shares the database: the relay lease lets one publish at a time."""
    postgres = not bus.database_url.startswith("sqlite")
    integration = _connected(bus, "DISCORD")
    owner = _owner(bus, integration)
    bases = [bus.base]
    other = None
    if postgres:
        base, other = bus.another_daemon()
        bases.append(base)
    try:
        for n in range(40):  # through both daemons' APIs, alternately
            response = bus.api(
                "POST",
                f"/integrations/{integration}/events",
                user=owner,
                base=bases[n % len(bases)],
                body={"type": "post.created", "data": {"n": n}},
            )
            assert response.status == 202, response.text
        wait_for(lambda: _unpublished(bus) == 0, 20, "the relay to publish")
    finally:
        if other is not None:
            other.terminate()
            other.wait(20)
    ids = [f["id"] for _, f in _stream(bus) if json.loads(f["payload"]).get("integrationId") == integration]
    assert len(ids) == len(set(ids))  # no failure happened, so nothing was published twice
    assert _numbers_in_stream_order(bus, integration) == list(range(40))


# --- the consumer group ---------------------------------------------------------------------


def test_user_deleted_on_the_stream_removes_the_users_integrations(bus, fresh_emulators):
    user, bystander = uuid.uuid4(), uuid.uuid4()
    doomed = [_connected(bus, "DISCORD", user), _connected(bus, "SLACK", user)]
    kept = _connected(bus, "DISCORD", bystander)
    hook = bus.api(
        "POST",
        "/integrations/webhooks",
        user=user,
        body={"integrationId": doomed[0], "url": "http://127.0.0.1:9/hook", "events": ["*"]},
    )
    assert hook.status == 201, hook.text
    _emit(bus, doomed[0], user, 1)  # a pending delivery to an endpoint that refuses
    revokes = {p: bus.emulators[p].calls["revoke"] for p in ("DISCORD", "SLACK")}

    event_id, entry = _xadd(bus, "user.deleted", {"userId": str(user)})
    wait_for(lambda: _consumed_up_to(bus, entry), 20, "the consumer to handle user.deleted")

    assert _count(bus, "SELECT COUNT(*) FROM integrations WHERE user_id = %s", user) == 0
    assert _count(bus, "SELECT COUNT(*) FROM integrations WHERE id = %s", kept) == 1
    assert _count(bus, "SELECT COUNT(*) FROM webhooks WHERE integration_id = %s", doomed[0]) == 0
    assert _count(bus, "SELECT COUNT(*) FROM webhook_deliveries") == 0
    for integration in doomed:
        assert (
            _count(
                bus,
                "SELECT COUNT(*) FROM outbox_events WHERE type = 'integration.disconnected' AND integration_id = %s",
                integration,
            )
            == 1
        )
    assert {p: bus.emulators[p].calls["revoke"] - n for p, n in revokes.items()} == {"DISCORD": 1, "SLACK": 1}

    # The same event again (a redelivery): nothing more happens, and it is acknowledged.
    _, again = _xadd(bus, "user.deleted", {"userId": str(user)}, event_id)
    wait_for(lambda: _consumed_up_to(bus, again), 20, "the consumer to acknowledge the duplicate")
    assert _count(bus, "SELECT COUNT(*) FROM consumed_events WHERE key = %s", f"{STREAM}:{event_id}") == 1
    assert (
        _count(bus, "SELECT COUNT(*) FROM outbox_events WHERE type = 'integration.disconnected' AND user_id = %s", user)
        == 2
    )
    wait_for(lambda: _unpublished(bus) == 0, 20, "the disconnects to reach the stream")
    published = [
        json.loads(f["payload"])["integrationId"] for _, f in _stream(bus) if f["type"] == "integration.disconnected"
    ]
    assert set(doomed) <= set(published)


def test_content_published_queues_a_publish_run_per_capable_integration(bus, fresh_emulators):
    user = uuid.uuid4()
    discord, hubspot = _connected(bus, "DISCORD", user), _connected(bus, "HUBSPOT", user)
    content = {
        "userId": str(user),
        "contentId": "post-77",
        "title": "Launch",
        "url": "https://nexus.test/p/77",
        "media": [{"type": "image", "url": "https://cdn.nexus.test/77.jpg"}],
    }
    event_id, entry = _xadd(bus, "content.published", content)
    wait_for(lambda: _consumed_up_to(bus, entry), 20, "the consumer to handle content.published")
    _, again = _xadd(bus, "content.published", content, event_id)
    wait_for(lambda: _consumed_up_to(bus, again), 20, "the consumer to acknowledge the duplicate")

    rows = bus.sql(
        "SELECT integration_id, action, status, resource_id, metadata FROM integration_sync_logs "
        "WHERE resource_id = 'post-77'"
    )
    assert len(rows) == 1  # Discord can post; HubSpot cannot; the duplicate added nothing
    integration_id, action, status, resource_id, metadata = rows[0]
    assert str(uuid.UUID(str(integration_id))) == discord and hubspot != discord
    # The daemon's sync runner takes the publish run at once (it fails here: no DISCORD_BOT_TOKEN).
    assert action == "publish" and status in ("PENDING", "IN_PROGRESS", "FAILED")
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert metadata["content"]["title"] == "Launch" and metadata["content"]["media"] == content["media"]


def test_an_entry_that_can_never_be_handled_is_acknowledged_and_the_consumer_goes_on(bus, fresh_emulators):
    _, broken = _xadd(bus, "user.deleted", "{not json")
    _, no_user = _xadd(bus, "user.deleted", {"userId": "nobody"})
    _, foreign = _xadd(bus, "post.liked", {"anything": 1})  # not ours: acknowledged untouched
    user = uuid.uuid4()
    integration = _connected(bus, "DISCORD", user)
    _, good = _xadd(bus, "user.deleted", {"userId": str(user)})
    wait_for(lambda: _consumed_up_to(bus, good), 20, "the consumer to get past the broken entries")
    assert _count(bus, "SELECT COUNT(*) FROM integrations WHERE id = %s", integration) == 0
    logs = bus.logs()
    assert f"{STREAM} {broken} (user.deleted) cannot be handled: payload is not JSON" in logs
    assert f"{no_user} (user.deleted) cannot be handled: payload.userId must be a UUID" in logs
    assert foreign not in logs


def test_ingest_route_runs_the_same_handlers_for_a_service(bus, fresh_emulators):
    user = uuid.uuid4()
    integration = _connected(bus, "SLACK", user)
    body = {"type": "user.deleted", "data": {"userId": str(user)}, "id": "ingest-1"}
    assert bus.api("POST", "/integrations/events/ingest", user=user, body=body).status == 403  # a user cannot
    first = bus.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)
    assert first.status == 200, first.text
    assert first.json()["data"]["integrationIds"] == [integration] and not first.json()["data"].get("duplicate")
    again = bus.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)
    assert again.status == 200 and again.json()["data"]["duplicate"] is True
    for bad, where in [
        ({"type": "user.created", "data": {}}, "type"),
        ({"type": "user.deleted", "data": []}, "data"),
        ({"type": "user.deleted", "data": {"userId": 5}}, "userId"),
        ({"type": "user.deleted", "data": {}, "extra": 1}, "extra"),
    ]:
        response = bus.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=bad)
        assert response.status == 400, (bad, response.text)
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and where in json.dumps(error), error


def test_a_consumer_killed_mid_event_leaves_it_to_another(bus, fresh_emulators):
    """Last in the module: it kills the stack's daemon."""
    user = uuid.uuid4()
    doomed = [_connected(bus, "DISCORD", user), _connected(bus, "SLACK", user)]
    emulator = bus.emulators["DISCORD"]
    emulator.hold("revoke")  # the first daemon hangs in the revoke call, mid-event, until it is killed
    try:
        before = emulator.calls["revoke"]
        _, entry = _xadd(bus, "user.deleted", {"userId": str(user)})
        wait_for(lambda: emulator.calls["revoke"] > before, 20, "the daemon to start on the event")
        pending = bus.extra["redis"].client().xpending_range(STREAM, GROUP, min=entry, max=entry, count=1)
        assert pending and pending[0]["consumer"].endswith(f":{bus.process.pid}")
        os.kill(bus.process.pid, signal.SIGKILL)
        bus.process.wait(10)
        emulator.release("revoke")
        # Whatever was finished before the kill stays finished (the Slack one, if it came first); the
        # Discord integration, whose revoke hung, is still there.
        assert _count(bus, "SELECT COUNT(*) FROM integrations WHERE id = %s", doomed[0]) == 1

        base, other = bus.another_daemon()
        wait_for(lambda: _consumed_up_to(bus, entry), 30, "another daemon to claim and finish the event")
    finally:
        emulator.release("revoke")
    assert _count(bus, "SELECT COUNT(*) FROM integrations WHERE user_id = %s", user) == 0
    for integration in doomed:
        assert (
            _count(
                bus,
                "SELECT COUNT(*) FROM outbox_events WHERE type = 'integration.disconnected' AND integration_id = %s",
                integration,
            )
            == 1
        )
    other_log = Path(bus.log_path).with_name(f"daemon-{base.rsplit(':', 1)[1]}.log").read_text()
    assert "took over" in other_log
