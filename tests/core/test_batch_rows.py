"""The written-out batch statements (db.statements.insert_many and its callers) write every row with every column,
on SQLite and PostgreSQL alike: an emit batch's outbox events and deliveries, a record batch's delivery updates,
attempts, outbox events and webhook state."""

from __future__ import annotations

import datetime as dt
import uuid

from nexusctl.core import attempts, deliveries, events
from nexusctl.core.attempts import Result
from nexusctl.db import statements
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, Provider
from nexusctl.errors import IntegrationNotFound, UsageProblem

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_an_emit_batch_writes_every_event_and_delivery_with_its_columns(database, make_integration):
    one = make_integration(provider=Provider.SHOPIFY)
    two = make_integration(provider=Provider.SLACK)
    all_hook = Webhook.create(integration=one, url="http://127.0.0.1:9/a", events=["*"])
    media_hook = Webhook.create(integration=one, url="http://127.0.0.1:9/b", events=["post.*"])
    Webhook.create(integration=one, url="http://127.0.0.1:9/c", events=["*"], is_active=False)
    other_hook = Webhook.create(integration=two, url="http://127.0.0.1:9/d", events=["note.created"])
    items = [
        (one.id, "post.created", {"n": 1, "integrationId": "forged"}, None, PARENT),
        (two.id, "note.created", {"n": 2}, two.user_id),
        (one.id, "note.created", {"n": 3, "nested": {"a": [1, None, "é"]}}, one.user_id),
        (two.id, "note.created", {"n": 4}, uuid.uuid4()),  # not this user's: refused alone
        (one.id, "integration.connected", {}, None),  # reserved: refused alone
    ]
    before = utcnow()
    outcomes = events.emit_many(items)
    assert isinstance(outcomes[3], IntegrationNotFound) and isinstance(outcomes[4], UsageProblem)
    assert [o["deliveriesQueued"] for o in outcomes[:3]] == [2, 1, 1]

    rows = {e.id: e for e in OutboxEvent.select()}
    assert set(rows) == {uuid.UUID(o["id"]) for o in outcomes[:3]}
    written = [rows[uuid.UUID(o["id"])] for o in outcomes[:3]]
    for event, (integration, event_type, data, *_), subject in zip(written, items, (one, two, one), strict=False):
        assert event.type == event_type and event.integration_id == subject.id and event.user_id == subject.user_id
        assert event.data == {
            **data,
            "integrationId": str(subject.id),  # the subject wins over the caller's data
            "userId": str(subject.user_id),
            "provider": subject.provider.value,
        }
        assert event.published_at is None and event.created_at == event.updated_at >= before - dt.timedelta(seconds=1)
    assert written[0].created_at < written[2].created_at  # one integration's events keep the given order
    assert written[0].trace_parent == PARENT

    queued = list(WebhookDelivery.select().order_by(WebhookDelivery.created_at, WebhookDelivery.webhook))
    assert sorted((d.webhook_id, d.event) for d in queued) == sorted(
        [
            (all_hook.id, "post.created"),
            (media_hook.id, "post.created"),
            (other_hook.id, "note.created"),
            (all_hook.id, "note.created"),
        ]
    )
    for delivery in queued:
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
        assert delivery.next_attempt_at == delivery.created_at == delivery.updated_at
        assert delivery.lease_until is None and delivery.lease_token is None and delivery.response is None
        assert delivery.payload["type"] == delivery.event
        assert delivery.payload["timestamp"] == delivery.created_at.isoformat().replace("+00:00", "Z")
    first = next(d for d in queued if d.webhook_id == media_hook.id)
    assert first.payload["data"] == {
        "n": 1,
        "integrationId": str(one.id),
        "userId": str(one.user_id),
        "provider": "SHOPIFY",
    }
    assert first.trace_parent == PARENT
    nested = next(d for d in queued if d.webhook_id == all_hook.id and d.event == "note.created")
    assert nested.payload["data"]["nested"] == {"a": [1, None, "é"]}


def test_a_record_batch_writes_every_outcome_attempt_event_and_webhook_state(database, make_integration):
    integration = make_integration()
    ok_hook = Webhook.create(integration=integration, url="http://127.0.0.1:9/ok", events=["*"])
    bad_hook = Webhook.create(integration=integration, url="http://127.0.0.1:9/bad", events=["*"])
    for n in range(3):
        deliveries.fan_out(integration, "post.created", {"n": n})
    claimed = deliveries.claim(10, 30)
    assert len(claimed) == 6
    started = utcnow()
    plan = {}
    for item in claimed:
        if item.webhook_id == ok_hook.id:
            plan[item.id] = Result(started_at=started, duration_ms=7, status_code=200, body="fine")
        elif item.payload["data"]["n"] == 0:
            plan[item.id] = Result(started_at=started, duration_ms=9, error="timed out after 15 s")
        else:
            plan[item.id] = Result(started_at=started, duration_ms=11, status_code=500, body="x" * 5000)
    outcomes = attempts.record_many([(item, plan[item.id]) for item in claimed], (5, 300))
    assert sorted(outcomes) == ["delivered"] * 3 + ["retrying"] * 3

    logged = {a.delivery_id: a for a in WebhookAttempt.select()}
    assert set(logged) == {item.id for item in claimed}
    for item in claimed:
        attempt, result = logged[item.id], plan[item.id]
        assert attempt.number == 1 and attempt.started_at == started and attempt.duration_ms == result.duration_ms
        assert attempt.status_code == result.status_code and attempt.error == result.error
        assert attempt.response_body == (result.body[: deliveries.RESPONSE_MAX] if result.body else None)
        row = WebhookDelivery.get_by_id(item.id)
        assert row.attempts == 1 and row.lease_token is None and row.lease_until is None
        if result.status_code == 200:
            assert row.status == DeliveryStatus.DELIVERED and row.delivered_at is not None
            assert row.response == {"status": 200, "body": "fine"} and row.next_attempt_at is None
        else:
            assert row.status == DeliveryStatus.RETRYING and row.delivered_at is None
            assert row.error == (result.error or "HTTP 500") and row.next_attempt_at > row.updated_at

    published = list(OutboxEvent.select().where(OutboxEvent.type == "webhook.delivered"))
    assert len(published) == 3
    for event in published:
        assert event.user_id == integration.user_id and event.integration_id == integration.id
        assert event.data["webhookId"] == str(ok_hook.id) and event.data["attempts"] == 1
        assert uuid.UUID(event.data["deliveryId"]) in {i.id for i in claimed if i.webhook_id == ok_hook.id}
    ok, bad = Webhook.get_by_id(ok_hook.id), Webhook.get_by_id(bad_hook.id)
    assert ok.failing_since is None and ok.last_triggered_at is not None
    assert bad.failing_since is not None and bad.last_triggered_at == bad.failing_since
    assert deliveries.claim(10, 30) == []  # the delivered ones are done, the retries not due yet


def test_insert_many_goes_in_bounded_statements(database, make_integration, monkeypatch):
    integration = make_integration()
    monkeypatch.setattr(statements, "CHUNK", 2)
    now = utcnow()
    rows = [(uuid.uuid4(), "x.y", None, integration.id, {"k": k}, now, now, None) for k in range(5)]
    statements.insert_many(OutboxEvent, events.OUTBOX_COLUMNS, rows)
    found = {e.id: e for e in OutboxEvent.select()}
    assert set(found) == {r[0] for r in rows}
    assert sorted(e.data["k"] for e in found.values()) == list(range(5))
    assert all(e.user_id is None and e.trace_parent is None for e in found.values())


def test_a_webhook_created_or_disabled_is_seen_by_the_next_emit(database, make_integration):
    """The emit's statements are prepared on PostgreSQL (a generic plan after five runs): each emit still reads
    the integration's webhooks as they are now."""
    integration = make_integration()
    hooks = []
    for round_ in range(8):
        if round_ % 2 == 0:
            hooks.append(Webhook.create(integration=integration, url=f"http://127.0.0.1:9/{round_}", events=["*"]))
        else:
            Webhook.update(is_active=False).where(Webhook.id == hooks[-1].id).execute()  # as `webhooks update`
        active = 1 if round_ % 2 == 0 else 0  # the one just created, or none: the last one is disabled
        [outcome] = events.emit_many([(integration.id, "post.created", {"round": round_}, integration.user_id)])
        assert outcome["deliveriesQueued"] == active
    assert WebhookDelivery.select().count() == 4


def test_emits_behind_a_pooler_that_loses_prepared_statements_still_write_everything(pg_database, monkeypatch):
    """The emit batch's prepared statements (statements.run_typed) on a server connection that never saw their
    PREPARE: the emit is answered and written all the same, and the process stops preparing."""
    monkeypatch.setattr(statements, "_off", False)
    integration = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name="@someone")
    statements.insert(integration)
    Webhook.create(integration=integration, url="http://127.0.0.1:9/a", events=["*"])
    first = events.emit_many([(integration.id, "post.created", {"n": 1}, None)])
    pg_database.execute_sql("DEALLOCATE ALL")  # as if the next call went to another server connection
    second = events.emit_many([(integration.id, "post.created", {"n": 2}, None)] * 3)
    assert statements._off is True
    assert [o["deliveriesQueued"] for o in first + second] == [1, 1, 1, 1]
    assert OutboxEvent.select().count() == 4 and WebhookDelivery.select().count() == 4


def test_claims_and_records_survive_a_pooler_that_loses_their_prepared_statements(
    database, make_integration, monkeypatch, caplog
):
    """Behind a pooler sharing server connections, the claim's and the record's prepared statements vanish between
    calls: the claim and the record batch that find them gone run again as text, at once; nothing is lost or
    recorded one at a time, and preparing stops."""
    monkeypatch.setattr(statements, "_off", False)
    integration = make_integration()
    hook = Webhook.create(integration=integration, url="http://127.0.0.1:9/a", events=["*"])
    for n in range(4):
        deliveries.fan_out(integration, "post.created", {"n": n})

    def claim_and_record(count):
        claimed = deliveries.claim(count, 30)
        started = utcnow()
        results = [(item, Result(started_at=started, duration_ms=3, status_code=200, body="ok")) for item in claimed]
        return claimed, attempts.record_many(results, (5, 300))

    first, outcomes = claim_and_record(2)  # prepares them (PostgreSQL)
    assert len(first) == 2 and outcomes == ["delivered"] * 2
    if statements.is_postgres(database):
        database.execute_sql("DEALLOCATE ALL")  # as if the next calls went to another server connection
    second, outcomes = claim_and_record(2)
    assert len(second) == 2 and outcomes == ["delivered"] * 2
    assert not {i.id for i in first} & {i.id for i in second}
    assert statements._off is statements.is_postgres(database)
    assert "one at a time" not in caplog.text
    assert WebhookAttempt.select().count() == 4
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.DELIVERED).count() == 4
    assert Webhook.get_by_id(hook.id).last_triggered_at is not None
