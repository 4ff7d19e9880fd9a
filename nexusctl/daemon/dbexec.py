"""Running synchronous peewee work off the event loop.

SQLite gets one thread, so writes are serialised (one writer, as in
datasette); PostgreSQL gets as many threads as pooled connections, each
holding its own connection for its lifetime.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import select
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import peewee

from nexusctl import tracing
from nexusctl.db.database import describe_error, is_postgres, unreachable
from nexusctl.errors import DatabaseUnavailable

T = TypeVar("T")


class DbExecutor:
    def __init__(self, db: peewee.Database, pool_size: int) -> None:
        self.db = db
        self._pooled = is_postgres(db)
        workers = pool_size if self._pooled else 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nexus-db")

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        loop = asyncio.get_running_loop()
        try:
            call = functools.partial(self._call, fn, *args, **kwargs)
            if tracing.enabled():  # the caller's span goes along to the thread (events record its context)
                call = functools.partial(contextvars.copy_context().run, call)
            return await loop.run_in_executor(self._pool, call)
        except RuntimeError as exc:
            if "after shutdown" not in str(exc):
                raise
            # The daemon is stopping and its database threads are gone: a job or request still finishing meets
            # an outage (one plain line where it is handled), not a bug with a traceback in the log.
            raise DatabaseUnavailable("the daemon is stopping: its database connections are closed") from None

    def _call(self, fn, *args, **kwargs):
        # Each worker thread keeps its own connection open between calls
        # (peewee connections are per thread). Checking a pooled connection
        # out per call would cost a `SELECT 1` round trip under the pool's
        # lock every time, serialising all requests behind it.
        try:
            if self._pooled:
                self._drop_if_server_hung_up()
            self.db.connect(reuse_if_open=True)
            return fn(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            # The connection may be dead (server restart): drop it, so the
            # next call on this thread connects afresh.
            self._discard_connection()
            if self._unreachable(exc):
                # A clear 503 for the API (and a known error for the workers), never a 500.
                raise DatabaseUnavailable(f"the database is unavailable: {describe_error(exc)}") from None
            raise
        except DatabaseUnavailable:
            self._discard_connection()
            raise

    def _drop_if_server_hung_up(self) -> None:
        """Discard this thread's idle connection if the server has closed it (a restart, a failover).

        An idle PostgreSQL connection is only ever readable when the server has said something
        unasked: its termination notice, or EOF. One zero-timeout select() tells, so the first
        request after a restart gets a fresh connection instead of failing once per pooled one.
        """
        conn = getattr(self.db._state, "conn", None)
        if conn is None or self.db.is_closed():
            return
        try:
            gone = bool(conn.closed) or bool(select.select([conn], [], [], 0)[0])
        except (OSError, ValueError):  # no usable socket behind it
            gone = True
        if gone:
            self._discard_connection()

    def _unreachable(self, exc: Exception) -> bool:
        """Whether ``exc`` says the database is away (not that a statement is wrong)."""
        return unreachable(exc, self._pooled)

    def _discard_connection(self) -> None:
        try:
            if self._pooled:
                self.db.manual_close()
            else:
                self.db.close()
        except Exception:  # noqa: BLE001 - it is being thrown away either way
            pass

    def close(self) -> None:
        # Close each thread's connection on its own thread, then stop them.
        workers = getattr(self._pool, "_max_workers", 1)
        barrier = threading.Barrier(workers)

        def close_here():
            try:
                if not self.db.is_closed():
                    self.db.close()
            finally:
                barrier.wait(timeout=5)  # one job per thread: none takes two

        for future in [self._pool.submit(close_here) for _ in range(workers)]:
            try:
                future.result(timeout=10)
            except Exception:  # noqa: BLE001 - shutting down; log-free by design
                pass
        self._pool.shutdown(wait=True)
        if hasattr(self.db, "close_all"):
            self.db.close_all()
