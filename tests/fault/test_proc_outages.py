"""The daemon's backing services go away mid-run and come back: it says so, recovers by itself, loses nothing.

- PostgreSQL (a private cluster, stopped with ``-m immediate``: every
  connection drops as in a crash) while deliveries are in flight: /ready
  answers 503 NOT_READY naming the database, an emit is refused with 503
  DATABASE_UNAVAILABLE (nothing half-queued), and once the server is back
  /ready is 200 again, new emits work at once and every delivery queued
  before and after reaches the receiver. A quick restart nobody probed in
  between costs no request a failure either.
- Redis (a private redis-server, killed with SIGKILL) under the outbox relay
  and the OAuth states: initiate answers 503 DATABASE_UNAVAILABLE naming
  Redis (no 500, no traceback), events emitted meanwhile wait in the outbox,
  and after the restart the relay publishes them in order and a flow started
  before the outage completes.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import uuid

import pytest
from emulators.testkit import call
from procs import api, daemon_env, sql, start_daemon
from support.daemons import NEXUSCTL
from support.daemons import stop as stop_daemon
from support.waiting import wait_for

from nexusctl.core import webhooks
from nexusctl.db.database import bind, open_database
from nexusctl.db.models import Integration
from nexusctl.enums import Provider


def _emit(base: str, integration: str, user, n: int):
    return api(
        base, "POST", f"/integrations/{integration}/events", user=user, body={"type": "post.created", "data": {"n": n}}
    )


def _ready(base: str):
    try:
        return api(base, "GET", "/ready")
    except OSError:
        return None


def _setup(url: str, keyring, hook_urls: list[str]) -> tuple[str, uuid.UUID]:
    """An integration with one webhook per URL, written straight into the database."""
    db = bind(open_database(url))
    try:
        user = uuid.uuid4()
        integration = Integration.create(user_id=user, provider=Provider.SHOPIFY, name="shop")
        for hook_url in hook_urls:
            webhooks.create(keyring, integration_id=integration.id, url=hook_url, events=["*"])
        return str(integration.id), user
    finally:
        db.close()
        db.close_all()


@pytest.mark.postgres
def test_postgres_restarted_mid_run_loses_nothing(private_postgres, keyring, receiver, tmp_path):
    url = private_postgres.create_database("nexus")
    env = daemon_env(
        DATABASE_URL=url,
        WEBHOOK_TIMEOUT="1",
        WEBHOOK_RETRY_SCHEDULE="1,1,1,1,1,1,1,1,1,1",
        SYNC_POLL_INTERVAL="1",
        REFRESH_SWEEP_INTERVAL="1",
    )  # every loop of the daemon meets the outage
    migrated = subprocess.run([str(NEXUSCTL), "-q", "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    sink = receiver(delay=0.5)  # slow enough that sends are in flight when the server goes
    integration, user = _setup(url, keyring, [sink.url, sink.url])
    base, daemon, log_path = start_daemon(env, tmp_path)
    try:
        for n in range(20):  # before: 40 deliveries, two webhooks
            assert _emit(base, integration, user, n).status == 202
        wait_for(lambda: sink.total() >= 8, 30, "the first deliveries to reach the receiver")

        private_postgres.stop("immediate")
        down = wait_for(
            lambda: (r := _ready(base)) is not None and r.status == 503 and r, 15, "/ready to report the database"
        )
        body = down.json()
        assert body["error"]["code"] == "NOT_READY" and body["data"]["checks"]["database"] == "failing", body
        assert body["error"]["message"].startswith("database: "), body
        assert api(base, "GET", "/health").status == 200  # the process itself is fine
        during = _emit(base, integration, user, 999)
        assert during.status == 503, (during.status, during.text)
        assert during.json()["error"]["code"] == "DATABASE_UNAVAILABLE", during.text
        documented = api(base, "GET", "/openapi.json").json()["paths"]["/integrations/{id}/events"]["post"]
        assert "DATABASE_UNAVAILABLE" in documented["responses"]["503"]["description"]  # an answer the API promises
        assert "password" not in during.text and url not in during.text
        # Sends in flight when the server went finish now and cannot be recorded: they must come back.
        wait_for(lambda: "not recorded" in log_path.read_text(), 15, "an in-flight send to miss its record")

        private_postgres.start()
        wait_for(lambda: (r := _ready(base)) is not None and r.status == 200, 30, "/ready to recover by itself")
        with concurrent.futures.ThreadPoolExecutor(10) as pool:  # several requests at once: every pooled connection
            after = list(pool.map(lambda n: _emit(base, integration, user, n), range(20, 40)))
            assert [r.status for r in after] == [202] * 20, [(r.status, r.text) for r in after if r.status != 202]
            # A quick restart nobody probed in between: the first requests after it find every pooled
            # connection dead, and must not fail for it (one 503 per connection would be the naive result).
            private_postgres.stop("fast")
            private_postgres.start()
            quick = list(pool.map(lambda n: _emit(base, integration, user, n), range(40, 60)))
            assert [r.status for r in quick] == [202] * 20, [(r.status, r.text) for r in quick if r.status != 202]

        def all_delivered():
            return sql(url, "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'DELIVERED'")[0][0] == 120

        wait_for(all_delivered, 90, "all 120 deliveries to be DELIVERED")
        assert daemon.poll() is None, "the daemon died during the outage"
    finally:
        stop_daemon(daemon)
    rows = sql(url, "SELECT id, payload FROM webhook_deliveries")
    assert len(rows) == 120  # the refused emit queued nothing
    assert sorted(p["data"]["n"] for _, p in rows) == sorted(list(range(60)) * 2)
    assert {str(i) for i, _ in rows} <= set(sink.by_id), "a delivery never reached the receiver"
    log = log_path.read_text()
    assert "unhandled error" not in log, log[-3000:]  # every request had a clear answer, none a 500
    assert "Traceback" not in log, log[-3000:]  # an outage is reported in a line, not a stack
    assert "delivery worker: cannot claim (the database is unavailable: " in log


@pytest.mark.redis
def test_redis_killed_and_restarted(stack_launcher, emulators, fresh_emulators, pg_template, private_redis, tmp_path):
    env = {"REDIS_URL": private_redis.url, "EVENTS_CONSUME_STREAMS": "none"}
    with stack_launcher("sqlite", tmp_path, emulators, pg_template, env) as stack:
        user = uuid.uuid4()
        connected = stack.connect("DISCORD", user)
        assert connected["status"] == "success", connected
        integration = connected["integrationId"]
        for n in range(10):
            assert _emit(stack.base, integration, user, n).status == 202

        def unpublished():
            return stack.sql("SELECT COUNT(*) FROM outbox_events WHERE published_at IS NULL")[0][0]

        wait_for(lambda: unpublished() == 0, 20, "the relay to publish the first events")
        # A connection flow started before the outage: its state is in Redis.
        started = stack.initiate("SLACK", user)
        assert started.status == 200, started.text

        private_redis.kill9()
        down = wait_for(
            lambda: (r := _ready(stack.base)) is not None and r.status == 503 and r, 15, "/ready to report Redis"
        )
        assert down.json()["data"]["checks"]["redis"] == "failing", down.text
        refused = stack.initiate("DISCORD", uuid.uuid4())
        assert refused.status == 503, (refused.status, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "REDIS_UNAVAILABLE" and "Redis" in error["message"], error
        for n in range(10, 30):  # the API keeps taking events: they wait in the outbox
            assert _emit(stack.base, integration, user, n).status == 202
        assert unpublished() >= 20
        wait_for(lambda: "event relay: cannot publish" in stack.logs(), 15, "the relay to run into the outage")

        private_redis.start()
        wait_for(lambda: (r := _ready(stack.base)) is not None and r.status == 200, 20, "/ready after the restart")
        again = stack.initiate("DISCORD", uuid.uuid4())
        assert again.status == 200, again.text  # at once: no dead pooled socket is reused
        finished = call("GET", call("GET", started.json()["data"]["authorizationUrl"]).location)
        assert finished.status == 302 and "status=success" in finished.location, finished.location
        wait_for(lambda: unpublished() == 0, 30, "the relay to publish the backlog")

        entries = private_redis.client().xrange("nexus.events")
        outbox = {str(uuid.UUID(str(i))) for (i,) in stack.sql("SELECT id FROM outbox_events")}
        assert outbox <= {fields["id"] for _, fields in entries}, "an event never reached the stream"
        numbers, seen = [], set()
        for _, fields in entries:
            if fields["type"] == "post.created" and fields["id"] not in seen:
                seen.add(fields["id"])
                numbers.append(json.loads(fields["payload"])["n"])
        assert numbers == list(range(30))  # in the order they were written, none lost
        # The relay says so once its pass has committed the backlog as published: the line follows the commit.
        wait_for(lambda: "event relay: publishing again" in stack.logs(), 15, "the relay to say it publishes again")
        logs = stack.logs()
        assert "event relay: cannot publish" in logs, logs[-4000:]
        assert "Traceback" not in logs and "unhandled error" not in logs, logs[-3000:]
