"""db.statements: written-out statements, and the ones PREPAREd once per connection on PostgreSQL."""

from __future__ import annotations

import datetime as _dt
import uuid

import pytest

from nexusctl.db import statements
from nexusctl.db.models import Integration
from nexusctl.enums import Provider

SQL_NAMED = 'SELECT "name" FROM "integrations" WHERE "id" = {mark}'


def _row() -> Integration:
    row = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name="@someone")
    statements.insert(row)
    return row


def test_run_gives_the_same_answers_on_both_databases(database):
    row = _row()
    sql = SQL_NAMED.format(mark=database.param)
    for _ in range(7):  # PostgreSQL plans the first five runs, then uses its generic plan
        assert statements.run("nexus_test_named", sql, [Integration.id.db_value(row.id)]).fetchone() == ("@someone",)


def test_a_pooler_that_loses_prepared_statements_turns_preparing_off(pg_database, monkeypatch):
    """A pooler sharing server connections (PgBouncer's transaction pooling) runs EXECUTE on a server
    connection that never saw the PREPARE: the call still answers, and the process stops preparing."""
    monkeypatch.setattr(statements, "_off", False)
    row = _row()
    sql = SQL_NAMED.format(mark="%s")
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)
    pg_database.execute_sql("DEALLOCATE ALL")  # as if the next call went to another server connection
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)
    assert statements._off is True
    assert pg_database.execute_sql("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)


def test_a_name_another_client_prepared_on_a_shared_connection_never_fails_the_call(pg_database, monkeypatch):
    """Behind a pooler, this process's first PREPARE can land on a server connection where another client
    (another daemon, another version) already prepared that name: the call answers as text, preparing stops."""
    monkeypatch.setattr(statements, "_off", False)
    row = _row()
    sql = SQL_NAMED.format(mark="%s")
    name = statements._prepared_name("nexus_test_taken", sql)
    pg_database.execute_sql(f"PREPARE {name} AS SELECT 'another client''s statement'")  # the pooler's leftover
    assert statements.run("nexus_test_taken", sql, [row.id]).fetchone() == ("@someone",)
    assert statements._off is True


def test_each_prepared_name_carries_its_statements_text():
    """Two versions behind one pooler never run each other's statement under one name."""
    assert statements._prepared_name("nexus_claim_0", "SELECT 1") != statements._prepared_name(
        "nexus_claim_0", "SELECT 2"
    )


def test_arrays_passed_as_text_read_back_as_sent(pg_database):
    """array_text quotes every element: commas, braces, quotes, backslashes, the word NULL and empty strings
    stay values; None is NULL; numbers, booleans, timestamps and UUIDs cast as PostgreSQL reads them."""
    import datetime as dt

    texts = ["a,b", "NULL", "", 'say "hi"', "back\\slash", None, " lead", "{}", "é\n\t"]
    assert pg_database.execute_sql("SELECT %s::text[]", [statements.array_text(texts)]).fetchone()[0] == texts
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone.utc)
    ids = [uuid.uuid4(), uuid.uuid4()]
    row = pg_database.execute_sql(
        "SELECT %s::int[], %s::bool[], %s::timestamptz[], %s::uuid[], %s::jsonb[]",
        [
            statements.array_text([1, None, -3]),
            statements.array_text([True, False]),
            statements.array_text([when, None]),
            statements.array_text([ids[0], ids[1].hex]),
            statements.array_text(['{"a": "x\\"\\\\"}', None]),
        ],
    ).fetchone()
    assert row[0] == [1, None, -3] and row[1] == [True, False] and row[2] == [when, None]
    assert [uuid.UUID(str(i)) for i in row[3]] == ids
    assert row[4] == [{"a": 'x"\\'}, None]


def test_array_text_reads_back_runs_of_one_timestamp_other_zones_and_str_enums(pg_database):
    """The shortcuts (a run of the same datetime formatted once, a UUID as bare hex, a bare int) read back as the
    values sent; a datetime in another zone keeps its instant, a str enum is its value (not its name)."""
    import datetime as dt

    from nexusctl.enums import DeliveryStatus

    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone.utc)
    there = dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ids = [uuid.uuid4() for _ in range(3)]
    row = pg_database.execute_sql(
        "SELECT %s::timestamptz[], %s::uuid[], %s::text[], %s::bigint[]",
        [
            statements.array_text([when, when, None, when, there, there]),
            statements.array_text(ids),
            statements.array_text([DeliveryStatus.DELIVERED, "RETRYING"]),
            statements.array_text([0, 2**40, -1]),
        ],
    ).fetchone()
    assert row[0] == [when, when, None, when, there, there]
    assert [uuid.UUID(str(i)) for i in row[1]] == ids
    assert row[2] == ["DELIVERED", "RETRYING"] and row[3] == [0, 2**40, -1]


def test_in_a_transaction_the_settings_hold_for_the_prepared_statement_and_end_with_it(pg_database, monkeypatch):
    monkeypatch.setattr(statements, "_off", False)
    sql = "SELECT current_setting('enable_seqscan'), %s::int + 1"
    for _ in range(7):  # custom plans, then the generic one
        with pg_database.atomic():
            answer = statements.run_in_transaction(
                "nexus_test_settings", sql, [41], settings="SET LOCAL enable_seqscan = off; "
            ).fetchone()
        assert answer == ("off", 42)
    assert pg_database.execute_sql("SHOW enable_seqscan").fetchone() == ("on",)
    assert statements._off is False


def test_in_a_transaction_a_lost_prepared_name_fails_that_call_only_and_turns_preparing_off(pg_database, monkeypatch):
    """Behind a pooler the EXECUTE inside a transaction cannot be retried as text (the transaction is aborted):
    that call fails, cleanly, and every later one runs as text."""
    monkeypatch.setattr(statements, "_off", False)
    row = _row()
    sql = SQL_NAMED.format(mark="%s")
    with pg_database.atomic():
        assert statements.run_in_transaction("nexus_test_lost_tx", sql, [row.id]).fetchone() == ("@someone",)
    pg_database.execute_sql("DEALLOCATE ALL")  # as if the next call went to another server connection
    with pytest.raises(statements.PreparedLost), pg_database.atomic():
        statements.run_in_transaction("nexus_test_lost_tx", sql, [row.id])
    assert statements._off is True
    with pg_database.atomic():
        assert statements.run_in_transaction("nexus_test_lost_tx", sql, [row.id]).fetchone() == ("@someone",)


_NOW = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)


@pytest.mark.parametrize("big", [False, True], ids=["orjson", "beyond-64-bits"])
def test_insert_together_reads_back_what_it_was_given(database, big):
    """insert_together's rows (on PostgreSQL one JSON document a part, orjson's or, for an integer beyond 64 bits,
    the standard library's) read back as sent on both databases: JSON with quotes, backslashes, braces, the word
    NULL and text beyond ASCII, None as NULL, a naive time as UTC."""
    import datetime as dt

    from nexusctl.core.events import OUTBOX_COLUMNS
    from nexusctl.db.models import OutboxEvent

    data = {"q": 'a"b\\c{},NULL', "text": "é€😀\u2028", "n": None, "list": [1, 2.5, {"x": True}], "tiny": 1e-7}
    if big:
        data["big"] = 2**70
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone.utc)
    naive = dt.datetime(2026, 1, 2, 3, 4, 6)
    ids = [uuid.uuid4(), uuid.uuid4()]
    user, integration = uuid.uuid4(), uuid.uuid4()
    rows = [
        (ids[0], "post.created", user, integration, data, when, when, "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
        (ids[1], "post.updated", None, integration, {}, naive, when, None),
    ]
    statements.insert_together("nexus_test_together", [(OutboxEvent, OUTBOX_COLUMNS, rows)])
    found = {row.id: row for row in OutboxEvent.select().where(OutboxEvent.id.in_(ids))}
    first, second = found[ids[0]], found[ids[1]]
    assert (first.type, first.user_id, first.integration_id, first.data) == ("post.created", user, integration, data)
    assert first.created_at == when and first.trace_parent == rows[0][7] and first.published_at is None
    assert (second.user_id, second.data, second.trace_parent) == (None, {}, None)
    assert second.created_at == naive.replace(tzinfo=dt.timezone.utc)


def test_insert_together_splits_a_part_too_large_for_one_document(database, monkeypatch):
    """PostgreSQL refuses a jsonb value over 256 MiB: a part larger than DOCUMENT_MAX goes as several documents, an
    insert each in the same statement, and every row arrives once (SQLite inserts them as before)."""
    from nexusctl.core.events import OUTBOX_COLUMNS
    from nexusctl.db.models import OutboxEvent

    monkeypatch.setattr(statements, "DOCUMENT_MAX", 2000)  # a few rows a document
    integration = uuid.uuid4()
    rows = [
        (uuid.uuid4(), "post.created", None, integration, {"n": n, "pad": "x" * 300}, None, None, None)
        for n in range(20)
    ]
    rows = [(*row[:5], _NOW, _NOW, None) for row in rows]
    assert len(statements._documents(rows)) > 4
    statements.insert_together("nexus_test_split", [(OutboxEvent, OUTBOX_COLUMNS, rows)], notify="nexus_test")
    found = sorted(row.data["n"] for row in OutboxEvent.select().where(OutboxEvent.integration_id == integration))
    assert found == list(range(20))
