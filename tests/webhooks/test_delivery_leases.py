"""Leases under load, with real daemon processes on one PostgreSQL: a receiver slower than any lease.

- Two daemons send 20 deliveries to a receiver that holds every request while the
  product's clock moves on by more than the lease (NEXUSCTL_CLOCK_FILE, in steps):
  the daemons renew the leases of what they hold, so neither takes over the
  other's, and each delivery arrives exactly once with one attempt.
- A daemon that stops renewing (SIGSTOP: stalled, as a daemon cut off from the
  database) loses its lease once it expires; the other daemon sends the delivery
  and records it, and the stalled one, once running again, notices the lease is
  gone and does not record its own attempt.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from support import clock as shared_clock
from support.receivers import HoldingReceiver
from support.waiting import wait_for

from nexusctl import clock
from nexusctl.core import deliveries, webhooks
from nexusctl.db.database import database_proxy
from nexusctl.db.models import Integration, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, Provider

pytestmark = pytest.mark.postgres


def _queue(keyring, url: str, count: int) -> set[str]:
    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    webhooks.create(keyring, integration_id=integration.id, url=url, events=["*"])
    with database_proxy.atomic():
        for i in range(count):
            deliveries.fan_out(integration, "media.created", {"i": i})
    return {str(d.id) for d in WebhookDelivery.select(WebhookDelivery.id)}


def _leases() -> dict:
    """{delivery id: (lease token, lease until)} of every delivery."""
    return {
        str(i): (t, u)
        for i, t, u in WebhookDelivery.select(
            WebhookDelivery.id, WebhookDelivery.lease_token, WebhookDelivery.lease_until
        ).tuples()
    }


@pytest.fixture
def moved_clock(tmp_path, monkeypatch, daemons):
    """The product's clock for the daemons and this test; ``advance(seconds)`` moves it on."""
    path = tmp_path / "clock-offset"
    path.write_text("0")
    daemons.env[clock.ENV] = str(path)
    shared_clock.use_file(monkeypatch, path)

    def advance(seconds: float) -> None:
        offset = float(path.read_text()) + seconds
        staged = tmp_path / "clock-offset.new"
        staged.write_text(str(offset))
        os.replace(staged, path)  # a new inode: every reader sees the change at its next look

    return advance


def test_two_daemons_renew_their_leases_while_a_receiver_holds_longer_than_a_lease(
    pg_database, daemons, keyring, moved_clock
):
    timeout = 60
    lease = 2 * timeout + 5  # the worker's lease for WEBHOOK_TIMEOUT=60 (renewed every lease / 5 = 25 s)
    daemons.env.update(WEBHOOK_TIMEOUT=str(timeout), WEBHOOK_CONCURRENCY="10")  # 10 each: both take part
    sink = HoldingReceiver()
    try:
        first, second = daemons.start(), daemons.start()
        ids = _queue(keyring, sink.url, 20)
        wait_for(lambda: sink.total() == 20, 60, "both daemons to hold 20 sends at the receiver")
        taken = {i: token for i, (token, _) in _leases().items()}
        assert all(taken.values()) and len(set(taken.values())) >= 2, taken  # claimed, by both daemons
        # The clock moves 160 s in all (more than the 125 s lease) while the receiver holds every request;
        # after each 40 s step the leases must have been renewed past where the last renewal left them.
        for _ in range(4):
            moved_clock(40)
            wait_for(
                lambda: _renewed_past(clock.now().timestamp() + lease - 25),
                30,
                "the held leases to be renewed after the clock moved",
            )
            assert sink.total() == 20, sink.counts()  # nothing sent again while both daemons are alive
        assert {i: token for i, (token, _) in _leases().items()} == taken  # no lease changed hands
    finally:
        sink.release()
    wait_for(lambda: _delivered() == 20, 60, "every delivery to be delivered")
    sink.stop()
    assert set(sink.counts()) == ids and set(sink.counts().values()) == {1}, sink.counts()
    assert WebhookAttempt.select().count() == 20

    def per_daemon() -> list[int]:
        return [p.log_path.read_text().count(" attempt 1 -> 200 delivered") for p in (first, second)]

    # A daemon writes its line just after the commit the wait above saw: give the last lines their moment.
    wait_for(lambda: sum(per_daemon()) >= 20, 10, "each daemon's log line for each of its deliveries")
    assert sum(per_daemon()) == 20 and all(n > 0 for n in per_daemon()), per_daemon()
    assert not any("lease lost" in p.log_path.read_text() for p in (first, second))


def test_a_stalled_daemon_that_lost_its_lease_does_not_record_its_send(pg_database, daemons, keyring, moved_clock):
    timeout = 20
    lease = 2 * timeout + 5
    daemons.env.update(WEBHOOK_TIMEOUT=str(timeout))
    sink = HoldingReceiver()
    stalled = daemons.start()
    (delivery,) = _queue(keyring, sink.url, 1)
    wait_for(lambda: sink.total() == 1, 60, "the first daemon to send the delivery")
    (token, _), stopped = _leases()[delivery], False
    try:
        other = daemons.start()
        stalled.send_signal(signal.SIGSTOP)  # no renewal from here on
        stopped = True
        moved_clock(lease + 15)
        wait_for(lambda: sink.counts()[delivery] == 2, 30, "the other daemon to take the expired lease and send")
        assert _leases()[delivery][0] not in (None, token)
        stalled.send_signal(signal.SIGCONT)
        stopped = False
        wait_for(lambda: "lease lost to another worker" in stalled.log_path.read_text(), 30, "the renewal to notice")
        sink.release()
        wait_for(lambda: _delivered() == 1, 30, "the other daemon to record the delivery")
        wait_for(
            lambda: "not recorded: the lease was lost while sending" in stalled.log_path.read_text(),
            30,
            "the stalled daemon's send to finish",
        )
    finally:
        if stopped:
            stalled.send_signal(signal.SIGCONT)
        sink.stop()
    attempts = list(WebhookAttempt.select(WebhookAttempt.number, WebhookAttempt.status_code).tuples())
    assert attempts == [(1, 200)]  # one attempt recorded: the other daemon's
    # (The line is written after the record's commit, which _delivered() saw: wait for it.)
    wait_for(lambda: " attempt 1 -> 200 delivered" in other.log_path.read_text(), 30, "the other daemon's line")
    assert " -> 200" not in stalled.log_path.read_text()


def _lease_ends() -> list[float]:
    """When each leased delivery's lease ends (epoch seconds)."""
    return [
        u.timestamp()
        for (u,) in WebhookDelivery.select(WebhookDelivery.lease_until)
        .where(WebhookDelivery.lease_until.is_null(False))
        .tuples()
    ]


def _renewed_past(moment: float) -> bool:
    ends = _lease_ends()
    return len(ends) == 20 and min(ends) > moment


def _delivered() -> int:
    return WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.DELIVERED).count()
