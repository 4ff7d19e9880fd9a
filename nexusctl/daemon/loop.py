"""The daemon's event loop: asyncio's own, or uvloop when NEXUSCTL_EVENT_LOOP=uvloop and it is installed.

uvloop runs asyncio's API on libuv. Nothing in the daemon needs the selector loop for its API: signal
handlers (run_app), ``add_reader`` (the delivery worker's PostgreSQL LISTEN), the exception handler
(daemon.protocol) and thread executors (daemon.dbexec) all work on both (tests/daemon/test_loop.py).
It is not the default because (docs/benchmarks.md, branch ``speed``):

- side by side with asyncio's loop it saved no measurable CPU per proxied call or API read: aiohttp's
  own protocol code, which uvloop does not touch, is most of a request;
- out of file descriptors, asyncio's loop pauses accepting for a second and daemon.protocol logs one
  throttled ``cannot accept connections`` line; libuv drains the accept queue with a reserve
  descriptor and says nothing, and an accept error that reaches uvloop's listen callback closes the
  listening socket without a word.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``choice`` names (``asyncio`` or ``uvloop``); asyncio's when uvloop is absent."""
    if choice == "uvloop":
        try:
            # optional extra: uvloop is a dependency only where it is built (not on Windows)
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: the daemon runs asyncio's own event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def kind(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what the start-up line says."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
