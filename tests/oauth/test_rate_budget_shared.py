"""One rate budget per integration across processes without Redis (nexusctl.core.rate_budget, issue 22).

Through `nexusctl daemon` and the `nexusctl` CLI on the same database, SQLite (the embedded default) and
PostgreSQL, both without REDIS_URL: the waits live in the ``rate_waits`` table. A wait the daemon's proxy
was told is kept by a CLI sync run, which is deferred until it ends (not failed); a wait a CLI run was told
answers the daemon's proxied calls 429; a publish asks the same budget and is deferred too, and a wait a
publisher is told is kept for the proxy. Time moves through the shared test clock.
"""

from __future__ import annotations

import json
import uuid

import pytest
from support.callers import connected, proxy
from support.clock import pass_until
from support.stack import sync_log_end
from support.waiting import wait_for
from test_discord_webhook import _connect_with_webhook
from test_publish_targets import _publish


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {"REDIS_URL": None, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}  # no Redis, on PostgreSQL too
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("budget-stack"), emulators, pg_template, extra_env=env
    ) as stack:
        assert "REDIS_URL" not in stack.env
        yield stack


def _slack(stack):
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    return emu, user, integration


def _rows(stack, integration) -> list[tuple]:
    return stack.sql(
        "SELECT id, status, run_after, metadata, error FROM integration_sync_logs WHERE integration_id = %s "
        "ORDER BY created_at",
        integration,
    )


def test_a_wait_the_daemon_was_told_defers_a_cli_sync_run_which_the_daemon_runs_when_it_ends(stack, fresh_emulators):
    emu, user, integration = _slack(stack)
    emu.rate_limit_next("conversations.list", retry_after=3600)
    got = proxy(stack, integration, "GET", "/conversations.list", user=user)
    assert got.status == 429 and got.headers["Retry-After"] == "3600", got.text
    listed = emu.calls["conversations.list"]

    ran = stack.cli("sync", "run", integration, "--action", "fetch_channels")  # another process
    assert ran.returncode == 0, ran.stderr  # deferred is not failed
    assert "PENDING" in ran.stdout and "deferred until" in ran.stdout, ran.stdout
    assert emu.calls["conversations.list"] == listed  # the provider was not called
    ((log_id, status, run_after, meta, error),) = _rows(stack, integration)
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert status == "PENDING" and run_after is not None and error is None, (status, run_after, error)
    assert meta["errorCode"] == "RATE_LIMITED" and meta["rateLimitedUntil"] in ran.stdout, meta
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert [r["code"] for r in health["reasons"]] == ["PROXY_RATE_LIMITED"], health  # no failed sync

    fresh_emulators.advance_clock(3602)  # the wait is over: the daemon's sync runner takes the CLI's run
    assert sync_log_end(stack, log_id, timeout=60, ends=("COMPLETED", "FAILED")) == "COMPLETED"
    assert emu.calls["conversations.list"] == listed + 1


def test_a_short_deferral_is_taken_by_the_daemon_as_soon_as_its_wait_ends(stack, fresh_emulators):
    """A run deferred for less than the 2 minutes the runner leaves a fresh PENDING run to its creator
    (sync_queue.STALE_PENDING) is taken once its runAfter has passed, not once it is 2 minutes old."""
    emu, user, integration = _slack(stack)
    emu.rate_limit_next("conversations.list", retry_after=30)
    assert proxy(stack, integration, "GET", "/conversations.list", user=user).status == 429
    listed = emu.calls["conversations.list"]
    # An operator's shorter run budget: the 30 s wait is beyond it, so the run is deferred, not waited out.
    ran = stack.cli("sync", "run", integration, "--action", "fetch_channels", env={"SYNC_RATE_LIMIT_BUDGET": "5s"})
    assert ran.returncode == 0 and "deferred until" in ran.stdout, ran.stdout + ran.stderr
    ((log_id, status, run_after, _meta, _error),) = _rows(stack, integration)
    assert status == "PENDING" and run_after is not None

    pass_until(fresh_emulators, run_after)  # about 32 s on: the run is far younger than 2 minutes
    assert sync_log_end(stack, log_id, timeout=20, ends=("COMPLETED", "FAILED")) == "COMPLETED"
    assert emu.calls["conversations.list"] == listed + 1


def test_a_wait_a_cli_run_was_told_answers_the_daemons_proxied_calls_429(stack, fresh_emulators):
    emu, user, integration = _slack(stack)
    assert proxy(stack, integration, "POST", "/auth.test", user=user).status == 200  # the daemon read: no wait
    emu.rate_limit_next("conversations.list", retry_after=3600)
    ran = stack.cli("sync", "run", integration, "--action", "fetch_channels", "--json")
    assert ran.returncode == 24 and json.loads(ran.stdout)[0]["status"] == "FAILED", ran.stdout  # the provider's
    # The daemon trusts its "no wait" read for a second (rate_budget.RECHECK), then reads the CLI's wait (calls
    # within that second, when the CLI run was quicker than it, still reach the provider).
    got = wait_for(
        lambda: (answer := proxy(stack, integration, "POST", "/auth.test", user=user)).status == 429 and answer,
        5,
        "the CLI's wait seen by the daemon",
    )
    assert 3500 < int(got.headers["Retry-After"]) <= 3600, got.headers
    calls = emu.calls["whoami"]
    assert proxy(stack, integration, "POST", "/auth.test", user=user).status == 429
    assert emu.calls["whoami"] == calls  # the provider was not called
    fresh_emulators.advance_clock(3601)
    assert proxy(stack, integration, "POST", "/auth.test", user=user).status == 200
    assert emu.calls["whoami"] == calls + 1


def test_a_publish_asks_the_budget_is_deferred_by_its_wait_and_notes_the_providers(stack, fresh_emulators):
    dc = stack.emulators["DISCORD"]
    user, integration, hook = _connect_with_webhook(stack)
    dc.rate_limit_next("whoami", 3600)
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 429

    content_id = f"c-{uuid.uuid4().hex[:10]}"
    body = {
        "type": "content.published",
        "id": f"evt-{content_id}",
        "data": {"userId": str(user), "contentId": content_id, "title": "Later", "url": "https://nexus.test/p/1"},
    }
    answer = stack.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)
    assert answer.status == 200, answer.text
    (log_id,) = [row["syncLogId"] for row in answer.json()["data"]["syncLogs"]]
    assert sync_log_end(stack, log_id, "publish") == "DEFERRED"
    assert dc.calls["execute_webhook"] == 0  # nothing sent while the wait lasts
    ((_id, _status, _after, meta, error),) = stack.sql(
        "SELECT id, status, run_after, metadata, error FROM integration_sync_logs WHERE id = %s", log_id
    )
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert error is None and meta["errorCode"] == "RATE_LIMITED" and meta["rateLimitedUntil"], meta

    fresh_emulators.advance_clock(3602)  # the daemon's runner publishes it once the wait is over
    assert sync_log_end(stack, log_id, "publish", timeout=60, ends=("COMPLETED", "FAILED")) == "COMPLETED"
    assert dc.calls["execute_webhook"] == 1
    assert [m["content"] for m in dc.records_of("messages") if m.get("webhook_id") == hook["id"]] == [
        "Later\nhttps://nexus.test/p/1"
    ]

    # A wait Discord tells the publisher (its channel webhook answered 429) is kept for the proxy too.
    dc.rate_limit_next("execute_webhook", 3600)
    status, _metadata, error = _publish(stack, user, "Throttled")
    assert status == "FAILED" and error.startswith("RATE_LIMITED"), error  # the provider refused this one
    # Logged as told to a publisher (a sync's are "(sync)", the proxy's "(proxy)").
    assert f"rate budget: integration {integration} waits 3600 s (publish)" in stack.logs(), stack.logs()[-3000:]
    calls = dc.calls["whoami"]
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
    assert got.status == 429 and int(got.headers["Retry-After"]) > 3500, got.text
    assert dc.calls["whoami"] == calls


def test_housekeeping_removes_a_wait_once_it_has_ended(stack, fresh_emulators):
    """An ended wait of an integration no provider throttles again is not left in rate_waits for ever: the
    housekeeping job (hourly in the daemon, `nexusctl jobs run housekeeping`) removes it, and only once ended."""
    emu, user, integration = _slack(stack)
    emu.rate_limit_next("conversations.list", retry_after=60)
    assert proxy(stack, integration, "GET", "/conversations.list", user=user).status == 429

    def waits() -> int:
        return stack.sql("SELECT COUNT(*) FROM rate_waits WHERE integration_id = %s", integration)[0][0]

    assert waits() == 1
    kept = stack.cli("jobs", "run", "housekeeping", "--json")
    assert kept.returncode == 0 and waits() == 1, kept.stderr  # still waiting: kept
    fresh_emulators.advance_clock(61)
    done = stack.cli("jobs", "run", "housekeeping", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["endedRateWaits"] >= 1 and waits() == 0
    said = stack.cli("jobs", "run", "housekeeping")
    assert "0 ended rate-limit waits" in said.stdout + said.stderr, said
