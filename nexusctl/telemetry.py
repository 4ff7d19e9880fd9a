"""What core and the providers report for the daemon's /metrics: refreshes, sync runs, provider calls,
OAuth flows and delivery attempts.

The kernel holds no metrics library. The daemon installs a sink (``nexusctl.daemon.observe.Metrics``) when it
starts; in the CLI nothing is installed, every call here is one ``None`` check, and the CLI does not
import prometheus_client (start-up time). The sink is per process: one daemon process, one set of
figures, which is how Prometheus scrapes it.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def refresh(self, provider: str, outcome: str) -> None: ...
    def sync_run(self, action: str, outcome: str) -> None: ...
    def provider_call(self, provider: str, status: str, seconds: float) -> None: ...
    def oauth_flow(self, provider: str, outcome: str) -> None: ...
    def delivery_attempt(self, outcome: str) -> None: ...
    def emit_to_attempt(self, seconds: float) -> None: ...


_sink: Sink | None = None


def install(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def installed() -> Sink | None:
    return _sink


def refresh(provider: str, outcome: str) -> None:
    """outcome: refreshed, not_yet, failed, revoked, error."""
    if _sink is not None:
        _sink.refresh(provider, outcome)


def sync_run(action: str, outcome: str) -> None:
    """outcome: the run's final status, lower case (completed, failed, cancelled, ...)."""
    if _sink is not None:
        _sink.sync_run(action, outcome)


def provider_call(provider: str, status: str, seconds: float) -> None:
    """status: the HTTP status code, or ``error`` when no answer came."""
    if _sink is not None:
        _sink.provider_call(provider, status, seconds)


def oauth_flow(provider: str, outcome: str) -> None:
    """outcome: started, connected, denied, failed."""
    if _sink is not None:
        _sink.oauth_flow(provider, outcome)


def delivery_attempt(outcome: str) -> None:
    """outcome: delivered, retrying, failed, disabled, lost, released (what attempts.record_many answered)."""
    if _sink is not None:
        _sink.delivery_attempt(outcome)


def emit_to_attempt(seconds: float) -> None:
    """From a delivery's creation (the event's emit) to its first attempt."""
    if _sink is not None:
        _sink.emit_to_attempt(seconds)
