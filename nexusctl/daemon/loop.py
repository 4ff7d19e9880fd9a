"""The daemon's event loop: uvloop where it is installed, asyncio's own otherwise or when asked.

uvloop runs asyncio's API on libuv: the same code, less CPU per socket operation for aiohttp's server
and its client alike (docs/benchmarks.md, the loop and JSON change). Nothing in the daemon depends on
the selector loop's specifics: signal handlers (run_app), ``add_reader`` (the delivery worker's
PostgreSQL LISTEN), the exception handler (daemon.protocol) and thread executors (daemon.dbexec) are
all asyncio API that uvloop implements. ``NEXUSCTL_EVENT_LOOP=asyncio`` turns it off.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """A new loop of the kind ``choice`` names (``uvloop`` or ``asyncio``); asyncio's when uvloop is absent."""
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
