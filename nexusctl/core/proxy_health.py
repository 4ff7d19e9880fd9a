"""Proxied provider calls as integration health sees them (migration 0015).

A proxied call the provider throttled (429, or its own throttling signal, or a
wait the integration's rate budget still keeps) is ``RATE_LIMITED``; a 5xx or
an unreachable provider is ``PROVIDER_ERROR``. Either is kept on the row
(``proxy_failed_at``, ``proxy_error_code``, ``proxy_error``) and makes the
integration due for a health check at once; nexusctl.core.health reports it
as degraded (PROXY_RATE_LIMITED, PROXY_FAILING) until a later proxied call gets
a usable answer (2xx, 3xx, or a 4xx that is the caller's: a 404 for a path
that does not exist, a 400 for a bad body), which clears it. A refused token
goes the refresh way (nexusctl.core.proxy.note_refused: REFRESH_FAILING).

Writes happen only when the recorded state changes, and a repeated failure of
the same kind rewrites its time at most every REWRITE_AFTER: a storm of
throttled calls is not a storm of writes.
"""

from __future__ import annotations

import datetime as dt

from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration

RATE_LIMITED, PROVIDER_ERROR, OK = "RATE_LIMITED", "PROVIDER_ERROR", "OK"
REWRITE_AFTER = dt.timedelta(seconds=30)


def outcome_of(status: int) -> str | None:
    """What a proxied call's final status means for health (0: the provider was unreachable); None: nothing
    (a refused token is handled by the refresh path)."""
    if status == 429:
        return RATE_LIMITED
    if status == 0 or status >= 500:
        return PROVIDER_ERROR
    if status == 401:
        return None
    return OK


def worth_writing(row, outcome: str) -> bool:
    """Whether ``outcome`` changes what the row (as this process last saw it) records."""
    if outcome == OK:
        return row.proxy_failed_at is not None
    return (
        row.proxy_error_code != outcome or row.proxy_failed_at is None or row.proxy_failed_at < utcnow() - REWRITE_AFTER
    )


def record(row_id, outcome: str, message: str) -> None:
    now = utcnow()
    if outcome == OK:
        Integration.update(proxy_failed_at=None, proxy_error_code=None, proxy_error=None, health_due_at=now).where(
            (Integration.id == row_id) & Integration.proxy_failed_at.is_null(False)
        ).execute()
        return
    Integration.update(
        proxy_failed_at=now, proxy_error_code=outcome, proxy_error=message[:500], health_due_at=now
    ).where(Integration.id == row_id).execute()


def remember(row, outcome: str, message: str) -> None:
    """The same change on the (cached) row this process holds, so it is not written again and again."""
    if outcome == OK:
        row.proxy_failed_at = row.proxy_error_code = row.proxy_error = None
    else:
        row.proxy_failed_at, row.proxy_error_code, row.proxy_error = utcnow(), outcome, message[:500]
