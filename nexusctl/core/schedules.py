"""`metadata.syncSchedule`: when an integration syncs by itself.

Either an interval (`15m`, `1h`, `6h`, `1d`, or seconds; at least 5 minutes, at most 100 years)
or a five-field cron expression in UTC (`0 */6 * * *`). The next run time is
stored in ``integrations.next_sync_at`` (indexed), which the daemon's sync
runner claims with a conditional UPDATE, so several daemons start each
scheduled run once.
"""

from __future__ import annotations

import datetime as dt

from nexusctl.config import MAX_DURATION_TEXT, parse_duration
from nexusctl.errors import UsageProblem

MIN_INTERVAL = 300.0
KEY = "syncSchedule"


def next_run(schedule, after: dt.datetime) -> dt.datetime:
    """The first run time after ``after`` (UTC); UsageProblem naming the field if ``schedule`` is not one."""
    if not isinstance(schedule, str) or not schedule.strip() or len(schedule) > 100:
        raise UsageProblem(
            "metadata.syncSchedule must be an interval (1h, 30m) or a cron expression ('0 */6 * * *')", field=KEY
        )
    text = schedule.strip()
    seconds = parse_duration(text)
    if seconds is not None:
        if seconds < MIN_INTERVAL:
            raise UsageProblem(
                f"metadata.syncSchedule: an interval must be at least {MIN_INTERVAL / 60:.0f} minutes", field=KEY
            )
        return after + dt.timedelta(seconds=seconds)
    if len(text.split()) != 5:
        raise UsageProblem(
            f"metadata.syncSchedule: {text!r} is neither an interval (1h, 30m; {MAX_DURATION_TEXT}) nor a "
            "five-field cron expression ('0 */6 * * *')",
            field=KEY,
        )
    # start-up: APScheduler loads only for a cron schedule
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(text, timezone=dt.timezone.utc)
    except ValueError as exc:
        raise UsageProblem(
            f"metadata.syncSchedule: {text!r} is not a valid cron expression ({exc})", field=KEY
        ) from None
    return trigger.get_next_fire_time(None, after)


def next_for(metadata: dict | None, after: dt.datetime) -> dt.datetime | None:
    schedule = (metadata or {}).get(KEY)
    return None if schedule in (None, "") else next_run(schedule, after)
