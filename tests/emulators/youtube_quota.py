"""The YouTube Data API's daily quota, per project (the emulated app), as Google documents it.

Every Data API request costs units (https://developers.google.com/youtube/v3/determine_quota_cost): a list
call 1, ``videos.insert`` 1600, a write (comment insert, update, delete) 50; invalid requests cost too. A
project has 10,000 units a day (``quota_per_day``; tests set it small with ``set_daily_quota``), and the day
resets at midnight Pacific time. A request the remaining quota cannot pay for answers 403 with reason
``quotaExceeded`` (domain ``youtube.quota``) in ``error.errors[0]``, and costs nothing.

The day follows the emulators' clock (``Provider.now``), so a test moves past the reset by moving the clock.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from .oauth2 import json_response

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")
DEFAULT_QUOTA = 10_000
# Gate names that are not Data API calls (OAuth) cost nothing; any other costs 1 unless listed.
FREE = frozenset({"authorize", "token", "refresh", "revoke", "upload_chunk"})
COSTS = {"upload_start": 1600, "comment_insert": 50, "comment_reply": 50, "comment_update": 50, "comment_delete": 50}
QUOTA_MESSAGE = (
    "The request cannot be completed because you have exceeded your "
    '<a href="/youtube/v3/getting-started#quota">quota</a>.'
)


class DailyQuota:
    def reset_quota(self) -> None:
        with self.lock:
            self.quota_per_day = DEFAULT_QUOTA
            self.quota_used: dict[dt.date, int] = {}

    def set_daily_quota(self, units: int) -> None:
        """The project's daily allowance (Google's default is 10,000 units)."""
        with self.lock:
            self.quota_per_day = int(units)

    def quota_day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), PACIFIC).date()

    def quota_left(self) -> int:
        with self.lock:
            return self.quota_per_day - self.quota_used.get(self.quota_day(), 0)

    async def gate(self, endpoint: str):
        fault = await super().gate(endpoint)
        if fault is not None or endpoint in FREE:
            return fault
        cost = COSTS.get(endpoint, 1)
        with self.lock:
            day = self.quota_day()
            used = self.quota_used.get(day, 0)
            if used + cost > self.quota_per_day:
                return json_response(
                    {
                        "error": {
                            "code": 403,
                            "message": QUOTA_MESSAGE,
                            "errors": [
                                {"message": QUOTA_MESSAGE, "domain": "youtube.quota", "reason": "quotaExceeded"}
                            ],
                        }
                    },
                    403,
                )
            self.quota_used[day] = used + cost
        return None
