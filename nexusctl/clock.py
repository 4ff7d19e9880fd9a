"""The product's wall clock: what "now" is for token expiry, refresh windows and sweeps, Instagram's 24 h rule,
schedules and every timestamp the database keeps (``nexusctl.db.fields.utcnow``).

By default it is the system clock. A TEST FACILITY moves it: with ``NEXUSCTL_CLOCK_FILE=/path`` set, the file
holds an offset in seconds (a number, e.g. ``86400``) added to the system clock, re-read whenever the file
changes (its mtime, size and inode are compared on every read: one ``stat``), so a test moves time for a
running daemon, its CLI and the provider emulators (tests/emulators read the same file) at once, instead of
rewriting columns. A missing or unreadable file means no offset.

The setting itself (NEXUSCTL_CLOCK_FILE, and NODE_ENV) is read from the environment once, at the first use: a
process gets it at start and never changes it, and the lookup on every ``now()`` was about 2% of the delivery
path's CPU. A test that sets or unsets it within its own process calls ``reload()`` (tests/support/clock.py
``use_file``; tests/conftest.py reloads before every test).

It can never be on in production: with ``NODE_ENV=production`` the setting is refused at start-up
(``nexusctl.config``) and ignored here; a daemon started with it says so in its start-up log, and ``/ready``
shows the offset (``checks.clock``) while there is one.

A provider's time window (a throttle's Retry-After, a reel's processing) is waited with ``wait``: a plain
``asyncio.sleep`` without the facility; with it, the wait also ends once the product's clock has passed its end,
so a test moves time past it instead of waiting it out.

Not for durations (use ``time.monotonic``), log timestamps, signatures checked by others (webhook signing,
Slack's request timestamps) or JWT expiry: those stay on the system clock.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time as _time

ENV = "NEXUSCTL_CLOCK_FILE"
WAIT_LOOK = 0.05  # seconds between looks at the clock file during a ``wait`` (one stat each), with the facility
UTC = dt.timezone.utc

_lock = threading.Lock()
_seen: tuple | None = None  # (path, mtime_ns, size, inode) of the last read
_offset = 0.0
_UNREAD = object()
_setting: object = _UNREAD  # the clock file's path, or None (off), once read from the environment


def _from_environment() -> str | None:
    value = os.environ.get(ENV, "").strip()
    if not value or os.environ.get("NODE_ENV", "").strip().lower() == "production":
        return None
    return value


def reload() -> None:
    """Read the setting from the environment again at the next use (tests that change it in their process)."""
    global _setting
    _setting = _UNREAD


def path() -> str | None:
    """The clock file, when the test facility is on (never in production)."""
    global _setting
    setting = _setting
    if setting is _UNREAD:
        setting = _setting = _from_environment()
    return setting


def offset() -> float:
    """Seconds the product's clock is ahead of the system clock (0 unless the test facility is on)."""
    global _seen, _offset
    where = path()
    if where is None:
        return 0.0
    try:
        st = os.stat(where)
    except OSError:
        return 0.0
    key = (where, st.st_mtime_ns, st.st_size, st.st_ino)
    with _lock:
        if key != _seen:
            try:
                with open(where, encoding="utf-8") as f:
                    _offset = float(f.read().strip() or 0)
            except (OSError, ValueError):
                _offset = 0.0
            _seen = key
        return _offset


def time() -> float:
    """Epoch seconds, offset like ``now``."""
    return _time.time() + offset()


def now() -> dt.datetime:
    """The current UTC time (aware), offset when the test facility is on."""
    return dt.datetime.fromtimestamp(time(), UTC)


def describe(*, always: bool = False) -> str | None:
    """What the test facility does to the clock, else None: for the start-up log (``always``: whenever it is
    on) and /ready (only while the clock is actually offset)."""
    where = path()
    if where is None:
        return None
    moved = offset()
    if not moved and not always:
        return None
    return f"clock offset by {moved:+.0f} s ({ENV}={where}: a test facility, never for production)"


async def wait(seconds: float, *, since: float | None = None) -> None:
    """Wait a provider's window of ``seconds``: exactly ``asyncio.sleep(seconds)`` without the test facility
    (always so in production). With it, the wait ends when the real time has passed OR the product's clock has
    passed ``since`` (a ``time()``; default: now) + ``seconds``, the clock file looked at every WAIT_LOOK.

    ``since``, taken before the product says it waits (a log line), makes a test that moves the clock as soon as
    it sees that line never too early for the wait: the move counts even if it lands before the sleep began."""
    # Only a waiting sync or proxy call, already on an event loop, gets here: asyncio (and ssl with it) stays out
    # of the CLI's start (tests/test_startup.py).
    # start-up: asyncio is imported here, not at the top
    import asyncio

    if path() is None:
        await asyncio.sleep(seconds)
        return
    end = (time() if since is None else since) + seconds
    real_end = _time.monotonic() + seconds
    while True:
        left = real_end - _time.monotonic()
        if left <= 0 or time() >= end:
            return
        await asyncio.sleep(min(WAIT_LOOK, left))
