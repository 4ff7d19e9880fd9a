"""What the delivery worker's database trips send to PostgreSQL: a transaction's BEGIN goes with its first statement,
a claim trip is the claim and COMMIT, a record trip three statements. In a busy daemon each round trip also waits for
the GIL when its thread wakes, so the worker's rate followed their number (issue 19)."""

from __future__ import annotations

import contextlib

import pytest

from nexusctl.core import attempts, deliveries, webhooks
from nexusctl.core.attempts import Result
from nexusctl.db.fields import utcnow
from nexusctl.db.models import WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus

# PostgreSQL only: SQLite has no round trips (and claims with two statements).
pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


class _Counting:
    """A psycopg2 connection that keeps the text of every execute sent through its cursors (one round trip each)."""

    def __init__(self, conn) -> None:
        self._conn, self.sent = conn, []

    def cursor(self, *args, **kwargs):
        return _CountingCursor(self._conn.cursor(*args, **kwargs), self.sent)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _CountingCursor:
    def __init__(self, cursor, sent: list) -> None:
        self._cursor, self._sent = cursor, sent

    def execute(self, sql, params=None):
        self._sent.append(sql)
        return self._cursor.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@contextlib.contextmanager
def _counted(database):
    real = database.connection()
    counting = database._state.conn = _Counting(real)
    try:
        yield counting.sent
    finally:
        database._state.conn = real


def test_a_transaction_sends_begin_with_its_first_statement_and_keeps_its_all_or_nothing(database):
    with _counted(database) as sent, database.atomic():
        database.execute_sql("CREATE TEMPORARY TABLE t (n int)")
        database.execute_sql("INSERT INTO t VALUES (1)")
    assert [s.split(";")[0] for s in sent] == ["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"]

    with _counted(database) as sent:
        with database.atomic() as transaction:
            database.execute_sql("INSERT INTO t VALUES (2)")
            database.cursor().execute("INSERT INTO t VALUES (3)")  # a cursor taken directly: same transaction
            transaction.rollback()
        with database.atomic():  # nothing ran: nothing to begin or end
            pass
    assert len(sent) == 3  # BEGIN; INSERT 2 / INSERT 3 / ROLLBACK
    assert database.execute_sql("SELECT array_agg(n) FROM t").fetchone() == ([1],)

    with database.atomic():
        database.cursor().execute("INSERT INTO t VALUES (4)")  # the first statement, through a cursor
        assert database.execute_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND backend_xid IS NOT NULL"
        ).fetchone() == (1,)  # inside a transaction
    with pytest.raises(Exception), database.atomic():
        database.execute_sql("INSERT INTO t VALUES (5)")
        database.execute_sql("INSERT INTO t VALUES ('x')")
    assert database.execute_sql("SELECT array_agg(n ORDER BY n) FROM t").fetchone() == ([1, 4],)


def test_a_claim_trip_is_two_round_trips_and_a_record_trip_three(database, keyring, make_integration):
    integration = make_integration()
    hook, secret = webhooks.create(
        keyring, integration_id=integration.id, url="https://hooks.example.com/a", events=["*"]
    )
    for n in range(6):
        deliveries.fan_out(integration, "media.created", {"n": n})
    with _counted(database) as sent:  # one connection: the first round prepares the statements on it
        for _ in range(2):
            start = len(sent)
            claimed, signing, locked = deliveries.claim_signed(keyring, 3, 30)
            claim_sent, start = sent[start:], len(sent)
            assert len(claimed) == 3 and locked == {}
            assert signing == {hook.id: ("https://hooks.example.com/a", [secret])}
            result = Result(started_at=utcnow(), duration_ms=3, status_code=200)
            assert attempts.record_many([(c, result) for c in claimed], (5,)) == ["delivered"] * 3
            record_sent = sent[start:]
    assert len(claim_sent) == 2, claim_sent  # BEGIN; SET LOCAL ...; EXECUTE the claim / COMMIT
    # BEGIN; the webhooks / the deliveries, attempts, events and webhooks' state in one statement / COMMIT
    assert len(record_sent) == 3, record_sent
    assert WebhookDelivery.select().where(WebhookDelivery.status == DeliveryStatus.DELIVERED).count() == 6
    assert WebhookAttempt.select().count() == 6
