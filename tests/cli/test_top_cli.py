"""`nexusctl top --once` and `--json` in-process, on real SQLite and PostgreSQL, with no daemon running."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console
from support import clock as shared_clock

from nexusctl.cli import top_view


def test_top_shows_how_long_the_oldest_due_delivery_has_waited(cli, make_integration, monkeypatch, tmp_path):
    """An active webhook whose receiver is down, and no daemon to send: its deliveries wait, due from the emit.
    Two hours on (the shared clock: the CLI runs read it), `top` shows that age beside the queue's depth."""
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    integration = make_integration()
    made = cli(
        "webhooks", "create", "--integration", integration.id, "--url", "http://127.0.0.1:9/hook", "-e", "post.*"
    )
    assert made.exit_code == 0, made.stderr
    for _ in range(2):
        emitted = cli("events", "emit", integration.id, "post.created", "--json")
        assert emitted.exit_code == 0 and json.loads(emitted.stdout)["deliveriesQueued"] == 1, emitted.stderr
    advance(2 * 3600 + 5 * 60 + 30)  # 2h05m30s: "2h05m" for up to 29 s of the machine's own time on top

    snap = cli("top", "--json")
    assert snap.exit_code == 0, snap.stderr
    queue = {row["status"]: row for row in json.loads(snap.stdout)["queue"]}
    assert queue["PENDING"]["depth"] == 2 and 7530 <= queue["PENDING"]["oldestDueSeconds"] < 7560, queue
    assert queue["RETRYING"] == {"status": "RETRYING", "depth": 0, "capped": False, "oldestDueSeconds": None}
    frame = cli("top", "--once")
    assert frame.exit_code == 0, frame.stderr
    assert re.search(r"^\s*PENDING\s+2\s+2h05m\s*$", frame.stdout, re.M), frame.stdout
    assert re.search(r"^\s*RETRYING\s+0\s+-\s*$", frame.stdout, re.M), frame.stdout  # nothing due: no age
    # On a terminal (the live view draws the same frame) an age of a minute or more stands out, in yellow.
    terminal = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=100)
    terminal.print(top_view.frame(json.loads(snap.stdout), 100))
    assert re.search(r"PENDING\s+2\s+\x1b\[33m2h05m\s*\x1b\[0m", terminal.file.getvalue()), terminal.file.getvalue()
