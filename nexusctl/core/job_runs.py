"""What the scheduled jobs did: one ``job_runs`` row per job, for `nexusctl jobs list`.

The daemon's scheduler writes a job's schedule and next run when it starts,
and its start, outcome and next run around every run; `nexusctl jobs run`
records its runs too (but leaves the schedule alone). Several daemons on one
database share each row: every write is an upsert and the last writer wins,
which is all a status display needs (the work itself is claimed row by row
elsewhere, so the jobs can run in every daemon at once).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from nexusctl.db.fields import utcnow
from nexusctl.db.models import JobRun
from nexusctl.errors import NexusError

TOKEN_REFRESH = "token-refresh"
HOUSEKEEPING = "housekeeping"
INTEGRATION_HEALTH = "integration-health"  # nexusctl.core.health_checks.check_due
HOUSEKEEPING_EVERY = 3600.0
# A next run this far in the past means no daemon is running the job (or it is stuck).
OVERDUE_AFTER = dt.timedelta(minutes=2)
# A run that started this long ago without finishing died with its process.
RUN_GIVEN_UP_AFTER = dt.timedelta(hours=1)
MESSAGE_MAX = 500


def process_name() -> str:
    """hostname:pid of this process: which daemon (or shell) ran or scheduled a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


def every(seconds: float) -> str:
    """A schedule as people write it: 'every 60s', 'every 10m', 'every 1h'."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= max(size, 120) and seconds % size == 0:
            return f"every {int(seconds // size)}{unit}"
    return f"every {seconds:g}s"


def schedules(settings) -> dict[str, str]:
    """The jobs this version runs, with the schedule this configuration gives them."""
    return {
        TOKEN_REFRESH: every(settings.refresh_sweep_seconds),
        HOUSEKEEPING: every(HOUSEKEEPING_EVERY),
        INTEGRATION_HEALTH: every(settings.health_check_seconds),
    }


def _upsert(name: str, **values) -> None:
    now = utcnow()
    values["updated_at"] = now
    row = {"id": uuid.uuid4(), "name": name, "created_at": now, **values}
    (
        JobRun.insert(row)
        .on_conflict(conflict_target=[JobRun.name], update={getattr(JobRun, k): v for k, v in values.items()})
        .execute()
    )


def scheduled(name: str, schedule: str, next_run_at: dt.datetime | None, by: str) -> None:
    """A daemon scheduled ``name``."""
    _upsert(name, schedule=schedule, next_run_at=next_run_at, scheduled_by=by)


def started(name: str, by: str, next_run_at: dt.datetime | None = None) -> dt.datetime:
    changes = {"last_started_at": utcnow(), "ran_by": by}
    if next_run_at is not None:
        changes["next_run_at"] = next_run_at
    _upsert(name, **changes)
    return changes["last_started_at"]


def finished(
    name: str,
    by: str,
    *,
    counts: dict | None = None,
    error: BaseException | None = None,
    next_run_at: dt.datetime | None = None,
) -> None:
    """Record the outcome: ``counts`` of a run that worked, or the ``error`` that stopped it."""
    changes = {
        "last_finished_at": utcnow(),
        "ran_by": by,
        "outcome": "failed" if error else "ok",
        "message": describe(error) if error else None,
        "counts": counts if not error else None,
    }
    if next_run_at is not None:
        changes["next_run_at"] = next_run_at
    _upsert(name, **changes)


def describe(error: BaseException) -> str:
    """A short, secret-free line about a failed run (NexusError messages never hold secrets)."""
    if isinstance(error, NexusError):
        text = f"{error.code}: {error.message}"
    else:  # only the kind of error: arbitrary exception text may quote anything
        text = f"{type(error).__name__} (details in the log)"
    return text[:MESSAGE_MAX]


def listing(settings, now: dt.datetime | None = None) -> list[dict]:
    """Every known job (and any other recorded one), with its state: what `jobs list` shows."""
    now = now or utcnow()
    rows = {row.name: row for row in JobRun.select()}
    configured = schedules(settings)
    names = list(configured) + sorted(set(rows) - set(configured))
    return [_entry(name, rows.get(name), configured.get(name), now) for name in names]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _entry(name: str, row: JobRun | None, configured: str | None, now: dt.datetime) -> dict:
    started_at = row.last_started_at if row else None
    finished_at = row.last_finished_at if row else None
    running = bool(
        started_at and (finished_at is None or started_at > finished_at) and now - started_at < RUN_GIVEN_UP_AFTER
    )
    next_run = row.next_run_at if row else None
    if next_run is None:
        daemon = "not running"
    elif next_run + OVERDUE_AFTER < now and not running:
        daemon = "overdue"
    else:
        daemon = "scheduled"
    return {
        "name": name,
        "schedule": (row.schedule if row and row.schedule else None) or configured,
        "state": "running" if running else ("never run" if started_at is None else "idle"),
        "lastStartedAt": _iso(started_at),
        "lastFinishedAt": _iso(finished_at),
        "outcome": row.outcome if row else None,
        "message": row.message if row else None,
        "counts": row.counts if row else None,
        "ranBy": row.ran_by if row else None,
        "nextRunAt": _iso(next_run),
        "scheduledBy": row.scheduled_by if row else None,
        "daemon": daemon,
    }
