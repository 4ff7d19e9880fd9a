"""What each scheduled job does: one registry for the daemon's scheduler and `nexusctl jobs run`.

Each job is an async function of the services (``svc.settings``, ``svc.run`` for
database work) returning its counts, so a run from the CLI does the same work as
the daemon's: the token refresh drains passes for at most one interval, not one
pass. The names are job_runs', where the runs are recorded.
"""

from __future__ import annotations

import datetime as dt
import logging

from nexusctl.core import health_checks, job_runs, refresh
from nexusctl.core import housekeeping as work
from nexusctl.errors import UsageProblem

log = logging.getLogger(__name__)


async def token_refresh(svc) -> dict:
    settings = svc.settings
    # Full passes follow each other within one interval, so a burst of expiries is not left to lapse.
    counts = await refresh.drain(
        svc, dt.timedelta(seconds=settings.token_refresh_window), seconds=settings.refresh_sweep_seconds
    )
    if counts["refreshed"] or counts["failed"] or counts["warned"]:
        log.info(
            "token refresh sweep: %(refreshed)d refreshed, %(failed)d failed, %(skipped)d skipped, "
            "%(notYet)d not refreshable yet, "
            "%(warned)d expiry warnings",
            counts,
        )
    return counts


async def housekeeping(svc) -> dict:
    settings = svc.settings
    # Idempotent deletes in batches: two daemons running it at once just share the work.
    # With Redis a relay publishes the outbox: never purge an event it has not published yet.
    counts = await svc.run(work.run, settings.retention_days, keep_unpublished_events=settings.redis_url is not None)
    log.info("housekeeping: %s", counts)
    return counts


async def integration_health(svc) -> dict:
    # A bounded batch of due checks per run; each status change is written with its event, once.
    counts = await svc.run(health_checks.check_due, **health_checks.windows(svc.settings))
    if counts["changed"]:
        log.info("integration health: %(checked)d checked, %(changed)d changed status", counts)
    return counts


WORK = {
    job_runs.TOKEN_REFRESH: token_refresh,
    job_runs.HOUSEKEEPING: housekeeping,
    job_runs.INTEGRATION_HEALTH: integration_health,
}
NAMES = tuple(WORK)


def require(name: str) -> str:
    """``name`` if it is a job, else a UsageProblem listing the jobs."""
    if name not in WORK:
        raise UsageProblem(f"unknown job {name!r}; expected one of: {', '.join(NAMES)}", field="job")
    return name
