"""Recording delivery outcomes: fencing, the retry schedule, auto-disable after 5 days."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

import pytest
from support import clock as shared_clock

from nexusctl.core import attempts, deliveries
from nexusctl.core.attempts import Result
from nexusctl.db.fields import utcnow
from nexusctl.db.models import OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus

SCHEDULE = (5, 300)


def _queued(make_integration, count=1, **hook):
    integration = make_integration()
    webhook = Webhook.create(integration=integration, url="http://127.0.0.1:9/h", events=["*"], **hook)
    for i in range(count):
        deliveries.fan_out(integration, "media.created", {"i": i})
    return webhook, deliveries.claim(count, 30)


def _result(code=None, **kw):
    return Result(started_at=utcnow(), duration_ms=3, status_code=code, **kw)


def test_recorded_attempts_and_events_get_distinct_random_uuids(database, make_integration):
    """The ids of a batch's attempt rows and outbox events (made from one read of the random source on SQLite, by
    gen_random_uuid() on PostgreSQL) are version 4 UUIDs, none repeated, and read back as UUIDs on either database."""
    _, claimed = _queued(make_integration, 30)
    attempts.record_many([(c, _result(200)) for c in claimed[:15]], SCHEDULE)
    attempts.record_many([(c, _result(200)) for c in claimed[15:]], SCHEDULE)
    ids = [a.id for a in WebhookAttempt.select()] + [e.id for e in OutboxEvent.select()]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert all(isinstance(i, uuid.UUID) and i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)


def test_a_lost_lease_records_nothing(database, make_integration):
    _, (claimed,) = _queued(make_integration)
    WebhookDelivery.update(lease_token=None).execute()  # another worker took it over
    assert attempts.record_many([(claimed, _result(200))], SCHEDULE) == ["lost"]
    assert WebhookAttempt.select().count() == 0
    assert WebhookDelivery.get().status == DeliveryStatus.PENDING


def test_a_batch_applies_each_rule(database, make_integration):
    _, claimed = _queued(make_integration, 3)
    outcomes = attempts.record_many(
        [
            (claimed[0], _result(200, body="ok")),
            (claimed[1], _result(500)),
            (claimed[2], _result(None, error="timed out after 15 s")),
        ],
        SCHEDULE,
    )
    assert outcomes == ["delivered", "retrying", "retrying"]
    by_id = {d.id: d for d in WebhookDelivery.select()}
    assert by_id[claimed[0].id].status == DeliveryStatus.DELIVERED and by_id[claimed[0].id].response["body"] == "ok"
    retry = by_id[claimed[1].id]
    assert retry.status == DeliveryStatus.RETRYING and retry.error == "HTTP 500" and retry.lease_token is None
    assert 4 <= (retry.next_attempt_at - retry.updated_at).total_seconds() <= 6  # 5 s +- 20%
    assert by_id[claimed[2].id].error == "timed out after 15 s"
    assert WebhookAttempt.select().count() == 3


def test_five_days_failing_without_a_success_disables_the_webhook(database, make_integration):
    webhook, (claimed,) = _queued(make_integration, failing_since=utcnow() - dt.timedelta(days=5, minutes=1))
    integration = webhook.integration
    for i in range(2):  # two more queued behind it, one of them already retrying
        deliveries.fan_out(integration, "media.created", {"later": i})
    retrying = WebhookDelivery.select().where(WebhookDelivery.id != claimed.id).first()
    WebhookDelivery.update(status=DeliveryStatus.RETRYING).where(WebhookDelivery.id == retrying.id).execute()
    assert attempts.record_many([(claimed, _result(503))], SCHEDULE) == ["disabled"]
    again = Webhook.get_by_id(webhook.id)
    assert again.is_active is False and "5 days" in again.disabled_reason
    event = OutboxEvent.get(OutboxEvent.type == "integration.error")
    assert event.data["code"] == "WEBHOOK_DISABLED"
    # Nothing is left queued to a webhook the worker will not send to: the rest end FAILED, saying why.
    rest = list(WebhookDelivery.select().where(WebhookDelivery.id != claimed.id))
    assert [d.status for d in rest] == [DeliveryStatus.FAILED] * 2, [d.status for d in rest]
    assert all(d.error.startswith("webhook disabled: ") and d.next_attempt_at is None for d in rest)


def test_the_disable_fails_a_backlog_bigger_than_a_statement_and_leaves_a_leased_delivery(
    database, make_integration, monkeypatch
):
    """The disable ends FAILED every queued delivery in statements of DISABLE_BATCH rows, each with its
    ``webhook.failed`` event, and leaves alone one another worker holds under a live lease (its result decides)."""
    monkeypatch.setattr(attempts, "DISABLE_BATCH", 2)  # the 6 queued ones in 3 statements (and one finding none)
    webhook, (claimed,) = _queued(make_integration, failing_since=utcnow() - dt.timedelta(days=5, minutes=1))
    for i in range(7):
        deliveries.fan_out(webhook.integration, "media.created", {"later": i})
    (held,) = deliveries.claim(1, 300)  # another worker is sending this one
    assert attempts.record_many([(claimed, _result(503))], SCHEDULE) == ["disabled"]
    rows = {d.id: d for d in WebhookDelivery.select()}
    assert rows[held.id].status == DeliveryStatus.PENDING and rows[held.id].lease_token == held.lease
    rest = [d for i, d in rows.items() if i not in (claimed.id, held.id)]
    assert len(rest) == 6 and {d.status for d in rest} == {DeliveryStatus.FAILED}
    assert {d.error for d in rest} == {"webhook disabled: failing for 5 days without a successful delivery"}
    failed = [e.data for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")]
    # One each (and one for the delivery whose attempt disabled it), none for the leased one.
    assert sorted(e["deliveryId"] for e in failed) == sorted(str(i) for i in [claimed.id, *(d.id for d in rest)])


def test_four_days_failing_keeps_it_and_a_success_clears_the_window(database, make_integration):
    webhook, claimed = _queued(make_integration, 2, failing_since=utcnow() - dt.timedelta(days=4))
    assert attempts.record_many([(claimed[0], _result(500))], SCHEDULE) == ["retrying"]
    assert Webhook.get_by_id(webhook.id).is_active is True
    assert attempts.record_many([(claimed[1], _result(204))], SCHEDULE) == ["delivered"]
    assert Webhook.get_by_id(webhook.id).failing_since is None


def test_only_the_rows_whose_lease_still_holds_are_written(database, make_integration):
    _, claimed = _queued(make_integration, 3)
    WebhookDelivery.update(lease_token=None).where(WebhookDelivery.id == claimed[1].id).execute()
    outcomes = attempts.record_many([(c, _result(200, body="ok")) for c in claimed], SCHEDULE)
    assert outcomes == ["delivered", "lost", "delivered"]
    assert {a.delivery_id for a in WebhookAttempt.select()} == {claimed[0].id, claimed[2].id}
    assert OutboxEvent.select().where(OutboxEvent.type == "webhook.delivered").count() == 2
    assert WebhookDelivery.get_by_id(claimed[1].id).status == DeliveryStatus.PENDING


def test_one_batch_for_two_webhooks_sets_each_ones_failure_window(database, make_integration):
    ok_hook, (ok,) = _queued(make_integration, failing_since=utcnow() - dt.timedelta(days=1))
    bad_hook, (bad,) = _queued(make_integration)
    assert attempts.record_many([(ok, _result(200)), (bad, _result(500))], SCHEDULE) == ["delivered", "retrying"]
    assert Webhook.get_by_id(ok_hook.id).failing_since is None
    again = Webhook.get_by_id(bad_hook.id)
    assert again.failing_since is not None and again.last_triggered_at is not None


def test_a_throttled_answer_waits_the_step_at_least_and_twice_it_at_most(database, make_integration):
    _, claimed = _queued(make_integration, 3)
    outcomes = attempts.record_many(
        [
            (claimed[0], _result(429, retry_after=0)),
            (claimed[1], _result(503, retry_after=86400)),
            (claimed[2], _result(429)),
        ],
        SCHEDULE,
    )
    assert outcomes == ["retrying"] * 3
    waits = {d.id: (d.next_attempt_at - d.updated_at).total_seconds() for d in WebhookDelivery.select()}
    assert 5 <= waits[claimed[0].id] <= 6  # never before the schedule's 5 s, whatever Retry-After says
    assert waits[claimed[1].id] == 10  # a day asked, twice the step given
    assert 5 <= waits[claimed[2].id] <= 6


def test_a_throttled_answer_after_the_last_step_fails_the_delivery(database, make_integration):
    _, (claimed,) = _queued(make_integration)
    WebhookDelivery.update(attempts=len(SCHEDULE)).execute()
    claimed.attempts = len(SCHEDULE)
    assert attempts.record_many([(claimed, _result(429, retry_after=1))], SCHEDULE) == ["failed"]
    assert WebhookDelivery.get().status == DeliveryStatus.FAILED
    assert OutboxEvent.get(OutboxEvent.type == "webhook.failed").data["attempts"] == len(SCHEDULE) + 1


def test_a_claim_takes_of_each_endpoint_only_what_fits_its_free_slots(database, make_integration):
    integration = make_integration()
    hot = Webhook.create(integration=integration, url="http://127.0.0.1:9/hot", events=["hot.*"])
    Webhook.create(integration=integration, url="http://127.0.0.1:9/calm", events=["calm.*"])
    for i in range(10):
        deliveries.fan_out(integration, "hot.event", {"i": i})
    deliveries.fan_out(integration, "calm.event", {})
    # The hot endpoint has 1 free slot of its 3 (2 in flight), the calm one its cap: nothing is claimed
    # beyond that, so nothing has to be handed back.
    claimed = deliveries.claim(50, 30, rooms={hot.id: 1}, cap=3)
    assert sorted(c.webhook_id == hot.id for c in claimed) == [False, True]
    leased = WebhookDelivery.select().where(WebhookDelivery.lease_token.is_null(False)).count()
    assert leased == 2
    more = deliveries.claim(50, 30, cap=3)  # none in flight now: up to the cap of each
    assert [c.webhook_id for c in more] == [hot.id] * 3
    assert deliveries.claim(50, 30, exclude=[hot.id], cap=3) == []


def test_repeated_claims_lease_each_row_once_within_the_asked_count_and_rooms(database, make_integration):
    """Seven claims of 3 (the head reads more rows than it picks when endpoints are at their room), then one
    of 50: never more than asked, each row once, each endpoint within its room."""
    integration = make_integration()
    hot = Webhook.create(integration=integration, url="http://127.0.0.1:9/hot", events=["hot.*"])
    calm = Webhook.create(integration=integration, url="http://127.0.0.1:9/calm", events=["calm.*"])
    for i in range(30):
        deliveries.fan_out(integration, "hot.event" if i % 3 else "calm.event", {"i": i})
    seen = []
    for _ in range(7):
        claimed = deliveries.claim(3, 30, rooms={hot.id: 2}, cap=5)
        assert len(claimed) <= 3 and sum(c.webhook_id == hot.id for c in claimed) <= 2
        seen += claimed
    rest = deliveries.claim(50, 30, cap=50)
    ids = [c.id for c in seen + rest]
    assert len(ids) == len(set(ids)) == 30
    assert {c.webhook_id for c in rest} <= {hot.id, calm.id}
    leased = WebhookDelivery.select().where(WebhookDelivery.lease_token.is_null(False)).count()
    assert leased == 30 and deliveries.claim(50, 30) == []


def test_signing_secrets_are_opened_once_and_a_rotation_is_seen_at_once(database, make_integration, keyring):
    from nexusctl.core import webhooks

    hook, secret = webhooks.create(
        keyring, integration_id=make_integration().id, url="http://127.0.0.1:9/h", events=["*"]
    )
    deliveries.SECRETS.clear()
    assert deliveries.signing_for(keyring, [hook.id])[0][hook.id] == (hook.url, [secret])
    assert deliveries.signing_for(keyring, [hook.id])[0][hook.id] == (hook.url, [secret])  # from the cache
    _, new_secret = webhooks.rotate_secret(keyring, hook.id)
    assert deliveries.signing_for(keyring, [hook.id])[0][hook.id] == (hook.url, [new_secret, secret])


def test_a_renewal_moves_on_only_the_leases_still_held(database, make_integration, monkeypatch, tmp_path):
    _, claimed = _queued(make_integration, 3)  # leased for 30 s
    offset = tmp_path / "clock"
    offset.write_text("60")  # the product's clock a minute on: every lease has run out
    shared_clock.use_file(monkeypatch, offset)
    (taken,) = deliveries.claim(1, 30)  # another worker claims one of them
    kept, until = deliveries.renew([(c.id, c.lease) for c in claimed], 30)
    assert kept == {c.id for c in claimed} - {taken.id}  # one statement: the held ones move on, the taken one not
    leases = {
        i: (t, u)
        for i, t, u in WebhookDelivery.select(
            WebhookDelivery.id, WebhookDelivery.lease_token, WebhookDelivery.lease_until
        ).tuples()
    }
    assert all(abs(leases[i][1].timestamp() - until) < 0.001 for i in kept)
    assert leases[taken.id][0] == taken.lease  # the other worker's lease is untouched
    lost = next(c for c in claimed if c.id == taken.id)
    assert attempts.record_many([(lost, _result(200))], SCHEDULE) == ["lost"]
    assert deliveries.renew([], 30)[0] == set()


def test_a_row_the_database_refuses_holds_none_of_the_others(database, make_integration, caplog):
    """A value no database column takes (a duration beyond any integer) in one outcome: the batch is recorded one
    delivery at a time; the others are recorded as they were, the bad one without its answer."""
    _, claimed = _queued(make_integration, 3)
    bad = Result(started_at=utcnow(), duration_ms=2**64, status_code=500, body="boom")
    outcomes = attempts.record_many(
        [(claimed[0], _result(200, body="ok")), (claimed[1], bad), (claimed[2], _result(None, error="timed out"))],
        SCHEDULE,
    )
    assert outcomes == ["delivered", "retrying", "retrying"]
    by_id = {d.id: d for d in WebhookDelivery.select()}
    assert by_id[claimed[0].id].status == DeliveryStatus.DELIVERED and by_id[claimed[0].id].response["body"] == "ok"
    assert by_id[claimed[1].id].response == {"status": 500, "body": ""} and by_id[claimed[1].id].error == "HTTP 500"
    assert by_id[claimed[2].id].error == "timed out"
    assert all(d.lease_token is None and d.attempts == 1 for d in by_id.values())
    assert WebhookAttempt.select().count() == 3
    assert f"delivery {claimed[1].id}: its outcome could not be stored" in caplog.text


def test_a_nul_in_an_answer_or_an_error_is_stored_as_a_replacement_character(database, make_integration):
    _, claimed = _queued(make_integration, 2)
    outcomes = attempts.record_many(
        [(claimed[0], _result(500, body="a\x00b")), (claimed[1], _result(None, error="reset\x00by peer"))], SCHEDULE
    )
    assert outcomes == ["retrying", "retrying"]
    by_id = {d.id: d for d in WebhookDelivery.select()}
    assert by_id[claimed[0].id].response["body"] == "a\ufffdb"
    assert by_id[claimed[1].id].error == "reset\ufffdby peer"
    assert {a.response_body for a in WebhookAttempt.select()} == {"a\ufffdb", None}


def test_recorded_bodies_errors_and_events_read_back_as_the_outcomes_gave_them(database, make_integration):
    """PostgreSQL writes a record batch from one JSON document and builds the responses and events itself: every
    text comes back as given on both databases (quotes, backslashes, braces, commas, the word NULL, astral
    characters), cut where the Python side cuts it (the body at RESPONSE_MAX, the event's error at 300
    characters), and each event carries the webhook's integration, its user and the delivery's own values."""
    webhook, claimed = _queued(make_integration, 4)
    integration = webhook.integration
    odd = 'q"\\{a,b} NULL \U0001f600 é\t\n'
    results = [
        _result(200, body=odd),
        _result(500, body=odd * 400),
        _result(None, error=("x\U0001f600" + odd) * 40),
        _result(204),
    ]
    outcomes = attempts.record_many(list(zip(claimed, results)), (5,))
    assert outcomes == ["delivered", "retrying", "retrying", "delivered"]
    by_id = {d.id: d for d in WebhookDelivery.select()}
    logged = {a.delivery_id: a for a in WebhookAttempt.select()}
    for item, result in zip(claimed, results):
        row, attempt = by_id[item.id], logged[item.id]
        body = (result.body or "")[: deliveries.RESPONSE_MAX]
        assert attempt.response_body == (body or None) and attempt.error == result.error
        assert attempt.duration_ms == 3 and attempt.started_at == result.started_at and attempt.number == 1
        if result.status_code is None:
            assert row.response is None and row.error == result.error[:1000]
        else:
            assert row.response == {"status": result.status_code, "body": body}
        assert (row.delivered_at is not None) == (result.status_code in (200, 204))
    assert len(by_id[claimed[1].id].response["body"]) == deliveries.RESPONSE_MAX

    # A failure that ends the schedule (an empty one): its webhook.failed event carries the error, cut at 300.
    _, [last] = _queued(make_integration, 1)
    error = ("\U0001f600" + odd) * 40
    assert attempts.record_many([(last, _result(None, error=error))], ()) == ["failed"]
    [failed] = OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")
    assert failed.data == {
        "webhookId": str(last.webhook_id),
        "deliveryId": str(last.id),
        "event": "media.created",
        "attempts": 1,
        "error": error[:300],
    }
    events = {e.data["deliveryId"]: e for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.delivered")}
    assert set(events) == {str(claimed[0].id), str(claimed[3].id)}
    for item in (claimed[0], claimed[3]):
        event = events[str(item.id)]
        assert event.data == {
            "webhookId": str(webhook.id),
            "deliveryId": str(item.id),
            "event": "media.created",
            "attempts": 1,
        }
        assert (event.user_id, event.integration_id) == (integration.user_id, integration.id)


def test_a_webhook_disabled_by_several_410s_is_announced_once_and_its_held_deliveries_end_failed(
    database, make_integration
):
    """Review: each recorded 410 disabled the webhook again and emitted one more integration.error, without userId,
    provider or deliveryId. Now the transition alone announces it (about the delivery whose 410 did it); the
    deliveries a worker still holds unsent end FAILED as the queued ones do (``fail_held``), fenced by the lease."""
    webhook, claimed = _queued(make_integration, 5)
    integration = webhook.integration
    assert attempts.record_many([(claimed[0], _result(410))], SCHEDULE) == ["disabled"]
    assert attempts.record_many([(claimed[1], _result(410)), (claimed[2], _result(410))], SCHEDULE) == [
        "disabled",
        "disabled",
    ]
    (event,) = OutboxEvent.select().where(OutboxEvent.type == "integration.error")
    assert event.data == {
        "integrationId": str(integration.id),
        "userId": str(integration.user_id),
        "provider": integration.provider.value,
        "webhookId": str(webhook.id),
        "code": "WEBHOOK_DISABLED",
        "message": "webhook disabled: the receiver answered 410 Gone",
        "deliveryId": str(claimed[0].id),
    }
    stale = deliveries.Claimed(**{**claimed[4].__dict__, "lease": uuid.uuid4()})  # another worker's lease now
    assert attempts.fail_held([claimed[3], stale]) == 1
    held = WebhookDelivery.get_by_id(claimed[3].id)
    assert (held.status, held.error, held.lease_token) == (
        DeliveryStatus.FAILED,
        "webhook disabled: the receiver answered 410 Gone",
        None,
    )
    assert WebhookDelivery.get_by_id(claimed[4].id).status == DeliveryStatus.PENDING  # not this worker's to end
    failed = [e.data["deliveryId"] for e in OutboxEvent.select().where(OutboxEvent.type == "webhook.failed")]
    assert sorted(failed) == sorted(str(c.id) for c in claimed[:4])


def test_held_deliveries_of_a_webhook_enabled_again_are_given_back(database, make_integration):
    webhook, claimed = _queued(make_integration, 2)
    assert attempts.record_many([(claimed[0], _result(410))], SCHEDULE) == ["disabled"]
    Webhook.update(is_active=True, disabled_reason=None).where(Webhook.id == webhook.id).execute()
    assert attempts.fail_held([claimed[1]]) == 0
    again = WebhookDelivery.get_by_id(claimed[1].id)
    assert (again.status, again.lease_token) == (DeliveryStatus.PENDING, None)


@contextlib.contextmanager
def _moving_b_then_a(pg_database, postgres_url, a, b):
    """A writer of held rows in a session of its own: it moves B's lease, then (once PostgreSQL shows this session
    waiting for B's lock) A's, where A's id is the lower, with deadlock_timeout at 10 s so that this session's
    transaction is the one PostgreSQL aborts unless the machine stalls for seconds. Yields a list that holds True
    if PostgreSQL picked the writer after all."""
    import threading

    import psycopg2
    from psycopg2 import errors as pg_errors
    from support.waiting import wait_for

    ours = pg_database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    writer, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True
    holds_b, writer_lost = threading.Event(), []

    def ours_waits() -> bool:
        with watcher.cursor() as cur:
            cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (ours,))
            return cur.fetchone() == ("Lock",)

    def move_b_then_a():
        move = 'UPDATE "webhook_deliveries" SET "lease_until" = "lease_until" + interval \'1 s\' WHERE "id" = %s'
        try:
            with writer, writer.cursor() as cur:
                cur.execute("SET LOCAL deadlock_timeout = '10s'")
                cur.execute(move, (str(b.id),))
                holds_b.set()
                wait_for(ours_waits, 10, "this session to wait for B")
                cur.execute(move, (str(a.id),))
        except pg_errors.DeadlockDetected:
            writer_lost.append(True)  # a stalled machine

    thread = threading.Thread(target=move_b_then_a)
    thread.start()
    try:
        assert holds_b.wait(10)
        yield writer_lost
    finally:
        thread.join(15)
        writer.close()
        watcher.close()


@pytest.mark.postgres
def test_a_record_batch_that_a_renewal_deadlocks_with_is_run_again(pg_database, postgres_url, monkeypatch):
    """The worker's renewal and its record batch both update the held rows being recorded, each in its own
    transaction. They took them in no fixed row order, and PostgreSQL found them deadlocked and aborted the
    record. Aborted, the batch's deliveries were sent and never recorded, and were sent again once their leases
    ran out (two daemons under load sent 34 of 2,000 twice). Both lock in id order now (the next test); should
    a writer taking held rows in another order deadlock with a record all the same, the victim is run again and
    every outcome is recorded once.

    That writer is played by a session of its own that moves B's lease, then A's, where A's id is the lower
    (the record locks A first), with deadlock_timeout at 10 s so that the record is the one PostgreSQL aborts
    unless the machine stalls for seconds. It takes A only once PostgreSQL shows the record waiting
    (pg_stat_activity)."""

    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    Webhook.create(integration=integration, url="http://127.0.0.1:9/h", events=["*"])
    for i in range(2):
        deliveries.fan_out(integration, "media.created", {"i": i})
    a, b = sorted(deliveries.claim(2, 30), key=lambda c: c.id)
    runs = []
    batch_once = attempts._record_batch
    monkeypatch.setattr(attempts, "_record_batch", lambda *args: runs.append(1) or batch_once(*args))
    with _moving_b_then_a(pg_database, postgres_url, a, b) as renewal_lost:
        outcomes = attempts.record_many([(a, _result(200)), (b, _result(200))], SCHEDULE)
    assert outcomes == ["delivered", "delivered"]
    assert WebhookAttempt.select().count() == 2
    assert {d.status for d in WebhookDelivery.select()} == {DeliveryStatus.DELIVERED}
    assert len(runs) == 1 if renewal_lost else len(runs) >= 2  # the record was the victim, and ran again


@pytest.mark.postgres
def test_failing_held_rows_that_a_writer_deadlocks_with_is_run_again(pg_database, postgres_url, monkeypatch):
    """attempts.fail_held (a worker's held deliveries of a webhook its record just disabled) locks them in id order,
    as the renewal does; a writer taking them in another order (a session of its own: B, then A) deadlocks with it,
    and PostgreSQL aborts fail_held (the writer waits 10 s before it looks). Run again, it fails both: none is left
    under the worker's lease to be claimed and sent to the receiver that answered 410. Before, the deadlock error
    reached the worker, which logged it and left them for their leases to run out."""

    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    hook = Webhook.create(integration=integration, url="http://127.0.0.1:9/h", events=["*"])
    for i in range(2):
        deliveries.fan_out(integration, "media.created", {"i": i})
    a, b = sorted(deliveries.claim(2, 30), key=lambda c: c.id)
    Webhook.update(is_active=False, disabled_reason="the receiver answered 410 Gone").where(
        Webhook.id == hook.id
    ).execute()
    runs = []
    lock_once = deliveries.lock_held
    monkeypatch.setattr(deliveries, "lock_held", lambda items: runs.append(1) or lock_once(items))
    with _moving_b_then_a(pg_database, postgres_url, a, b) as writer_lost:
        failed = attempts.fail_held([a, b])
    assert failed == 2
    assert {d.status for d in WebhookDelivery.select()} == {DeliveryStatus.FAILED}
    assert OutboxEvent.select().where(OutboxEvent.type == "webhook.failed").count() == 2
    assert len(runs) == 1 if writer_lost else len(runs) >= 2  # fail_held was the victim, and ran again


def _hook_with_one_in_flight(keyring, make_integration, queued: int = 2):
    """A webhook with ``queued`` deliveries, one of them claimed (being sent): (the webhook, the claimed one)."""
    from nexusctl.core import webhooks

    integration = make_integration()
    hook = webhooks.create(keyring, integration_id=integration.id, url="https://hooks.example.com/a", events=["*"])[0]
    for n in range(queued):
        deliveries.fan_out(integration, "media.created", {"n": n})
    (sending,) = deliveries.claim(1, 30)
    return hook, sending


def _next_attempts(sending) -> dict:
    """{is the one being sent: (its status, whether it has a next attempt)} of every delivery."""
    return {
        row.id == sending.id: (row.status, row.next_attempt_at is not None)
        for row in WebhookDelivery.select().order_by(WebhookDelivery.id)
    }


def test_an_attempt_in_flight_when_its_webhook_is_switched_off_is_parked_when_it_is_to_be_retried(
    database, keyring, make_integration
):
    """The pause parks the queued deliveries, the one a daemon is sending too; when that one's send fails it is
    recorded for its retry still parked (no next attempt while the webhook is off), not due in an hour and walked
    past by every claim until then. Switched on, both are due at once."""
    from nexusctl.core import webhooks

    hook, sending = _hook_with_one_in_flight(keyring, make_integration)
    webhooks.update(hook.id, is_active=False)
    assert _next_attempts(sending) == {True: (DeliveryStatus.PENDING, False), False: (DeliveryStatus.PENDING, False)}
    assert attempts.record_many([(sending, _result(500))], (3600,)) == ["retrying"]
    assert _next_attempts(sending) == {True: (DeliveryStatus.RETRYING, False), False: (DeliveryStatus.PENDING, False)}
    webhooks.update(hook.id, is_active=True)
    assert _next_attempts(sending) == {True: (DeliveryStatus.RETRYING, True), False: (DeliveryStatus.PENDING, True)}
    assert len(deliveries.claim(10, 30)) == 2


def test_an_attempt_recorded_after_its_webhook_was_switched_off_and_on_again_keeps_its_retry_time(
    database, keyring, make_integration
):
    """Paused and resumed while one was being sent: its record is the row's own business, not what the webhook's
    flag was when the record read it (a resume that committed while the record waited for the webhook's lock left
    a retry parked on a webhook that was on: never sent). Resumed, its retry is due at its schedule's time."""
    from nexusctl.core import webhooks

    hook, sending = _hook_with_one_in_flight(keyring, make_integration)
    webhooks.update(hook.id, is_active=False)
    webhooks.update(hook.id, is_active=True)
    assert attempts.record_many([(sending, _result(500))], (3600,)) == ["retrying"]
    row = WebhookDelivery.get_by_id(sending.id)
    assert row.status == DeliveryStatus.RETRYING and row.next_attempt_at > utcnow() + dt.timedelta(
        minutes=30
    )  # an hour, jittered


def test_a_switch_is_decided_on_the_webhook_as_it_is_when_it_is_written(
    database, keyring, make_integration, monkeypatch
):
    """A resume whose request read the webhook while it was still on (a pause committed between that read and the
    resume's write) still makes the paused deliveries due: whether it switches is decided under the row's lock.
    Before, it compared with the row read first, saw no switch, and the deliveries stayed parked for good."""
    from nexusctl.core import webhooks

    hook, sending = _hook_with_one_in_flight(keyring, make_integration, queued=3)
    read_before_the_pause, get = webhooks.get(hook.id), webhooks.get
    webhooks.update(hook.id, is_active=False)
    monkeypatch.setattr(webhooks, "get", lambda *a, **kw: read_before_the_pause)
    webhooks.update(hook.id, is_active=True)
    monkeypatch.setattr(webhooks, "get", get)
    assert all(due for _, due in _next_attempts(sending).values())
    assert Webhook.get_by_id(hook.id).is_active


def test_a_large_backlog_is_parked_and_made_due_a_batch_a_transaction(database, keyring, make_integration, monkeypatch):
    """Park and unpark go PARK_BATCH rows a transaction (one transaction for a backlog of 200,000 held the locks
    the records of the webhook's deliveries in flight wait for): every row is moved all the same."""
    from nexusctl.core import webhooks

    monkeypatch.setattr(deliveries, "PARK_BATCH", 2)
    hook, sending = _hook_with_one_in_flight(keyring, make_integration, queued=7)
    webhooks.update(hook.id, is_active=False)
    assert not any(due for _, due in _next_attempts(sending).values())
    webhooks.update(hook.id, is_active=True)
    assert WebhookDelivery.select().where(WebhookDelivery.next_attempt_at.is_null()).count() == 0


def test_deliveries_queued_at_the_same_instant_are_each_replayed_and_parked_once(
    database, keyring, make_integration, monkeypatch
):
    """A batched replay and a park or unpark go in pages along (created_at, id): a fan-out's deliveries share their
    created_at, and the id orders them within it, so a page that ends among them leaves none out and takes none
    twice (a page after the last created_at alone skipped the rest of that instant)."""
    monkeypatch.setattr(deliveries, "PARK_BATCH", 2)
    hook, _ = _hook_with_one_in_flight(keyring, make_integration, queued=5)
    moment = utcnow() - dt.timedelta(seconds=1)
    WebhookDelivery.update(created_at=moment).execute()
    pages = []
    replayed = deliveries.replay(hook.id, since=moment, batch_size=2, progress=pages.append)
    assert (replayed.queued, replayed.skipped, pages) == (4, 1, [2, 2, 1])  # the one being sent is left alone
    Webhook.update(is_active=False).where(Webhook.id == hook.id).execute()
    assert deliveries.park(hook.id) == 5
    assert WebhookDelivery.select().where(WebhookDelivery.next_attempt_at.is_null(False)).count() == 0
    Webhook.update(is_active=True).where(Webhook.id == hook.id).execute()
    assert deliveries.unpark(hook.id) == 5
    assert WebhookDelivery.select().where(WebhookDelivery.next_attempt_at.is_null()).count() == 0


def test_housekeeping_mends_the_parking_a_switch_left_undone(database, keyring, make_integration):
    """A resume that stopped before its batches were done (or a webhook switched on by an older nexusctl, which
    knows nothing of parking) leaves parked deliveries on a webhook that is on, which no claim would ever reach;
    an emit that read the webhook as on just before a pause leaves due ones on a webhook that is off, walked past by
    every claim. Housekeeping makes the first due and parks the second; the others stay as they are."""
    from nexusctl.core import housekeeping, webhooks

    resumed, sending = _hook_with_one_in_flight(keyring, make_integration, queued=3)
    paused, _ = _hook_with_one_in_flight(keyring, make_integration, queued=2)
    still_off, _ = _hook_with_one_in_flight(keyring, make_integration, queued=2)
    for hook in (resumed, paused, still_off):
        webhooks.update(hook.id, is_active=False)
    Webhook.update(is_active=True).where(Webhook.id == resumed.id).execute()  # on again, its deliveries not moved
    late = WebhookDelivery.select().where(WebhookDelivery.webhook == paused.id).first()
    WebhookDelivery.update(next_attempt_at=utcnow()).where(WebhookDelivery.id == late.id).execute()  # queued late
    counts = housekeeping.run(30)
    assert (counts["unparked"], counts["parked"]) == (3, 1)
    due = {(r.webhook_id, r.next_attempt_at is not None) for r in WebhookDelivery.select()}
    assert due == {(resumed.id, True), (paused.id, False), (still_off.id, False)}


@pytest.mark.postgres
def test_a_pause_and_a_resume_that_cross_leave_the_deliveries_due(pg_database, postgres_url, keyring, monkeypatch):
    """A pause's park batch held up by a row a record batch has locked, and a resume committed meanwhile: the
    resume waits for the batch (the webhook's switch lock), then makes every delivery due. Before, the resume
    committed and unparked nothing (the batch had not committed), then the batch parked them all on a webhook that
    was on: never claimed until housekeeping."""
    import threading

    import psycopg2
    from support.waiting import wait_for

    from nexusctl.core import webhooks
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    hook = webhooks.create(keyring, integration_id=integration.id, url="https://hooks.example.com/a", events=["*"])[0]
    for n in range(3):
        deliveries.fan_out(integration, "media.created", {"n": n})
    record, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True

    def waiters() -> int:
        return _lock_waiters(watcher)

    record_cursor = record.cursor()  # a record batch holding one of the webhook's deliveries
    record_cursor.execute('SELECT "id" FROM "webhook_deliveries" ORDER BY "id" LIMIT 1 FOR NO KEY UPDATE')
    errors = []

    def run(name, active):
        try:
            with pg_database.connection_context():  # a connection of this thread's own, as another request's
                webhooks.update(hook.id, is_active=active)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((name, exc))

    pause = threading.Thread(target=run, args=("pause", False))
    pause.start()
    wait_for(lambda: waiters() == 1, 10, "the pause's park batch to wait for the locked row")
    resume = threading.Thread(target=run, args=("resume", True))
    resume.start()
    wait_for(lambda: waiters() == 2, 10, "the resume to wait for the park batch")
    record.rollback()  # the record batch ends
    pause.join(15)
    resume.join(15)
    record.close()
    watcher.close()
    assert not errors, errors
    assert Webhook.get_by_id(hook.id).is_active
    assert WebhookDelivery.select().where(WebhookDelivery.next_attempt_at.is_null()).count() == 0


@pytest.mark.postgres
def test_a_give_back_that_meets_a_disable_under_way_parks_after_it(pg_database, postgres_url, keyring):
    """A worker gives back a delivery it holds while another daemon's record is disabling its webhook (its
    transaction holds the webhook's row): the give-back waits for it and parks the delivery, on the webhook as it is
    once that commits, not as it was when the give-back began (due, then walked past by every claim)."""
    import threading

    import psycopg2
    from support.waiting import wait_for

    from nexusctl.core import webhooks
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    hook = webhooks.create(keyring, integration_id=integration.id, url="https://hooks.example.com/a", events=["*"])[0]
    deliveries.fan_out(integration, "media.created", {})
    (held,) = deliveries.claim(1, 30)
    disable, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True

    def waiters() -> int:
        return _lock_waiters(watcher)

    with disable.cursor() as cur:
        cur.execute('UPDATE "webhooks" SET "is_active" = false WHERE "id" = %s', (str(hook.id),))
    errors = []

    def give_back():
        try:
            with pg_database.connection_context():  # the worker's database thread: a connection of its own
                deliveries.release([held])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=give_back)
    worker.start()
    try:
        wait_for(lambda: waiters() == 1, 10, "the give-back to wait for the disable's transaction")
    finally:
        disable.commit()
        worker.join(15)
        disable.close()
        watcher.close()
    assert not errors, errors
    row = WebhookDelivery.get_by_id(held.id)
    assert (row.status, row.lease_token, row.next_attempt_at) == (DeliveryStatus.PENDING, None, None)


@pytest.mark.postgres
def test_a_replay_that_a_writer_deadlocks_with_is_run_again(pg_database, postgres_url, monkeypatch):
    """`nexusctl webhooks replay` queues a webhook's deliveries again with one UPDATE, which locks them in the order
    it reads them; a writer of the same rows taking them in the other order (a session of its own: the row the
    replay reaches second, then the first) deadlocks with it, and PostgreSQL aborts the replay (the writer waits
    10 s before it looks). Run again, it queues both. Before, the operator got the deadlock as an error."""

    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    hook = Webhook.create(integration=integration, url="http://127.0.0.1:9/h", events=["*"])
    since = utcnow() - dt.timedelta(minutes=1)
    for i in range(2):
        deliveries.fan_out(integration, "media.created", {"i": i})
    claimed = deliveries.claim(2, 30)
    assert attempts.record_many([(c, _result(500)) for c in claimed], ()) == ["failed", "failed"]  # no retries left
    # The order the replay's UPDATE reads (and locks) them in: its WHERE, read by a SELECT.
    where = (WebhookDelivery.webhook == hook.id) & (WebhookDelivery.created_at >= since)
    first, second = (
        next(c for c in claimed if c.id == row_id)
        for (row_id,) in WebhookDelivery.select(WebhookDelivery.id).where(where).tuples()
    )
    runs = []
    update_once = WebhookDelivery.update
    monkeypatch.setattr(WebhookDelivery, "update", lambda *a, **kw: runs.append(1) or update_once(*a, **kw))
    with _moving_b_then_a(pg_database, postgres_url, first, second) as writer_lost:
        replayed = deliveries.replay(hook.id, since=since)
    assert (replayed.queued, replayed.skipped) == (2, 0)
    assert {d.status for d in WebhookDelivery.select()} == {DeliveryStatus.PENDING}
    assert len(runs) == 1 if writer_lost else len(runs) >= 2  # the replay was the victim, and ran again


# What each writer of held rows does with the rows of a round (handed to it in descending id order), and what it
# returns: the record (failed attempts, due again at once), the give-back, and the failing of held rows of a
# disabled webhook (attempts.fail_held).
_WRITERS = {
    "record": lambda held, rounds: attempts.record_many([(c, _result(500)) for c in held], (0,) * rounds),
    "release": lambda held, rounds: deliveries.release(held),
    "fail_held": lambda held, rounds: attempts.fail_held(held),
}


@pytest.mark.postgres
@pytest.mark.parametrize("writer", list(_WRITERS))
def test_a_renewal_and_a_writer_of_the_same_held_rows_in_opposite_orders_never_deadlock(
    writer, pg_database, postgres_url, monkeypatch
):
    """The renewal and the other writers of held rows (the record batch, the give-back, the failing of held rows
    of a disabled webhook) lock the delivery rows in one order (by id), whatever order the worker hands them in:
    neither ever waits for the other while holding a row the other wants, so PostgreSQL never aborts one of them
    (each deadlock stalled the victim for deadlock_timeout, ~1 s; the give-back and fail_held were not retried).

    Each round the same held rows go to a renewal in ascending id order and to the writer in descending order,
    from two threads (two connections). A third session holds one row of the set, at a different place each
    round, until PostgreSQL shows both waiting for a lock: they are then both in the middle of their rows, as
    under load, where taking them in different orders deadlocked nearly every round. Every deadlock PostgreSQL
    raised is counted, and the work of both is checked."""
    import random
    import threading

    import psycopg2
    from support.waiting import wait_for

    from nexusctl.db import database
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    rows, rounds = 40, 8
    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    webhook = Webhook.create(integration=integration, url="http://127.0.0.1:9/h", events=["*"])
    deadlocks = []
    seen = database.is_deadlock
    monkeypatch.setattr(database, "is_deadlock", lambda exc: seen(exc) and (deadlocks.append(exc) or True))
    blocker, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True

    def held_rows() -> list:
        """This round's held rows: the same ones again (recorded as failed or given back, they are due at once),
        new ones for fail_held (of a webhook disabled once they are claimed)."""
        if writer == "fail_held" or not WebhookDelivery.select().exists():
            Webhook.update(is_active=True).where(Webhook.id == webhook.id).execute()
            for i in range(rows):
                deliveries.fan_out(integration, "media.created", {"i": i})
        claimed = sorted(deliveries.claim(rows, 30), key=lambda c: c.id)
        if writer == "fail_held":
            Webhook.update(is_active=False, disabled_reason="gone").where(Webhook.id == webhook.id).execute()
        return claimed

    def both_wait() -> bool:
        with watcher.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cur.fetchone()[0] >= 2

    def in_thread(work, done: dict, start: threading.Barrier):
        try:
            start.wait(30)
            done["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            done["error"] = exc
        finally:
            pg_database.close()  # this thread's pooled connection back to the pool

    try:
        for _ in range(rounds):
            claimed = held_rows()
            assert len(claimed) == rows
            with blocker.cursor() as cur:
                cur.execute(
                    'SELECT 1 FROM "webhook_deliveries" WHERE "id" = %s FOR NO KEY UPDATE',
                    (str(random.choice(claimed[1:-1]).id),),
                )
            start, renewed, written = threading.Barrier(2), {}, {}
            threads = [
                threading.Thread(
                    target=in_thread,
                    args=(lambda c=claimed: deliveries.renew([(i.id, i.lease) for i in c], 30)[0], renewed, start),
                ),
                threading.Thread(
                    target=in_thread,
                    args=(lambda c=claimed: _WRITERS[writer](c[::-1], rounds), written, start),
                ),
            ]
            for thread in threads:
                thread.start()
            try:
                wait_for(both_wait, 30, "the renewal and the writer to wait for a lock")
            finally:
                blocker.commit()
                for thread in threads:
                    thread.join(60)
            assert "error" not in renewed and "error" not in written, (renewed, written)
            assert written["value"] == {"record": ["retrying"] * rows, "release": None, "fail_held": rows}[writer]
            # The renewal ran wholly before the writer (all moved on) or after it (none: no longer leased).
            assert renewed["value"] in (set(), {c.id for c in claimed})
    finally:
        blocker.close()
        watcher.close()
    assert deadlocks == []
    assert not WebhookDelivery.select().where(WebhookDelivery.lease_token.is_null(False)).exists()
    statuses = {d.status: d.attempts for d in WebhookDelivery.select()}
    assert (
        statuses
        == {
            "record": {DeliveryStatus.RETRYING: rounds},
            "release": {DeliveryStatus.PENDING: 0},
            "fail_held": {DeliveryStatus.FAILED: 0},
        }[writer]
    )
    assert WebhookAttempt.select().count() == (rows * rounds if writer == "record" else 0)


@pytest.mark.postgres
def test_a_record_and_a_give_back_of_two_webhooks_never_deadlock(pg_database, postgres_url, keyring, monkeypatch):
    """A give-back locks its deliveries' webhooks FOR SHARE in id order; a record batch locked the webhooks it updates
    in its plan's order (a sequential scan's: the order they were written in). With a third session holding one of
    them, the two met crosswise once it let go, and PostgreSQL aborted one (the record, run again up to three times,
    then its deliveries sent again). Both in id order now: they wait on each other, and both finish."""
    import threading

    import psycopg2
    from support.waiting import wait_for

    from nexusctl.core import webhooks
    from nexusctl.db import database
    from nexusctl.db.models import Integration
    from nexusctl.enums import Provider

    monkeypatch.setattr(database, "DEADLOCK_RETRIES", 1)  # a deadlock is an error here, not a quiet second try
    integration = Integration.create(user_id=uuid.uuid4(), provider=Provider.SHOPIFY, name="shop")
    made = []
    while not any(earlier.id > later.id for earlier, later in zip(made, made[1:])):
        url = f"https://hooks.example.com/{len(made)}"
        made.append(webhooks.create(keyring, integration_id=integration.id, url=url, events=["*"])[0])
    # Written first (a sequential scan meets it first) with the larger id: id order meets them the other way round.
    first, second = next((a, b) for a, b in zip(made, made[1:]) if a.id > b.id)
    for n in range(2):
        deliveries.fan_out(integration, "media.created", {"n": n})
    held = [c for c in deliveries.claim(4 * len(made), 60) if c.webhook_id in (first.id, second.id)]
    give_back = [next(c for c in held if c.webhook_id == hook.id) for hook in (first, second)]
    recorded = [c for c in held if c not in give_back]
    blocker, watcher = psycopg2.connect(postgres_url), psycopg2.connect(postgres_url)
    watcher.autocommit = True

    def waiters() -> int:
        return _lock_waiters(watcher)

    with blocker.cursor() as cur:  # a third session holds the webhook that id order reaches first
        cur.execute('SELECT 1 FROM "webhooks" WHERE "id" = %s FOR UPDATE', (str(second.id),))
    errors = []

    def run(work):
        try:
            with pg_database.connection_context():  # a daemon's database thread: a connection of its own
                # The plan a small webhooks table gets (a sequential scan, the order rows were written), whatever
                # this database's statistics say: the lock order must not depend on the plan.
                pg_database.execute_sql("SET enable_indexscan = off; SET enable_bitmapscan = off")
                work()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(lambda: deliveries.release(give_back),)),
        threading.Thread(
            target=run, args=(lambda: attempts.record_many([(c, _result(200)) for c in recorded], SCHEDULE),)
        ),
    ]
    try:
        threads[0].start()
        wait_for(lambda: waiters() == 1, 10, "the give-back to wait for the held webhook")
        threads[1].start()
        wait_for(lambda: waiters() == 2, 10, "the record to wait too")
    finally:
        blocker.commit()
        for thread in threads:
            thread.join(15)
        blocker.close()
        watcher.close()
    assert not errors, errors
    statuses = {c.id: WebhookDelivery.get_by_id(c.id).status for c in held}
    assert {statuses[c.id] for c in recorded} == {DeliveryStatus.DELIVERED}
    assert {statuses[c.id] for c in give_back} == {DeliveryStatus.PENDING}


def _lock_waiters(watcher) -> int:
    """Sessions of this database waiting for a lock (``watcher``: an autocommit connection of the test's)."""
    with watcher.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cur.fetchone()[0]
