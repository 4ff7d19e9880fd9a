"""Scheduled jobs inside `nexusctl daemon` (APScheduler 3.x on the daemon's event loop).

The scheduler only triggers; the work is claimed in the database (the refresh
sweep claims each integration with its lease, housekeeping deletes in
idempotent batches), so several daemons on one PostgreSQL never refresh an
integration twice. Each run is recorded in ``job_runs`` for `nexusctl jobs
list`: the row is shared by the daemons, last writer wins.

Webhook deliveries need no reaper job: a delivery's lease is a timestamp, and
the worker's claim takes rows whose lease expired (nexusctl.core.deliveries),
so a dead worker's deliveries are picked up again by any live one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from nexusctl import clock, tracing
from nexusctl.core import job_runs, job_work, refresh_window
from nexusctl.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def warn_about_settings(settings) -> None:
    """What `nexusctl doctor` warns about the jobs' settings, logged once at start: a TOKEN_REFRESH_WINDOW that
    covers a configured provider's whole token lifetime refreshes its tokens on every sweep."""
    if (wide := refresh_window.too_wide(settings)) is not None:
        log.warning("%s; %s", wide.message, wide.hint)


def start_scheduler(settings, services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=dt.timezone.utc)
    me = job_runs.process_name()
    now = dt.datetime.now(dt.timezone.utc)

    def work(name):
        return lambda: job_work.WORK[name](services)

    # What each job does is nexusctl.core.job_work's (shared with `nexusctl jobs run`); when is here.
    jobs = [
        (job_runs.TOKEN_REFRESH, work(job_runs.TOKEN_REFRESH), settings.refresh_sweep_seconds, now),
        (
            job_runs.HOUSEKEEPING,
            work(job_runs.HOUSEKEEPING),
            job_runs.HOUSEKEEPING_EVERY,
            now + dt.timedelta(minutes=1),
        ),
        (job_runs.INTEGRATION_HEALTH, work(job_runs.INTEGRATION_HEALTH), settings.health_check_seconds, now),
    ]
    for name, job, seconds, first in jobs:
        scheduler.add_job(
            _recorded(scheduler, services, me, name, job),
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=first,
        )
    scheduler.nexus_runs = set()  # the runs under way (their tasks), waited for by ``stop_scheduler``
    scheduler.start()
    # Held on the scheduler so the task is not collected before it has written.
    scheduler.nexus_announced = asyncio.get_running_loop().create_task(
        _announce(scheduler, services, me, [(name, seconds) for name, _, seconds, _ in jobs])
    )
    return scheduler


# Seconds the daemon waits for interrupted runs to wind up (the sweep: 5 s for provider calls to answer, then their
# stores); with the 10 s for requests this stays within the README's systemd TimeoutStopSec=30.
STOP_TIMEOUT = 15.0


async def stop_scheduler(scheduler: AsyncIOScheduler, timeout: float = STOP_TIMEOUT) -> None:
    """Stop triggering, interrupt the runs under way and wait for them to wind up (bounded), while the database is
    still open: an interrupted refresh sweep stores the tokens its provider calls already returned (a rotated
    refresh token lost here would kill the grant at the next refresh)."""
    runs = set(scheduler.nexus_runs)
    scheduler.shutdown(wait=False)  # cancels the runs under way (APScheduler's executor)
    for task in runs:
        if not task.cancelling():  # one the executor no longer tracked
            task.cancel()
    if not runs:
        return
    _, late = await asyncio.wait(runs, timeout=timeout)
    if late:
        log.warning(
            "%d scheduled job run(s) still under way %.0f s after the daemon began stopping: stopping without them",
            len(late),
            timeout,
        )


def _next_run(scheduler: AsyncIOScheduler, name: str) -> dt.datetime | None:
    """When the job runs next, on the product's clock like every stored time (the scheduler keeps the system
    clock's: under the test facility's offset, `jobs list` would otherwise call every job overdue)."""
    job = scheduler.get_job(name)
    if job is None or job.next_run_time is None:
        return None
    return job.next_run_time + dt.timedelta(seconds=clock.offset())


async def _announce(scheduler, services, me: str, jobs) -> None:
    for name, seconds in jobs:
        await _record(services, job_runs.scheduled, name, job_runs.every(seconds), _next_run(scheduler, name), me)


def _recorded(scheduler, services, me: str, name: str, work):
    """``work`` with its start, outcome and the next run written to job_runs around it."""

    async def run():
        task = asyncio.current_task()
        scheduler.nexus_runs.add(task)
        try:
            await _run_recorded(scheduler, services, me, name, work)
        except asyncio.CancelledError:
            # The daemon is stopping mid-run. The task is APScheduler's own and ends here, so
            # returning (not re-raising) keeps its "raised an exception" traceback out of the log;
            # claimed work is fenced by leases, so a run cut short leaves nothing half-done.
            log.info("%s interrupted: the daemon is stopping", name)
        finally:
            scheduler.nexus_runs.discard(task)

    run.__name__ = name.replace("-", "_")
    return run


async def _run_recorded(scheduler, services, me: str, name: str, work) -> None:
    with tracing.span(f"job {name}", {"nexus.job": name}):  # a no-op unless traces are on
        await _run_job(scheduler, services, me, name, work)


async def _run_job(scheduler, services, me: str, name: str, work) -> None:
    # APScheduler has already worked out the next run when it starts this one.
    await _record(services, job_runs.started, name, me, _next_run(scheduler, name))
    try:
        counts = await work()
    except DatabaseUnavailable as exc:  # an outage, not a bug: one line, no stack; the next run tries again
        log.warning("%s failed: %s", name, exc.message)
        await _record(services, job_runs.finished, name, me, error=exc, next_run_at=_next_run(scheduler, name))
        return
    except Exception as exc:  # noqa: BLE001 - a failed run is logged and recorded; the next runs on schedule
        log.exception("%s failed", name)
        await _record(services, job_runs.finished, name, me, error=exc, next_run_at=_next_run(scheduler, name))
        return
    await _record(services, job_runs.finished, name, me, counts=counts, next_run_at=_next_run(scheduler, name))


async def _record(services, fn, *args, **kwargs) -> None:
    try:
        await services.run(fn, *args, **kwargs)
    except DatabaseUnavailable:  # the job's own outcome says so already
        pass
    except Exception:  # noqa: BLE001 - the record is for display; the job itself goes on
        log.warning("could not record a run of a scheduled job in job_runs", exc_info=True)
