"""The shared clock from a test's side: what "now" is for the daemons, their CLI and the emulators, and moving it.

The session's emulators own the clock file (tests/emulators/fixtures.py); every daemon and CLI run on them reads
it (nexusctl.clock). Tests move time with these helpers instead of rewriting timestamps in the database. Time
only moves forward, also across ``fresh_emulators``' resets: read "now" here, never from the system clock.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from nexusctl import clock as product_clock

UTC = dt.timezone.utc


def now(emulators) -> dt.datetime:
    """The shared clock's now (aware UTC): the daemon's, the CLI's and the providers'."""
    return dt.datetime.fromtimestamp(emulators.now(), UTC)


def aware(value) -> dt.datetime | None:
    """A timestamp as read from SQLite (text, naive UTC) or PostgreSQL (aware): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pass_until(emulators, when, margin: float = 1.0) -> None:
    """Time passes until ``margin`` seconds after ``when`` (a stored timestamp: a retry time, an expiry)."""
    emulators.advance_clock(max(0.0, (aware(when) - now(emulators)).total_seconds() + margin))


def expire_in(stack, seconds: float, integration_id: str) -> None:
    """Time passes until the integration's token expires in ``seconds`` (negative: it lapsed that long ago):
    the daemons' sweep and the provider see the same hour, and the stored expiry stays what the provider's
    expires_in made it."""
    (expires,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", integration_id)[0]
    stack.emulators.advance_clock((aware(expires) - now(stack.emulators)).total_seconds() - seconds)


def use_file(monkeypatch, path) -> None:
    """The product's clock in this test's own process reads ``path`` (daemons and CLI runs get the setting in
    their environment). nexusctl.clock reads the setting once per process, so it is read again here."""
    monkeypatch.setenv(product_clock.ENV, str(path))
    product_clock.reload()


def stop_using(monkeypatch) -> None:
    """The product's clock in this process is the system clock again."""
    monkeypatch.delenv(product_clock.ENV, raising=False)
    product_clock.reload()


def own_file(monkeypatch, path):
    """A clock of this test's own, for tests without emulators: the product's clock in this process (and the CLI
    runs it starts) reads ``path``, at no offset yet. Returns ``advance(seconds)``, which moves it forward."""
    path = Path(path)
    moved = [0.0]

    def advance(seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the shared clock only moves forward (asked to move {seconds:+g} s)")
        moved[0] += seconds
        staged = path.with_name(path.name + ".partial")
        staged.write_text(f"{moved[0]!r}\n")
        os.replace(staged, path)  # a new inode: every reader sees the change at its next look

    advance(0)
    use_file(monkeypatch, path)
    return advance


def pass_while(emulators, waiting, step: float, timeout: float, what: str = "the wait to end") -> None:
    """While ``waiting()`` says the product waits on a provider's window (a status the test reads), time passes
    ``step`` seconds (at least the longest single wait) every 50 ms: a wait under way ends at its next look at
    the clock (nexusctl.clock.wait), one that starts after a move is caught by the next move."""
    deadline = time.monotonic() + timeout
    while waiting():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        emulators.advance_clock(step)
        time.sleep(0.05)  # the product's waits look at the clock file every 50 ms
