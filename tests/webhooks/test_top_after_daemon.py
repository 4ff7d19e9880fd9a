"""`nexusctl top` after a real daemon's work: ids whole when they fit, a stop's cut sends not the receiver's fault,
and no due age where nothing is due.

Review: `top --once` cut the WEBHOOK column (34 of 36 characters) at 80 columns and side by side at 160; the sends a
daemon's own stop cut counted as the endpoint's failures ("127.0.0.1 16"); `top --json` gave
``oldestDueSeconds: 0.0`` for an empty queue where the text view shows ``-``.
"""

from __future__ import annotations

import json
import subprocess

from support.daemons import NEXUSCTL
from support.receivers import BehavingReceiver, HoldingReceiver
from support.waiting import wait_for

from nexusctl.db.models import Webhook, WebhookAttempt

CUT = "the daemon stopped before the receiver answered"


def _nexusctl(env: dict, *args) -> str:
    done = subprocess.run([str(NEXUSCTL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _hook(env: dict, integration, url: str) -> str:
    made = _nexusctl(env, "webhooks", "create", "--integration", str(integration.id), "--url", url, "-e", "*", "--json")
    return json.loads(made)["id"]


def test_top_after_a_daemon_ran_shows_whole_ids_and_blames_only_the_receiver(
    database, daemons, make_integration, monkeypatch
):
    # A long retry step: the failed delivery waits (RETRYING, nothing due); a send held past the stop's grace.
    daemons.env.update(WEBHOOK_TIMEOUT="30", WEBHOOK_RETRY_SCHEDULE="3600")
    env = daemons.env
    failing, holding = BehavingReceiver(), HoldingReceiver()
    try:
        daemon = daemons.start()
        integration = make_integration()
        down = _hook(env, integration, failing.url("flap"))  # its first answer is a 500
        other = make_integration()
        held = _hook(env, other, holding.url)
        _nexusctl(env, "events", "emit", str(integration.id), "post.created")
        wait_for(lambda: WebhookAttempt.select().count() == 1, 30, "the 500 to be recorded")
        _nexusctl(env, "events", "emit", str(other.id), "post.created")
        wait_for(lambda: holding.total() == 1, 30, "the daemon to send to the holding receiver")
        daemon.terminate()  # its stop's grace (10 s) ends with the send still held: cut and recorded
        assert daemon.wait(60) == 0
        daemons.running.remove(daemon)
    finally:
        holding.release()
        holding.stop()
        failing.stop()
    assert {(a.status_code, a.error) for a in WebhookAttempt.select()} == {(500, None), (None, CUT)}
    assert Webhook.get_by_id(held).failing_since is None  # the cut send starts no failure window
    _nexusctl(env, "webhooks", "update", down, "--inactive")  # the host then reads "127.0.0.1 (disabled)"

    snap = json.loads(_nexusctl(env, "top", "--json"))
    assert [(e["webhookId"], e["failures"]) for e in snap["failingEndpoints"]] == [(down, 1)], snap
    # Nothing due: the two RETRYING (the 500 and the cut send) wait an hour, nothing PENDING.
    assert {q["status"]: q["oldestDueSeconds"] for q in snap["queue"]} == {"PENDING": None, "RETRYING": None}

    for columns in ("80", "160", "200"):
        frame = _nexusctl({**env, "COLUMNS": columns}, "top", "--once")
        (line,) = [line for line in frame.splitlines() if "127.0.0.1" in line]
        assert down in line, (columns, line)  # whole: the host gave way
        assert "127.0.0.1" in line and " 1 " in line, (columns, line)
        assert max(len(row) for row in frame.splitlines()) <= int(columns), frame
        queue = [line.split()[:3] for line in frame.splitlines() if line.startswith(("PENDING", "RETRYING"))]
        assert queue == [["PENDING", "0", "-"], ["RETRYING", "2", "-"]], frame
    narrow = _nexusctl({**env, "COLUMNS": "40"}, "top", "--once")  # too narrow for an id: cut, not wrapped
    assert down not in narrow and max(len(row) for row in narrow.splitlines()) <= 40
