"""An emit while another client deletes one of the integration's webhooks (or the integration), on real databases.

On PostgreSQL emit_many reads the webhooks, then writes the outbox rows and the deliveries in one statement
outside a transaction: a webhook deleted in between broke the deliveries' foreign key, a 500 for the emitter
(found by a reviewer looping emits against a create-and-delete loop). The delete here runs the way another
client's does, on a connection of its own, at the exact moment that broke it: no sleep, no luck.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from nexusctl.core import events, webhooks
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.models import OutboxEvent, WebhookDelivery
from nexusctl.errors import IntegrationNotFound


@pytest.fixture(autouse=True)
def local_receivers(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")


def _hook(keyring, integration) -> uuid.UUID:
    row, _secret = webhooks.create(
        keyring, integration_id=integration.id, url="http://127.0.0.1:9/hook", events=["post.*"]
    )
    return row.id


class Elsewhere:
    """A change made by another client: its own thread and connection, committed on its own."""

    def __init__(self, change) -> None:
        self.failures: list = []

        def run() -> None:
            try:
                change()
            except Exception as exc:  # noqa: BLE001 - the test reports it
                self.failures.append(exc)
            finally:
                database_proxy.close()

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def done(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive() and not self.failures, self.failures


def _between_read_and_write(monkeypatch, change) -> list:
    """Make ``change`` on another connection right after emit_many's first read of the webhooks. Where that read
    is outside the write's transaction (PostgreSQL) the change commits before the write; inside it (SQLite, whose
    transaction holds the write lock) the change waits for the emit's commit. Returns the changes made."""
    real, made = events._subjects, []

    def read(ids, **kwargs):
        found = real(ids, **kwargs)
        if not made:
            made.append(Elsewhere(change))
            if not database_proxy.in_transaction():
                made[0].done()
        return found

    monkeypatch.setattr(events, "_subjects", read)
    return made


def test_a_webhook_deleted_between_the_read_and_the_write_is_left_out(database, make_integration, keyring, monkeypatch):
    integration = make_integration()
    kept, gone = _hook(keyring, integration), _hook(keyring, integration)
    made = _between_read_and_write(monkeypatch, lambda: webhooks.delete(gone))
    answer = events.emit(integration.id, "post.created", {"n": 1})
    made[0].done()
    # Written, and no delivery to the deleted webhook is left (on SQLite the delete came after the commit and
    # took the delivery with it; on PostgreSQL it came before the write, which left the webhook out).
    assert OutboxEvent.get_by_id(uuid.UUID(answer["id"])).type == "post.created"
    assert [d.webhook_id for d in WebhookDelivery.select()] == [kept]
    assert answer["deliveriesQueued"] == (1 if is_postgres(database) else 2)


def test_a_batch_goes_whole_when_one_integrations_webhook_is_deleted_meanwhile(
    database, make_integration, keyring, monkeypatch
):
    first, second = make_integration(), make_integration()
    kept, gone = _hook(keyring, first), _hook(keyring, second)
    made = _between_read_and_write(monkeypatch, lambda: webhooks.delete(gone))
    answers = events.emit_many(
        [(first.id, "post.created", {"n": n}, None) for n in range(3)] + [(second.id, "post.created", {}, None)]
    )
    made[0].done()
    assert all(isinstance(a, dict) for a in answers), answers
    assert OutboxEvent.select().where(OutboxEvent.type == "post.created").count() == 4
    assert {d.webhook_id for d in WebhookDelivery.select()} == {kept}


def test_an_integration_deleted_between_the_read_and_the_write_is_not_found(
    database, make_integration, keyring, monkeypatch
):
    from nexusctl.db.models import Integration

    integration = make_integration()
    _hook(keyring, integration)
    made = _between_read_and_write(
        monkeypatch, lambda: Integration.delete().where(Integration.id == integration.id).execute()
    )
    if is_postgres(database):
        # Gone before the write: its event is refused alone, as for any integration that is not there.
        (answer,) = events.emit_many([(integration.id, "post.created", {}, None)])
        assert isinstance(answer, IntegrationNotFound)
        assert OutboxEvent.select().where(OutboxEvent.type == "post.created").count() == 0
    else:
        events.emit(integration.id, "post.created", {})  # written first, then the delete took its webhooks
    made[0].done()
    assert WebhookDelivery.select().count() == 0


def test_the_second_try_holds_the_webhooks_it_read(database, make_integration, keyring, monkeypatch):
    """The write after a foreign-key failure runs in a transaction that locks the webhooks it read: a webhook
    deleted after that read and before the lock is left out, and one deleted later waits for the commit."""
    if not is_postgres(database):
        pytest.skip("PostgreSQL's second try: on SQLite the first write cannot fail so (its transaction's lock)")
    integration = make_integration()
    kept, first, second = (_hook(keyring, integration) for _ in range(3))
    _between_read_and_write(monkeypatch, lambda: webhooks.delete(first))
    real_hold, late = events._hold, []

    def hold(hooks):
        elsewhere = Elsewhere(lambda: webhooks.delete(second))
        elsewhere.done()  # committed between the second read and its lock
        real_hold(hooks)
        late.append(Elsewhere(lambda: webhooks.delete(kept)))  # waits for the emit's commit

    monkeypatch.setattr(events, "_hold", hold)
    answer = events.emit(integration.id, "post.created", {})
    late[0].done()
    assert answer["deliveriesQueued"] == 1  # only ``kept``: deleted after the commit, with its delivery
    assert WebhookDelivery.select().count() == 0
    assert OutboxEvent.select().where(OutboxEvent.type == "post.created").count() == 1
