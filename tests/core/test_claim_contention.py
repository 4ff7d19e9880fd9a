"""Two delivery workers on one PostgreSQL database claiming at once (issue 19): both are woken by the one NOTIFY
of an emit, so their claims run together. The claim that comes second must still take due deliveries, past the
rows the first is locking, within each endpoint's room: a second daemon once claimed nothing (its claim picked
the same head rows as the first's, found them locked and skipped them) and sat idle until its next poll while
the first sent all 2,000 deliveries (tests/webhooks/test_delivery_proofs.py)."""

from __future__ import annotations

import collections
import threading

import pytest

from nexusctl.core import deliveries, events, webhooks

# PostgreSQL only: SQLite has one writer, so two claims never run at once there.
pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

WAIT = 30  # seconds: only reached when something hangs


def _queue(keyring, make_integration, hooks: int, per_hook: int) -> list:
    """``per_hook`` events emitted (the product's emit path) to an integration with ``hooks`` webhooks."""
    integration = make_integration()
    made = [
        webhooks.create(keyring, integration_id=integration.id, url=f"https://hooks.example.com/{n}", events=["*"])[0]
        for n in range(hooks)
    ]
    for start in range(0, per_hook, 100):
        count = min(100, per_hook - start)
        outcomes = events.emit_many([(integration.id, "post.created", {"n": start + k}, None) for k in range(count)])
        assert all(isinstance(o, dict) for o in outcomes), outcomes
    return made


def _while_another_claim_is_open(database, first: dict, second: dict) -> tuple[list, list]:
    """The first worker's claim (``first``: claim's arguments) left uncommitted, in its own connection and
    thread, while the second worker claims (``second``) in this one: what each claimed."""
    claimed_first: list = []
    holding, done = threading.Event(), threading.Event()
    failed: list = []

    def first_worker():
        try:
            with database.atomic():
                claimed_first.extend(deliveries.claim(**first))
                holding.set()
                assert done.wait(WAIT)
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread below
            failed.append(exc)
            holding.set()
        finally:
            database.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    try:
        assert holding.wait(WAIT)
        claimed_second = deliveries.claim(**second)
    finally:
        done.set()
        thread.join(WAIT)
    assert not failed, failed
    return claimed_first, claimed_second


def _per_hook(claimed) -> collections.Counter:
    return collections.Counter(c.webhook_id for c in claimed)


def test_a_second_worker_claims_past_the_rows_a_first_claim_holds_on_one_endpoint(database, keyring, make_integration):
    (hook,) = _queue(keyring, make_integration, hooks=1, per_hook=200)
    ask = {"limit": 50, "lease_seconds": 60, "cap": 16}
    first, second = _while_another_claim_is_open(database, ask, ask)
    assert len(first) == 16 and _per_hook(first) == {hook.id: 16}
    # main: [] (the second claim picked the first's 16 and skipped them, locked), then 1 s idle until its poll
    assert len(second) == 16 and _per_hook(second) == {hook.id: 16}
    assert not {c.id for c in first} & {c.id for c in second}  # never the same delivery twice


def test_two_workers_at_once_keep_each_endpoint_within_its_room(database, keyring, make_integration):
    made = _queue(keyring, make_integration, hooks=4, per_hook=60)
    busy, others = made[0], made[1:]
    # Each worker holds sends of the first endpoint: room for 3 more there, 5 at most for the others.
    ask = {"limit": 20, "lease_seconds": 60, "rooms": {busy.id: 3}, "cap": 5}
    first, second = _while_another_claim_is_open(database, ask, ask)
    for claimed in (first, second):
        per_hook = _per_hook(claimed)
        assert per_hook[busy.id] <= 3 and all(per_hook[h.id] <= 5 for h in others), per_hook
    # Of the 20 due past the first claim's, each endpoint has more than its room: the second fills most of them.
    assert len(second) >= 10, _per_hook(second)  # main: 0
    assert not {c.id for c in first} & {c.id for c in second}


def test_what_a_claim_locked_beyond_an_endpoint_s_room_is_claimed_later_not_lost(database, keyring, make_integration):
    """The first claim locks the first 50 due of one endpoint but has room for 4 there; the second claims its room
    past those; once both committed, the 46 locked and not taken are due again: every delivery is claimed once."""
    (hook,) = _queue(keyring, make_integration, hooks=1, per_hook=200)
    first, second = _while_another_claim_is_open(
        database,
        {"limit": 50, "lease_seconds": 60, "rooms": {hook.id: 4}, "cap": 16},
        {"limit": 50, "lease_seconds": 60, "cap": 16},
    )
    assert len(first) == 4 and len(second) == 16  # main: 4 and 12 (the second picked the first's 4 among its 16)
    taken = [c.id for c in first + second]
    while claimed := deliveries.claim(50, 60, cap=16):
        taken += [c.id for c in claimed]
    assert len(taken) == len(set(taken)) == 200
