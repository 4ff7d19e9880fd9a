"""A redelivery refused after a daemon's hard stop says why, and until when.

Review: after a second SIGTERM (exit 143), `nexusctl webhooks redeliver ID` said the delivery "is being sent now"
(exit 16) for up to 2 x WEBHOOK_TIMEOUT + 5 s while no daemon ran; deliveries only claimed ahead got the same words.
Now it says that a daemon holds it (sending it, or about to) until its lease runs out at a given time, and to try
again after that; the code and exit code are the same.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess

from support.daemons import NEXUSCTL
from support.receivers import HoldingReceiver
from support.waiting import wait_for

from nexusctl.db.models import WebhookDelivery


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _nexusctl(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(NEXUSCTL), *args], env=env, capture_output=True, text=True, timeout=60)


def test_after_a_hard_stop_a_redelivery_is_refused_until_the_lease_runs_out_and_says_when(
    database, daemons, make_integration
):
    daemons.env.update(WEBHOOK_TIMEOUT="30")  # a lease of 65 s: the test's steps fit well inside it
    env = daemons.env
    sink = HoldingReceiver()
    try:
        daemon = daemons.start()
        integration = make_integration()
        made = _nexusctl(
            env, "webhooks", "create", "--integration", str(integration.id), "--url", sink.url, "-e", "post.*", "--json"
        )
        hook = json.loads(made.stdout)["id"]
        assert _nexusctl(env, "events", "emit", str(integration.id), "post.created").returncode == 0
        wait_for(lambda: sink.total() == 1, 30, "the daemon to send the delivery")
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda: not _listening(daemon.port), 30, "the daemon to begin stopping (its port closed)")
        daemon.send_signal(signal.SIGTERM)  # the second: a hard stop, the receiver still holding the send
        assert daemon.wait(30) == 143
        daemons.running.remove(daemon)
        delivery = WebhookDelivery.get(WebhookDelivery.event == "post.created")
        until = delivery.lease_until.strftime("%Y-%m-%dT%H:%M:%SZ")
        refused = _nexusctl(env, "webhooks", "redeliver", str(delivery.id))
        assert refused.returncode == 16 and "DELIVERY_IN_FLIGHT" in refused.stderr, refused.stderr
        message = " ".join(refused.stderr.split())  # as wrapped on the terminal
        assert "is being sent now" not in message
        assert f"is held by a daemon (sending it, or about to) until its lease runs out at {until}" in message
        assert "try again after that" in message and f"nexusctl webhooks deliveries {hook}" in message
    finally:
        sink.release()
        sink.stop()
