"""Waiting on a condition with a deadline: the tests never sleep and hope."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float = 15.0, what: str = "condition", interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy (returned); fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # polling a condition the daemon (or another process) brings about on its own
