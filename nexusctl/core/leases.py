"""Named leases: one holder at a time, renewed while held, taken over once expired.

The outbox relay holds ``outbox-relay`` so that one daemon publishes at a
time and events leave in the order they were written. A lease is one row;
taking it is one conditional UPDATE (PostgreSQL's row lock and SQLite's single
writer make exactly one contender win), so no session-bound advisory lock has
to survive connection pooling. A holder that dies simply stops renewing.
"""

from __future__ import annotations

import datetime as dt

from nexusctl.db.fields import utcnow
from nexusctl.db.models import Lease


def acquire(name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew ``name`` for ``ttl_seconds``; False while someone else holds it."""
    if _renew_or_take(name, holder, ttl_seconds):
        return True
    # No row yet: create it; of two creators the primary key lets one in, then both try again.
    Lease.insert(name=name, holder=holder, until=utcnow()).on_conflict_ignore().execute()
    return _renew_or_take(name, holder, ttl_seconds)


def _renew_or_take(name: str, holder: str, ttl_seconds: float) -> bool:
    now = utcnow()
    return (
        Lease.update(holder=holder, until=now + dt.timedelta(seconds=ttl_seconds), updated_at=now)
        .where((Lease.name == name) & ((Lease.holder == holder) | (Lease.until <= now)))
        .execute()
        == 1
    )


def release(name: str, holder: str) -> None:
    """Give the lease up now (a clean shutdown), so another daemon need not wait for it to expire."""
    Lease.update(until=utcnow() - dt.timedelta(seconds=1)).where(
        (Lease.name == name) & (Lease.holder == holder)
    ).execute()


def holder_of(name: str) -> tuple[str, dt.datetime] | None:
    row = Lease.select(Lease.holder, Lease.until).where(Lease.name == name).tuples().first()
    return None if row is None or row[1] <= utcnow() else row
