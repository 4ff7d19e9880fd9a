"""What the process's two lean HTTP/1.1 clients share: the delivery worker's sender (nexusctl/daemon/sender.py)
and the providers' token poster (nexusctl/providers/poster.py).

- ``answer_parser``: httptools' parser of answers with the leniencies aiohttp's parser allowed them (llhttp's
  strict defaults are for requests): bare LF line ends, "Content-Length : 2", control characters in a value,
  "2 \\r\\n" chunk sizes. Refused, an answer a receiver or a provider gave would be a failure of ours.
- ``IdlePool``: kept-alive connections by (scheme, host, port): at most ``per_key`` idle a key and ``max_idle`` in
  all (room made by the longest idle of all), each for at most ``IDLE_SECONDS``; a timer closes those idle too long
  (sends or not), and one whose end arrived while it sat idle is never handed out again. A connection is any object
  with ``closed``, ``idle_since``, ``transport`` and ``close()``.
"""

from __future__ import annotations

import asyncio
import collections
import time

import httptools

# Below the shortest common server keep-alive (Node's 5 s): a connection idle longer may be closed by the
# server just as a request is written to it, and that request would fail (it is never written again).
IDLE_SECONDS = 4.0


def answer_parser(protocol) -> httptools.HttpResponseParser:
    """A parser of answers calling back ``protocol``, as lenient as aiohttp's (see the module's docstring)."""
    parser = httptools.HttpResponseParser(protocol)
    parser.set_dangerous_leniencies(
        lenient_headers=True, lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
    )
    return parser


class IdlePool:
    """Idle kept-alive connections by key (see the module's docstring)."""

    def __init__(self, *, per_key: int, max_idle: int) -> None:
        self.per_key = max(1, per_key)
        self.max_idle = max(1, max_idle)
        self.idle: dict[tuple, collections.deque] = {}
        self.count = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, key: tuple):
        """An idle connection of ``key`` still open and not idle too long, or None."""
        now = time.monotonic()
        idle = self.idle.get(key)
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed by the server
            self.count -= 1
            # Closed, or closing (its end arrived; connection_lost is still to run): never written to.
            if not conn.closed and not conn.transport.is_closing() and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    def give(self, key: tuple, conn) -> None:
        """Keep ``conn`` (its answer read whole, the server keeping it) for the next request of ``key``, or close it
        when ``key`` has its fill of live ones."""
        conn.idle_since = now = time.monotonic()
        idle = self.idle.setdefault(key, collections.deque())
        if len(idle) >= self.per_key:  # full: of live connections? Those the server closed make room
            self._prune(idle, now)
            if len(idle) >= self.per_key:
                conn.close()
                return
        if self.count >= self.max_idle:  # room made by the longest idle of all
            self._prune_oldest()
        idle.append(conn)
        self.count += 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._sweep)

    def _prune(self, idle: collections.deque, now: float) -> None:
        """Close and drop the connections of ``idle`` that are closed or idle too long."""
        for conn in list(idle):
            if conn.closed or conn.transport.is_closing() or now - conn.idle_since >= IDLE_SECONDS:
                idle.remove(conn)
                self.count -= 1
                conn.close()

    def _prune_oldest(self) -> None:
        oldest = min((idle for idle in self.idle.values() if idle), key=lambda idle: idle[0].idle_since)
        oldest.popleft().close()
        self.count -= 1

    def _sweep(self) -> None:
        """Close the connections idle too long (keys no longer used keep none open); again when the longest idle of
        those left will be."""
        self._sweeper = None
        now = time.monotonic()
        for key, idle in list(self.idle.items()):
            self._prune(idle, now)
            if not idle:
                del self.idle[key]
        if self.idle:
            due = min(idle[0].idle_since for idle in self.idle.values()) + IDLE_SECONDS - now
            self._sweeper = asyncio.get_running_loop().call_later(max(due, 0.05), self._sweep)

    def close(self) -> None:
        """Close every idle connection and the timer."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle.clear()
        self.count = 0
