"""TOKEN_REFRESH_WINDOW against the providers' access-token lifetimes: the advice `nexusctl doctor` gives and
the daemon logs once at start.

The sweep refreshes a token once it expires within the window (nexusctl.core.refresh). A window at least as
long as a provider's access tokens live puts every fresh token of that provider inside it again, so each sweep
(every REFRESH_SWEEP_INTERVAL) refreshes all of them: a call per integration a minute where one an hour would
do, and the provider's rate limits hit. Only providers with credentials count: the others connect nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nexusctl.enums import Provider
from nexusctl.providers.registry import SPECS

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class TooWide:
    """The window, the configured providers whose tokens it covers whole (shortest-lived first), and advice."""

    window: dt.timedelta
    providers: list[tuple[Provider, dt.timedelta]]

    @property
    def message(self) -> str:
        named = ", ".join(f"{p.value} ({duration_text(life)})" for p, life in self.providers)
        return (
            f"TOKEN_REFRESH_WINDOW={duration_text(self.window)} is not shorter than the access-token lifetime of "
            f"{named}: every refresh sweep refreshes each of their tokens again"
        )

    @property
    def hint(self) -> str:
        shortest = self.providers[0][1]
        half = dt.timedelta(seconds=max(60, int(shortest.total_seconds() // 2) // 60 * 60))
        return (
            f"set TOKEN_REFRESH_WINDOW below {duration_text(shortest)}, such as {duration_text(half)} "
            "(the default is 10m)"
        )


def too_wide(settings) -> TooWide | None:
    """The providers with credentials whose typical access-token lifetime is at most TOKEN_REFRESH_WINDOW."""
    window = dt.timedelta(seconds=settings.token_refresh_window)
    covered = [
        (provider, spec.token_lifetime)
        for provider, spec in SPECS.items()
        if spec.can_refresh
        and spec.token_lifetime is not None
        and spec.token_lifetime <= window
        and settings.providers[provider].any_configured
    ]
    if not covered:
        return None
    return TooWide(window, sorted(covered, key=lambda found: (found[1], found[0].value)))


def duration_text(length: dt.timedelta) -> str:
    """1800 s -> 30m, 7200 s -> 2h, 5400 s -> 90m: the largest unit that divides it (as settings are written)."""
    seconds = int(length.total_seconds())
    for unit, size in _UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{length.total_seconds():g}s"
