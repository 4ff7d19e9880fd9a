"""db.statements: written-out statements, and the ones PREPAREd once per connection on PostgreSQL."""

from __future__ import annotations

import uuid

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
    """PgBouncer's transaction pooling (before 1.21) runs EXECUTE on a server connection that never saw the
    PREPARE: the call still answers, and the process stops preparing."""
    monkeypatch.setattr(statements, "_off", False)
    row = _row()
    sql = SQL_NAMED.format(mark="%s")
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)
    pg_database.execute_sql("DEALLOCATE ALL")  # as if the next call went to another server connection
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)
    assert statements._off is True
    assert pg_database.execute_sql("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    assert statements.run("nexus_test_lost", sql, [row.id]).fetchone() == ("@someone",)
