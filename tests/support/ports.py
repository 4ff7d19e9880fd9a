"""Ports for local servers.

A server the test starts in-process should bind port 0 and read its port back
(``support.receivers`` do). ``free_port`` is for servers started as another
process with the port on their command line (daemons, redis-server,
PostgreSQL): the port is released before that process binds it, a small race
accepted because those servers cannot report a port of their own choosing.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound then released: connections to it are refused)."""
    return free_port()
