"""One read in flight per key, shared by every concurrent caller that needs it now.

When a cached value ends under load, every caller in that instant misses it at once; each used to make the same
read itself (the proxy's sixteen reads and decryptions of one integration a second, the rate budget's re-reads of
one row: py-spy). ``Flights.share`` starts the read for the first of them and lets the others await it.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Hashable, TypeVar

T = TypeVar("T")


class Flights:
    """The reads in flight, by key. ``tag`` says which reads may be joined: a caller whose tag differs from the
    read in flight's (a cache generation that moved on: the value changed since that read began) starts its own,
    which then becomes the one later callers join."""

    def __init__(self) -> None:
        self._flying: dict[Hashable, tuple[object, asyncio.Future]] = {}

    def __len__(self) -> int:
        return len(self._flying)

    async def share(self, key: Hashable, read: Callable[[], Awaitable[T]], tag: object = None) -> T:
        """The result of the read in flight for ``key`` (joined), else of ``read()`` (started, and shared)."""
        pending = self._flying.get(key)
        # A read of another event loop (a test's or a CLI's earlier asyncio.run) cannot be awaited here.
        if pending is None or pending[0] != tag or pending[1].get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(read())
            pending = self._flying[key] = (tag, task)

            def done(_task, mine=pending) -> None:
                if self._flying.get(key) is mine:
                    del self._flying[key]
                if not _task.cancelled():
                    _task.exception()  # seen here: when every caller has gone, asyncio would log it as never retrieved

            task.add_done_callback(done)
        return await asyncio.shield(pending[1])  # one caller cancelled does not cancel the others' read
