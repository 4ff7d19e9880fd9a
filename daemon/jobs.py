"""Scheduled jobs inside `nexusctl daemon` (APScheduler 3.x on the daemon's event loop).

The scheduler only triggers; the work is claimed in the database (the refresh
sweep claims each integration with its lease), so several daemons on one
PostgreSQL never refresh an integration twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from nexusctl.core import housekeeping, refresh

log = logging.getLogger(__name__)


def start_scheduler(settings, services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=dt.timezone.utc)
    window = dt.timedelta(seconds=settings.token_refresh_window)

    async def token_refresh_sweep():
        try:
            counts = await refresh.sweep(services, window)
        except Exception:  # noqa: BLE001 - a failed pass is logged; the next one runs on schedule
            log.exception("token refresh sweep failed")
            return
        if counts["refreshed"] or counts["failed"]:
            log.info("token refresh sweep: %(refreshed)d refreshed, %(failed)d failed, %(skipped)d skipped", counts)

    scheduler.add_job(token_refresh_sweep, "interval", seconds=settings.refresh_sweep_seconds, id="token_refresh",
                      max_instances=1, coalesce=True, next_run_time=dt.datetime.now(dt.timezone.utc))

    async def housekeeping_job():
        # Idempotent deletes in batches: two daemons running it at once just share the work.
        try:
            counts = await services.run(housekeeping.run, settings.retention_days)
        except Exception:  # noqa: BLE001 - logged; the next run is an hour away
            log.exception("housekeeping failed")
            return
        log.info("housekeeping: %s", counts)

    scheduler.add_job(housekeeping_job, "interval", hours=1, id="housekeeping", max_instances=1, coalesce=True,
                      next_run_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))
    scheduler.start()
    return scheduler
