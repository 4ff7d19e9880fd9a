"""Syncs as users start them: `nexusctl sync run` (one, --all), `sync cancel`, and POST /integrations/{id}/sync.

Real daemon, real database (SQLite and PostgreSQL), integrations connected
through the emulators' consent flow, data served by the emulators' list
endpoints.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

from support import clock
from support.callers import tenant_of
from support.waiting import wait_for


def _connected(stack, provider: str, user=None):
    user = user or uuid.uuid4()
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def _channels(n):
    return [{"id": f"C{i:08d}", "name": f"chan-{i}"} for i in range(n)]


def _logs(stack, integration, user):
    response = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user)
    assert response.status == 200, response.text
    return response.json()["data"]


def test_the_api_starts_a_sync_the_daemon_runs(stack, fresh_emulators):
    user, integration = _connected(stack, "SLACK")
    stack.emulators["SLACK"].set_records("channels", _channels(250))
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_channels"})
    assert started.status == 202, started.text
    log_id = started.json()["data"]["id"]
    deadline = time.monotonic() + 20
    while True:
        (log,) = [row for row in _logs(stack, integration, user) if row["id"] == log_id]
        if log["status"] not in ("PENDING", "IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, log
        time.sleep(0.1)  # polling the log, as a client of the API does
    assert (log["status"], log["itemsProcessed"], log["metadata"]["created"]) == ("COMPLETED", 250, 250)
    integration_row = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert integration_row["lastSyncAt"] is not None
    # The spec's resourceType / resourceId: what was fetched (the action's resource), from which account.
    (account,) = stack.sql("SELECT account_id FROM integrations WHERE id = %s", integration)[0]
    assert (log["resourceType"], log["resourceId"]) == ("channel", account) and account


def test_the_api_refuses_bad_starts(stack, fresh_emulators):
    user, integration = _connected(stack, "SLACK")
    cases = [
        ({"action": "fetch_posts"}, 400, "has no action 'fetch_posts'"),
        ({"full": "yes"}, 400, "full"),
        ({"actions": []}, 400, "unknown field"),
    ]
    for body, status, text in cases:
        response = stack.api("POST", f"/integrations/{integration}/sync", user=user, body=body)
        assert response.status == status and text in response.text, (body, response.text)
    other = stack.api("POST", f"/integrations/{integration}/sync", user=uuid.uuid4(), body={})
    assert other.status == 404  # someone else's integration does not exist for you


def test_cli_sync_run_one_and_all_with_exit_codes(stack, fresh_emulators):
    _, slack = _connected(stack, "SLACK")
    _, discord = _connected(stack, "DISCORD")
    # Earlier tests' connections hold tokens the reset emulators no longer know: the operator deactivates them
    # (the CLI), out of --all's way.
    stack.deactivate_others(slack, discord)
    stack.emulators["SLACK"].set_records("channels", _channels(30))
    stack.emulators["DISCORD"].set_records("guilds", [{"id": str(10 + i), "name": f"g{i}"} for i in range(5)])

    one = stack.cli("sync", "run", slack, "--json")
    assert one.returncode == 0, one.stderr
    (row,) = json.loads(one.stdout)
    assert (row["status"], row["itemsProcessed"], row["integrationId"]) == ("COMPLETED", 30, slack)

    everyone = stack.cli("sync", "run", "--all")
    assert everyone.returncode == 0, everyone.stderr
    lines = everyone.stdout.splitlines()
    assert any(slack in line and line.startswith("COMPLETED") for line in lines)
    assert any(discord in line and "5 items" in line for line in lines)

    stack.emulators["DISCORD"].fail_next("guilds", 502)
    failing = stack.cli("sync", "run", "--all", "--provider", "discord", "--json")
    assert failing.returncode == 24, failing.stderr
    rows = json.loads(failing.stdout)
    assert {r["status"] for r in rows if r["integrationId"] == discord} == {"FAILED"}
    assert "sync runs failed" in failing.stderr and "Traceback" not in failing.stderr

    # A provider's error text reaches the operator's terminal escaped, never obeyed (a title change, a clear).
    stack.emulators["DISCORD"].fail_next("guilds", 400, body={"message": "bad\x1b]0;pwned\x07\x1b[2J"})
    shown = stack.cli("sync", "run", discord)
    assert shown.returncode == 24, shown.stderr
    assert "\x1b" not in shown.stdout + shown.stderr and "\x07" not in shown.stdout + shown.stderr
    assert "bad\\x1b]0;pwned" in shown.stdout, shown.stdout


def test_cli_sync_refuses_bad_input_with_one_line(stack, fresh_emulators):
    _, slack = _connected(stack, "SLACK")
    for args, text in [
        (("sync", "run"), "give an integration id or --all"),
        (("sync", "run", slack, "--action", "nope"), "has no action 'nope'"),
        (("sync", "run", slack, "--provider", "SLACK"), "--provider goes with --all"),
        (("sync", "cancel", "not-a-uuid"), "logId must be a UUID"),
        (("sync", "cancel", str(uuid.uuid4())), "not found"),
    ]:
        result = stack.cli(*args)
        assert result.returncode != 0 and text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_scheduled_sync_runs_by_itself_when_due(stack, fresh_emulators):
    user, integration = _connected(stack, "SLACK")
    stack.emulators["SLACK"].set_records("channels", _channels(12))
    before = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]["metadata"]
    bad = stack.api("PATCH", f"/integrations/{integration}", user=user, body={"metadata": {"syncSchedule": "1m"}})
    assert bad.status == 400 and "at least 5 minutes" in bad.text
    patched = stack.api(
        "PATCH",
        f"/integrations/{integration}",
        user=user,
        body={"metadata": {"syncSchedule": "1h", "team": "growth", "provider": {"tenant": "evil"}}},
    )
    assert patched.status == 200, patched.text
    metadata = patched.json()["data"]["metadata"]
    # The provider facts the service keeps are not the client's to change.
    assert metadata["provider"] == before["provider"] and metadata["team"] == "growth"

    assert not _logs(stack, integration, user)  # not due yet: an hour from the change
    (scheduled,) = stack.sql("SELECT next_sync_at FROM integrations WHERE id = %s", integration)[0]
    clock.pass_until(stack.emulators, scheduled)  # the hour passes (the clock the daemon shares)
    wait_for(
        lambda: [row for row in _logs(stack, integration, user) if row["status"] == "COMPLETED"],
        20,
        "the daemon to run the scheduled sync",
    )
    (log,) = _logs(stack, integration, user)
    assert log["metadata"]["trigger"] == "schedule" and log["itemsProcessed"] == 12
    (upcoming,) = stack.sql("SELECT next_sync_at FROM integrations WHERE id = %s", integration)[0]
    # Moved on by an hour from the run, not left in the past.
    assert clock.aware(upcoming) > clock.now(stack.emulators) + dt.timedelta(minutes=50)
