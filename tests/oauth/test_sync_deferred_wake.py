"""Deferred sync runs (PENDING with a runAfter, set when a rate-limit wait is held) through a daemon whose
SYNC_POLL_INTERVAL is an hour, on SQLite and PostgreSQL: its sync runner takes a run it deferred when that
runAfter comes, not at its next pass.
"""

from __future__ import annotations

import pytest
from support.clock import aware
from support.stack import sync_log_end
from test_proxy import connected, proxy


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {
        "SYNC_POLL_INTERVAL": "1h",  # a pass at start, then hourly: nothing here is taken by a pass in time
        "SYNC_RATE_LIMIT_BUDGET": "1s",  # a wait longer than a second defers the run rather than being waited out
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("deferred-wake"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


def _slack(stack):
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    return emu, user, integration


def _log(stack, log_id) -> dict:
    (row,) = stack.sql("SELECT status, run_after, started_at FROM integration_sync_logs WHERE id = %s", log_id)
    return dict(zip(("status", "run_after", "started_at"), row))


def test_the_runner_takes_a_run_it_deferred_when_its_run_after_comes_not_at_its_next_pass(stack, fresh_emulators):
    emu, user, integration = _slack(stack)
    emu.rate_limit_next("conversations.list", retry_after=3)  # Slack says: 3 s
    assert proxy(stack, integration, "GET", "/conversations.list", user=user).status == 429
    listed = emu.calls["conversations.list"]

    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_channels"})
    assert started.status == 202, started.text
    log_id = started.json()["data"]["id"]
    assert sync_log_end(stack, log_id) == "DEFERRED"  # the 3 s wait is beyond the 1 s budget
    deferred = _log(stack, log_id)
    assert emu.calls["conversations.list"] == listed  # nothing called while the wait lasts

    # The next pass is an hour away: the runner wakes for the runAfter it deferred the run to.
    assert sync_log_end(stack, log_id, timeout=30, ends=("COMPLETED", "FAILED")) == "COMPLETED"
    assert emu.calls["conversations.list"] == listed + 1
    log = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
    (ran,) = [row for row in log if row["id"] == log_id]
    assert ran["runAfter"] is None, ran  # cleared when the deferred run started
    assert aware(ran["completedAt"]) >= aware(deferred["run_after"]), (ran, deferred)  # not before its time
