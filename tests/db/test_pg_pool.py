"""The PostgreSQL test databases are recycled (tests/pg_pool.py): a recycled one must be as fresh as a clone."""

from __future__ import annotations

import psycopg2
import pytest

pytestmark = pytest.mark.postgres


def _sql(url: str, statement: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def _exists(pg_pool, name: str) -> bool:
    with pg_pool._admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


@pytest.fixture
def url_of(postgres_url, pg_pool):
    """(postgres_url: so a missing server skips or fails these tests like every PostgreSQL test)"""
    return pg_pool.url_for


def test_a_recycled_database_is_handed_out_again_without_the_rows(pg_pool, url_of):
    name = pg_pool.take()
    url = url_of(name)
    _sql(
        url, "INSERT INTO job_runs (id, name, created_at, updated_at) VALUES (gen_random_uuid(), 'probe', now(), now())"
    )
    idle_connection = psycopg2.connect(url)  # left open, as a crashed daemon's pool would be
    idle_connection.cursor().execute("SELECT 1")
    pg_pool.give_back(name)

    assert pg_pool.take() == name  # the same database, handed out again
    assert _sql(url, "SELECT count(*) FROM job_runs") == [(0,)]
    assert len(_sql(url, "SELECT name FROM schema_migrations")) > 5  # the schema's history stays
    pg_pool.give_back(name)


def test_a_table_written_only_by_a_rolled_back_insert_is_emptied_too(pg_pool, url_of):
    # Only the tables a test wrote are truncated; a rolled-back insert wrote one (its row is dead, its page stays).
    name = pg_pool.take()
    url = url_of(name)
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_runs (id, name, created_at, updated_at) VALUES (gen_random_uuid(), 'x', now(), now())"
        )
    conn.rollback()
    conn.close()
    assert _sql(url, "SELECT pg_relation_size('job_runs')") != [(0,)]
    pg_pool.give_back(name)

    assert pg_pool.take() == name
    sizes = _sql(
        url,
        "SELECT relname, pg_relation_size(oid) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations'",
    )
    assert sizes and all(size == 0 for _name, size in sizes), sizes  # every table's file as empty as in a clone
    pg_pool.give_back(name)


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE integrations ADD COLUMN probe TEXT",
        "CREATE INDEX probe_idx ON integrations (name)",
        "CREATE TABLE probe (id INT)",
        "INSERT INTO schema_migrations (name, applied) VALUES ('0099_probe', now())",
        "ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Tokyo'",
    ],
)
def test_a_database_whose_schema_changed_is_dropped_not_recycled(pg_pool, url_of, change):
    name = pg_pool.take()
    _sql(url_of(name), change.format(name=name))
    pg_pool.give_back(name)
    assert not _exists(pg_pool, name)
    assert pg_pool.take() != name
