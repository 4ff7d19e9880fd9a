"""Checking integrations' health, keeping the last status, announcing each change once.

``check`` judges one integration (nexusctl.core.health) and stores the status.
When the status differs from the stored one, the new status and its event go in
one transaction, and the UPDATE is conditional on the old status: of several
daemons (or a daemon and the CLI) checking at once, one writes the change and
announces it; the others find nothing to change.

- to ``degraded`` or ``broken``: ``integration.error`` ``{"code":
  "INTEGRATION_DEGRADED" | "INTEGRATION_BROKEN", "status", "previousStatus",
  "reasons", "message"}``;
- back to ``healthy``: ``integration.recovered`` ``{"status",
  "previousStatus", "message"}`` (the spec's event list has no recovery event).

A first check that finds an integration healthy announces nothing.

``check_due`` is the daemon's job: a bounded batch of integrations whose next
check is due, oldest first, through the ``health_due_at`` index. A failed
refresh, a sync outcome and a (re)connect make an integration due at once;
otherwise it is looked at again after ``recheck`` or when an expiry comes into
view.

A successful refresh needs no check of its own (``after_refresh``): it proves the
token works and changes only what the row says (the reasons of
``health.ROW_CODES``: expiry, refresh outcome), so it re-judges those from the
stored row, keeps the other stored reasons (scopes, syncs, webhooks: judged at the
last check, ``checkedAt``), and stores the status and its change event in the
refresh's own transaction, as a check would have. Never checked yet, a change of
granted scopes, or a check that ran meanwhile: it schedules a check as before.

``list_page`` only reads what the checks stored (one indexed query per page): a
list that re-checked every row it showed cost ~6 queries and a write
transaction per row, per GET. How fresh a listed status is: ``checkedAt``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass

import peewee

from nexusctl.core import events, health, lean
from nexusctl.core.ids import parse_uuid
from nexusctl.core.paging import Page, check_limit
from nexusctl.db.database import database_proxy
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration
from nexusctl.errors import IntegrationNotFound, UsageProblem

RECOVERED = "integration.recovered"
BATCH = 200  # integrations per run of the health job


def windows(settings) -> dict:
    """The settings a check needs: ``lead`` (TOKEN_EXPIRY_WARNING), ``recheck`` (HEALTH_RECHECK) and ``approved``
    (<PROVIDER>_APPROVED_SCOPES: approval-only scopes the service asks for, so a grant lacking one lacks a scope)."""
    return {
        "lead": dt.timedelta(seconds=settings.token_expiry_warning),
        "recheck": dt.timedelta(seconds=settings.health_recheck_seconds),
        "approved": {p: c.approved_scopes for p, c in settings.providers.items() if c.approved_scopes},
    }


def check(integration_id, *, lead: dt.timedelta, recheck: dt.timedelta, owner_id=None, approved=None) -> dict:
    """Judge one integration now, store the status (announcing a change) and return its health record."""
    row_id = parse_uuid(integration_id, "integrationId")
    loaded = health.load(row_id)
    if loaded is None or (owner_id is not None and loaded[0].user_id != owner_id):
        raise IntegrationNotFound(f"integration {row_id} not found", id=str(row_id))
    return _check_loaded(*loaded, lead=lead, recheck=recheck, approved=approved)


def _check_loaded(row: Integration, has_refresh_token: bool, *, lead, recheck, approved=None) -> dict:
    now = utcnow()
    found = health.facts(row, has_refresh_token, now, approved=(approved or {}).get(row.provider, ()))
    status, reasons = health.judge(found, now, lead)
    store(row, status, reasons, now, health.next_check(found, now, lead, recheck))
    return health.record(found, status, reasons, now)


def store(row: Integration, status: str, reasons: list[health.Reason], now: dt.datetime, due: dt.datetime) -> bool:
    """Write the check's outcome; True when the status changed (and was announced, in the same transaction)."""
    values = {
        Integration.health_status: status,
        Integration.health_rank: health.RANK[status],
        Integration.health_reasons: [r.to_dict() for r in reasons],
        Integration.health_checked_at: now,
        Integration.health_due_at: due,
    }
    mine = Integration.id == row.id
    with database_proxy.atomic():
        previous = Integration.select(Integration.health_status).where(mine).scalar()
        if previous == status:
            Integration.update(values).where(mine).execute()
            return False
        # Conditional on the status just read: a concurrent checker that already wrote it finds no row here.
        same = Integration.health_status.is_null() if previous is None else Integration.health_status == previous
        if not Integration.update(values).where(mine & same).execute():
            return False
        _announce(row, previous, status, reasons)
    return True


def _announce(row: Integration, previous: str | None, status: str, reasons: list[health.Reason]) -> None:
    message = "; ".join(r.message for r in reasons)
    if status == health.HEALTHY:
        if previous is not None:
            events.record(
                RECOVERED, row, status=status, previousStatus=previous, message=f"healthy again (was {previous})"
            )
        return
    events.record(
        events.ERROR,
        row,
        code=f"INTEGRATION_{status.upper()}",
        status=status,
        previousStatus=previous,
        reasons=[r.to_dict() for r in reasons],
        message=message,
    )


@dataclass(frozen=True)
class AfterRefresh:
    """The health a successful refresh leaves (``after_refresh``), for the refresh's own fenced UPDATE to store
    (``connections.store_refreshed``): ``values`` (column: value) when the health columns still hold ``fence``
    (as the refresh read them), else a check is asked for at once. Then ``announce`` in the same transaction."""

    previous: str
    status: str
    reasons: tuple
    values: dict
    fence: dict

    def announce(self, row: Integration) -> None:
        if self.status != self.previous:
            _announce(row, self.previous, self.status, list(self.reasons))


def after_refresh(
    row: Integration, read: Integration, *, lead: dt.timedelta, recheck: dt.timedelta
) -> AfterRefresh | None:
    """The health a successful refresh leaves (stored by the refresh's UPDATE, not here); None when it cannot
    say (the refresh then asks for a check). ``row``: the integration as the refresh stores it (the new
    expiry, the refresh outcome), ``read``: its health columns as read by the refresh's claim or load.

    The row's reasons are judged again; the others stay as the last check stored them; the next check is
    when the last one said, or sooner if the new expiry comes into view (the old expiry no longer counts).
    The values are stored only where the status, check time and due date are still as read, so a check that
    ran since wins, and a check asked for while the provider was called (a failed sync, a proxied 5xx) is
    not pushed back: the refresh then asks for one itself."""
    previous, checked_at = read.health_status, read.health_checked_at
    if previous is None or checked_at is None:  # never checked: the first check judges everything
        return None
    now = utcnow()
    found = health.Facts(row, row.refresh_token is not None, health.refresh_token_expiry(row))
    kept = [health.Reason(**r) for r in read.health_reasons or () if r.get("code") not in health.ROW_CODES]
    status, reasons = health.verdict(health.row_reasons(found, now, lead) + kept)
    due = min([checked_at + recheck, *health.expiry_moments(found, now, lead)])
    if read.health_due_at is not None:  # a check asked for already (a failed sync, a proxied 5xx) stays asked for
        due = min(due, read.health_due_at)
    return AfterRefresh(
        previous,
        status,
        tuple(reasons),
        {
            "health_status": status,
            "health_rank": health.RANK[status],
            "health_reasons": [r.to_dict() for r in reasons],
            "health_due_at": due,
        },
        {"health_status": previous, "health_checked_at": checked_at}
        | ({} if read.health_due_at is None else {"health_due_at": read.health_due_at}),
    )


def check_due(*, lead: dt.timedelta, recheck: dt.timedelta, limit: int = BATCH, user_id=None, approved=None) -> dict:
    """Check the integrations whose next check is due (oldest first, at most ``limit``); returns counts."""
    now = utcnow()
    query = Integration.select(Integration.id).where(Integration.health_due_at <= now)
    if user_id is not None:
        query = query.where(Integration.user_id == user_id)
    counts = {"checked": 0, "changed": 0, "healthy": 0, "degraded": 0, "broken": 0}
    for (row_id,) in query.order_by(Integration.health_due_at).limit(limit).tuples():
        loaded = health.load(row_id)
        if loaded is None:  # deleted meanwhile
            continue
        before = loaded[0].health_status
        result = _check_loaded(*loaded, lead=lead, recheck=recheck, approved=approved)
        counts["checked"] += 1
        counts[result["status"]] += 1
        counts["changed"] += result["status"] != before
    return counts


# --- listing: the stored statuses, worst first, one keyset page at a time -------------


def parse_statuses(value) -> list[str] | None:
    """``degraded,broken`` -> ["degraded", "broken"]; None or empty: every status."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    statuses = [str(s).strip().lower() for s in items if str(s).strip()]
    wrong = [s for s in statuses if s not in health.STATUSES]
    if wrong:
        raise UsageProblem(
            f"status must be among {', '.join(health.STATUSES)} (got {', '.join(wrong)})", field="status"
        )
    return statuses


def _decode(cursor: str) -> tuple[int, dt.datetime, uuid.UUID]:
    try:
        rank, created, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(rank), dt.datetime.fromisoformat(created), uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError):
        raise UsageProblem("cursor is not one this service issued", field="cursor") from None


def list_page(*, user_id=None, statuses=None, limit=None, cursor=None) -> Page:
    """Stored health summaries, worst first: one indexed query, no check and no write.

    The daemon's integration-health job (``check_due``) keeps the stored status fresh;
    a never-checked integration shows ``unknown``. The live check of one integration
    is ``check``. Read lean (nexusctl.core.lean: the shown columns as tuples, one
    statement per shape of filters)."""
    limit = check_limit(limit, LIST_MAX)
    statuses = parse_statuses(statuses)
    where = {}
    if user_id is not None:
        where['t."user_id" = ?'] = [Integration.user_id.db_value(parse_uuid(user_id, "userId"))]
    if statuses is not None:
        # The rank narrows the index range; the status leaves out never-checked rows (rank 0, status NULL).
        statuses = sorted(set(statuses))
        ranks = sorted({health.RANK[s] for s in statuses})
        marks = ", ".join("?" * len(ranks)), ", ".join("?" * len(statuses))
        where[f't."health_rank" IN ({marks[0]}) AND t."health_status" IN ({marks[1]})'] = [*ranks, *statuses]
    after = None
    if cursor:
        rank, created, row_id = _decode(cursor)
        after = [rank, Integration.created_at.db_value(created), Integration.id.db_value(row_id)]
    rows, more = lean.read(_LISTED, where, limit, order=("health_rank", "created_at", "id"), after=after)
    items = [_summary_row(values) for values in rows]
    return Page(items, _encode_key(rows[-1]) if more and rows else None, limit)


def _summary_row(v) -> dict:
    """``summary`` of a row read lean (_SUMMARY_COLUMNS)."""
    return {
        "integrationId": v[0],
        "userId": v[1],
        "provider": v[2],
        "name": v[3],
        "isActive": v[4],
        "status": v[5] or UNKNOWN,
        "reasons": list(v[7] or []),
        "checkedAt": v[8],
        "nextCheckAt": v[9],
    }


def _encode_key(v) -> str:
    """``_encode`` of a row read lean: its created_at as the API writes it (...Z)."""
    raw = json.dumps([v[6], v[10][:-1] + "+00:00", v[0]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


LIST_MAX = 100  # rows per page of the health list
UNKNOWN = "unknown"  # never checked yet: the health job takes it on its next run (health_due_at)


_SUMMARY_COLUMNS = (
    ("id", "uuid"),
    ("user_id", "uuid"),
    ("provider", "raw"),
    ("name", "raw"),
    ("is_active", "bool"),
    ("health_status", "raw"),
    ("health_rank", "raw"),
    ("health_reasons", "json"),
    ("health_checked_at", "time"),
    ("health_due_at", "time"),
    ("created_at", "time"),
)
_LISTED = lean.Listing("integrations", _SUMMARY_COLUMNS)


def summary(row: Integration) -> dict:
    """What the last check stored, with when it ran (``checkedAt``) and when the next is due (``nextCheckAt``)."""
    return {
        "integrationId": str(row.id),
        "userId": str(row.user_id),
        "provider": row.provider.value,
        "name": row.name,
        "isActive": row.is_active,
        "status": row.health_status or UNKNOWN,
        "reasons": list(row.health_reasons or []),
        "checkedAt": health._iso(row.health_checked_at),
        "nextCheckAt": health._iso(row.health_due_at),
    }


# --- gauges ------------------------------------------------------------------------------


def gauges(now: dt.datetime | None = None) -> dict:
    """For /metrics, two aggregate queries: integrations by provider and stored status (``unknown``: never
    checked), and active tokens expiring within 24 hours (the partial index on expires_at)."""
    now = now or utcnow()
    by_status = [
        (provider.value if hasattr(provider, "value") else provider, status or "unknown", count)
        for provider, status, count in Integration.select(
            Integration.provider, Integration.health_status, peewee.fn.COUNT(Integration.id)
        )
        .group_by(Integration.provider, Integration.health_status)
        .tuples()
    ]
    expiring = (
        Integration.select()
        .where(
            (Integration.is_active == True)  # noqa: E712
            & (Integration.expires_at > now)
            & (Integration.expires_at <= now + dt.timedelta(hours=24))
        )
        .count()
    )
    return {"byStatus": by_status, "expiringWithin24h": expiring}
