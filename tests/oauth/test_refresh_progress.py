"""`integrations refresh --expiring-within`: a progress bar for a person at a terminal, one line for cron."""

from __future__ import annotations

import json

from test_refresh_flows import connected
from test_refresh_sweep import _expire_in
from test_terminal import ANSI, piped_run, stderr_on_pty


def test_bulk_refresh_shows_a_bar_on_a_terminal_and_one_line_in_scripts(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(2)]
    _expire_in(stack, 1800, *ids)  # outside the daemon's own 10-minute window: only the command refreshes them
    before = emu.calls["refresh"]
    env = {**stack.env, "TERM": "xterm-256color"}
    code, stdout, screen = stderr_on_pty(["integrations", "refresh", "--expiring-within", "1h", "--json"], env)
    assert code == 0, screen
    assert "refreshing tokens" in screen and "/2" in screen  # the bar, with the number due
    assert "Refreshed 2, failed 0" in screen
    assert json.loads(stdout)["refreshed"] == 2
    assert emu.calls["refresh"] == before + 2

    _expire_in(stack, 1800, *ids)
    cron = piped_run(["integrations", "refresh", "--expiring-within", "1h"], env)
    assert cron.returncode == 0 and cron.stdout == ""
    assert cron.stderr.startswith("Refreshed 2, failed 0") and cron.stderr.count("\n") == 1 and ANSI not in cron.stderr
    assert emu.calls["refresh"] == before + 4
