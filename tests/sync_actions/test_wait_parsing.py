"""A provider's wait, in whatever digits it came: never an exception, never another script's digits read.

str.isdigit() takes '²' (which int() then refuses: the call a 500), and \\d and int() take Arabic-Indic digits;
a Google "Retry after <time>" with a time that is no date raised from fromisoformat().
"""

from __future__ import annotations

import pytest

from nexusctl.providers.adapters.standard import google_throttle
from nexusctl.providers.http import Reply, exhausted_wait, retry_after


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "\uff11", "1\u0660"])
def test_a_retry_after_in_other_digits_is_no_wait_given(value):
    assert retry_after(Reply(429, {"Retry-After": value}, None)) is None
    assert retry_after(Reply(429, {"X-RateLimit-Reset": value}, None)) is None
    assert exhausted_wait({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": value}) is None
    assert retry_after(Reply(429, {"Retry-After": "7"}, None)) == 7  # ASCII digits as ever


@pytest.mark.parametrize(
    "when", ["2026-13-45T00:00:00Z", "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"], ids=["no date", "other digits"]
)
def test_a_google_retry_after_time_that_is_no_date_is_a_throttle_of_unknown_length(when):
    body = {"error": {"errors": [{"reason": "rateLimitExceeded"}], "message": f"Quota exceeded. Retry after {when}"}}
    assert google_throttle(Reply(403, {}, body)) is None
