"""`integrations refresh --expiring-within`: a progress bar for a person at a terminal, one line for cron."""

from __future__ import annotations

import json

from support.terminal import ANSI, piped_run, stderr_on_pty
from test_refresh_flows import connected, expire_in


def test_bulk_refresh_shows_a_bar_on_a_terminal_and_one_line_in_scripts(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(2)]
    # Time passes until 30 minutes are left (both connected seconds apart): outside the daemons' own 10-minute
    # window, so only the command refreshes them.
    expire_in(stack, 1800, ids[0])
    before = emu.calls["refresh"]
    env = {**stack.env, "TERM": "xterm-256color"}
    code, stdout, screen = stderr_on_pty(["integrations", "refresh", "--expiring-within", "1h", "--json"], env)
    assert code == 0, screen
    assert "refreshing tokens" in screen and "/2" in screen  # the bar, with the number due
    assert "Refreshed 2, failed 0" in screen
    assert json.loads(stdout)["refreshed"] == 2
    assert emu.calls["refresh"] == before + 2

    expire_in(stack, 1800, ids[0])  # another half hour passes on the refreshed (one-hour) tokens
    cron = piped_run(["integrations", "refresh", "--expiring-within", "1h"], env)
    assert cron.returncode == 0 and cron.stdout == ""
    assert cron.stderr.startswith("Refreshed 2, failed 0") and cron.stderr.count("\n") == 1 and ANSI not in cron.stderr
    assert emu.calls["refresh"] == before + 4


def test_bulk_refresh_goes_on_past_one_batch(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(5)]
    stack.deactivate_others(*ids)  # the test before's two are not this run's (the operator, with the CLI)
    expire_in(stack, 1800, ids[0])
    before = emu.calls["refresh"]
    env = {**stack.env, "REFRESH_SWEEP_BATCH": "2"}  # three batches: 2 + 2 + 1
    # 45m: these five (30 min left); an hour would also take the five again once refreshed (YouTube's tokens
    # last 3,599 s): each is done once.
    done = piped_run(["integrations", "refresh", "--expiring-within", "45m", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["refreshed"] == 5 and emu.calls["refresh"] == before + 5
    # Two hours is longer than the tokens live: without "each once per run" the run would go on forever.
    again = piped_run(["integrations", "refresh", "--expiring-within", "2h", "--json"], env)
    counts = json.loads(again.stdout)
    # The five once more, each once.
    assert (counts["refreshed"], counts["failed"], again.returncode) == (5, 0, 0), again.stderr
    assert emu.calls["refresh"] == before + 10
