"""Deferred sync runs (PENDING with a runAfter, set when a rate-limit wait is held) through a daemon whose
SYNC_POLL_INTERVAL is an hour, on SQLite and PostgreSQL: its sync runner takes a run it deferred when that
runAfter comes, not at its next pass; and a `nexusctl sync run` (from cron) that loses the same due deferred run
to another process says so, with the run's id, instead of reporting that process's run as its own.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.callers import connected, proxy
from support.clock import aware, pass_until
from support.fixtures import stack_per_database
from support.stack import sync_log_end
from support.waiting import wait_for

stack = stack_per_database(
    "deferred-wake",
    {
        "SYNC_POLL_INTERVAL": "1h",  # a pass at start, then hourly: nothing here is taken by a pass in time
        "SYNC_RATE_LIMIT_BUDGET": "1s",  # a wait longer than a second defers the run rather than being waited out
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    },
)


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


# The CLI with one step slowed down: between planning a due deferred run and starting it, it waits until another
# process has taken the run (a signal file says it is there, another says go on). The race a cron `sync run` loses
# to the daemon's runner, made to happen every time.
_SLOW_START = """
import os, sys, time
from nexusctl.core import sync_state
from nexusctl.cli.entry import main

real = sync_state.start


def start(log_id):
    if str(log_id) == os.environ["RACE_LOG"]:
        open(os.environ["RACE_READY"], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.environ["RACE_GO"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    return real(log_id)


sync_state.start = start
sys.argv = ["nexusctl", *sys.argv[1:]]
sys.exit(main())
"""


def _deferred_by_the_cli(stack, emu, user, integration) -> str:
    """A fetch_channels run a CLI deferred (the daemon's proxy was told to wait an hour): the daemon, polling
    hourly, does not know of it. Its id."""
    emu.rate_limit_next("conversations.list", retry_after=3600)
    assert proxy(stack, integration, "GET", "/conversations.list", user=user).status == 429
    ran = stack.cli("sync", "run", integration, "--action", "fetch_channels", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)[0]["status"] == "PENDING", ran.stdout + ran.stderr
    return json.loads(ran.stdout)[0]["id"]


def _slack_integrations(stack) -> set[str]:
    listed = stack.cli("integrations", "list", "--provider", "SLACK", "--active", "--limit", "100", "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["id"] for row in json.loads(listed.stdout)}


@pytest.mark.parametrize("all_", [False, True], ids=["one-integration", "all"])
def test_a_sync_run_that_loses_a_due_deferred_run_to_another_process_says_so(stack, fresh_emulators, tmp_path, all_):
    emu, user, integration = _slack(stack)
    for other in _slack_integrations(stack) - {integration}:  # --all: this one alone (others' runs are not the point)
        assert stack.cli("integrations", "update", other, "--inactive").returncode == 0
    log_id = _deferred_by_the_cli(stack, emu, user, integration)
    pass_until(fresh_emulators, _log(stack, log_id)["run_after"])  # the wait is over: the run is due
    listed = emu.calls["conversations.list"]

    ready, go = tmp_path / "ready", tmp_path / "go"
    args = ["sync", "run", "--all", "--provider", "SLACK"] if all_ else ["sync", "run", integration]
    loser = subprocess.Popen(
        [sys.executable, "-c", _SLOW_START, *args, "--action", "fetch_channels"],
        env={**stack.env, "RACE_LOG": log_id, "RACE_READY": str(ready), "RACE_GO": str(go)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, 30, "the slow CLI planning the due run")
        # Meanwhile another process takes that run and runs it to its end.
        winner = stack.cli("sync", "run", integration, "--action", "fetch_channels", "--json")
        assert winner.returncode == 0, winner.stdout + winner.stderr
        assert [(r["id"], r["status"]) for r in json.loads(winner.stdout)] == [(log_id, "COMPLETED")]
        go.touch()
        stdout, stderr = loser.communicate(timeout=60)
    finally:
        loser.kill()
    assert emu.calls["conversations.list"] == listed + 1  # run once, by the winner

    said = f"another process took sync {log_id} (fetch_channels of integration {integration})"
    assert said in stderr and "did not run here" in stderr and "COMPLETED there" in stderr, stderr
    assert f"nexusctl sync show {log_id}" in stderr, stderr
    assert log_id not in stdout and "COMPLETED" not in stdout, stdout  # not reported as a run of its own
    if all_:  # skipped like a run already going at planning time
        assert loser.returncode == 0 and stderr.startswith("skipped: "), (loser.returncode, stderr)
    else:  # SYNC_NOT_STARTED, as when that run was already going
        assert loser.returncode == 27 and "SYNC_NOT_STARTED" in stderr, (loser.returncode, stderr)
    assert _log(stack, log_id)["status"] == "COMPLETED"
