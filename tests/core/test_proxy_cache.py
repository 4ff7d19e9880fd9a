"""The API proxy's cache of integrations and tokens (nexusctl.core.proxy_cache): a load that began before the
integration was changed never puts its older row back, even across the drop of every per-id counter."""

from __future__ import annotations

import pytest

from nexusctl.core import proxy_cache


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    monkeypatch.setattr(proxy_cache, "MAX_ENTRIES", 3)  # the counters are dropped past 4 x 3 ids
    proxy_cache.clear()
    yield
    proxy_cache.clear()


def test_a_load_that_began_before_a_change_is_not_kept():
    seen = proxy_cache.generation("a")
    proxy_cache.forget("a")  # changed while the load read the row
    proxy_cache.put("a", "old row", "old tokens", seen)
    assert proxy_cache.get("a") is None
    proxy_cache.put("a", "new row", "new tokens", proxy_cache.generation("a"))
    assert proxy_cache.get("a") == ("new row", "new tokens")


@pytest.mark.parametrize("dropped_by", ["its own change", "other integrations' changes"])
def test_a_load_in_flight_when_every_counter_is_dropped_is_not_kept(dropped_by):
    """Without the epoch, the drop took "a"'s counter back to what the load had seen (0), and the row read
    before the change was put back for up to TTL."""
    seen = proxy_cache.generation("a")
    if dropped_by == "its own change":
        for other in range(4 * proxy_cache.MAX_ENTRIES):
            proxy_cache.forget(f"other-{other}")
        proxy_cache.forget("a")  # this change is the one past the bound: every counter goes
    else:
        proxy_cache.forget("a")
        for other in range(4 * proxy_cache.MAX_ENTRIES):
            proxy_cache.forget(f"other-{other}")
    assert len(proxy_cache._generation) <= 4 * proxy_cache.MAX_ENTRIES  # dropped: bounded memory
    proxy_cache.put("a", "old row", "old tokens", seen)
    assert proxy_cache.get("a") is None
    fresh = proxy_cache.generation("a")
    proxy_cache.put("a", "new row", "new tokens", fresh)
    assert proxy_cache.get("a") == ("new row", "new tokens")


def test_an_unchanged_integration_is_kept_and_served_for_its_ttl():
    proxy_cache.put("b", "row", "tokens", proxy_cache.generation("b"))
    assert proxy_cache.get("b") == ("row", "tokens")
    proxy_cache.forget("b")
    assert proxy_cache.get("b") is None
