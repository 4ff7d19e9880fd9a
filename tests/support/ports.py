"""Ports for local servers.

A server the test starts in-process should bind port 0 and read its port back
(``support.receivers`` do). ``free_port`` is for servers started as another
process with the port on their command line (daemons, redis-server,
PostgreSQL): the port is released before that process binds it, a small race
accepted because those servers cannot report a port of their own choosing
(``support.daemons.start_on_free_port`` starts again on another port when a
daemon finds its port taken). ``closed_port`` keeps its port bound, unlistened.
``held_ports`` closes that race for a script that binds ports later: they stay
bound with SO_REUSEADDR and unlistened, so only a server that sets
SO_REUSEADDR itself (aiohttp, asyncio, Python's http.server: the servers the
tests start) can take them, and no other process is given them meanwhile.
"""

from __future__ import annotations

import contextlib
import socket


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HELD: list[socket.socket] = []  # the closed ports' sockets, open for the whole test session


def closed_port() -> int:
    """A port nothing listens on, for good: bound by this process and never listened on, so connections to it
    are refused and nobody else can take it meanwhile (a port found free and released could be)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]


@contextlib.contextmanager
def held_ports(count: int):
    """``count`` ports kept from other processes until the block ends, yet free for the servers the block
    starts on them (Linux lets sockets that all set SO_REUSEADDR share a port while at most one listens)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        yield [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
