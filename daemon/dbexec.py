"""Running synchronous peewee work off the event loop.

SQLite gets one thread, so writes are serialised (one writer, as in
datasette); PostgreSQL gets as many threads as pooled connections, and each
call returns its connection to the pool when it ends.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import peewee

from db.database import is_postgres

T = TypeVar("T")


class DbExecutor:
    def __init__(self, db: peewee.Database, pool_size: int) -> None:
        self.db = db
        self._pooled = is_postgres(db)
        workers = pool_size if self._pooled else 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nexus-db")

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._call, fn, *args, **kwargs))

    def _call(self, fn, *args, **kwargs):
        if not self._pooled:
            # The single SQLite thread keeps its one connection open.
            self.db.connect(reuse_if_open=True)
            return fn(*args, **kwargs)
        with self.db.connection_context():
            return fn(*args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if hasattr(self.db, "close_all"):
            self.db.close_all()
        elif not self.db.is_closed():
            self.db.close()
