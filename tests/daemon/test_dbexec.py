"""The daemon's database executor tells an outage (503) from a statement that failed (a bug or a timeout)."""

from __future__ import annotations

import asyncio

import peewee
import pytest

from nexusctl.daemon.dbexec import DbExecutor
from nexusctl.errors import DatabaseUnavailable

pytestmark = pytest.mark.postgres


def _run(executor, fn):
    async def main():
        return await executor.run(fn)

    return asyncio.run(main())


def test_a_statement_timeout_is_not_reported_as_an_outage(pg_database):
    executor = DbExecutor(pg_database, 2)
    try:

        def slow():
            pg_database.execute_sql("SET statement_timeout = 50")
            try:
                pg_database.execute_sql("SELECT pg_sleep(2)")
            finally:
                pg_database.execute_sql("SET statement_timeout = 0")

        with pytest.raises(peewee.OperationalError) as caught:
            _run(executor, slow)
        assert not isinstance(caught.value, DatabaseUnavailable) and "statement timeout" in str(caught.value)
        assert _run(executor, lambda: pg_database.execute_sql("SELECT 1").fetchone()) == (1,)  # still usable
    finally:
        executor.close()


def test_a_database_that_is_gone_is_an_outage(pg_database):
    executor = DbExecutor(pg_database, 1)
    try:

        def killed():
            pg_database.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")

        with pytest.raises(DatabaseUnavailable):
            _run(executor, killed)
        assert _run(executor, lambda: pg_database.execute_sql("SELECT 1").fetchone()) == (1,)  # reconnects
    finally:
        executor.close()


def test_work_arriving_after_shutdown_is_an_outage_not_a_traceback(pg_database):
    """A scheduled job or a request still finishing while the daemon stops meets closed database threads:
    DatabaseUnavailable (one plain line where it is handled), not the pool's RuntimeError and its traceback."""
    executor = DbExecutor(pg_database, 1)
    executor.close()
    with pytest.raises(DatabaseUnavailable, match="stopping"):
        _run(executor, lambda: pg_database.execute_sql("SELECT 1").fetchone())
