"""The delivery worker's claim on PostgreSQL reads the rows it takes, not the backlog, whatever the table's
statistics say (issue 19): with statistics older than the backlog the planner once read every due row on each
claim (the lock step and the UPDATE through the due index, or the head by a bitmap scan and a sort), so that a
claim's cost grew with the backlog just when there was one."""

from __future__ import annotations

import collections
import threading

import pytest
from support.plans import EXPLAIN, nodes, plan_of

from nexusctl.core import deliveries, events, webhooks
from nexusctl.db import statements

# PostgreSQL only: the database fixtures' SQLite half is left out (SQLite's claim is another statement).
pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

BACKLOG = 1200  # deliveries due, queued by emits
TAKEN = 10


def _queue_backlog(database, keyring, make_integration, hooks: int) -> list:
    integration = make_integration()
    made = [
        webhooks.create(keyring, integration_id=integration.id, url=f"https://hooks.example.com/{n}", events=["*"])[0]
        for n in range(hooks)
    ]
    per_event = len(made)
    for start in range(0, BACKLOG // per_event, 100):
        count = min(100, BACKLOG // per_event - start)
        outcomes = events.emit_many([(integration.id, "post.created", {"n": start + k}, None) for k in range(count)])
        assert all(isinstance(o, dict) for o in outcomes), outcomes
    return made


def _stale_statistics(database) -> None:
    """Statistics taken while nothing was due, as after a quiet spell: the planner believes a handful are."""
    with database.atomic():
        database.execute_sql("UPDATE webhook_deliveries SET status = 'DELIVERED'")
        database.execute_sql("ANALYZE webhook_deliveries")
        database.execute_sql("UPDATE webhook_deliveries SET status = 'PENDING'")


def _explained_claim(database, rooms: dict, cap: int) -> dict:
    """The claim's own statement under its own plan settings, EXPLAIN ANALYZEd, then rolled back."""
    from nexusctl.db.fields import utcnow

    now = utcnow()
    values = {
        "until": now,
        "lease": "00000000-0000-4000-8000-000000000000",
        "now": now,
        "limit": TAKEN,
        "cap": cap,
        "exclude": statements.array_text(()),
        "busy": statements.array_text(rooms),
        "rooms": statements.array_text([int(n) for n in rooms.values()]),
    }
    params = [values[n] for n in deliveries._PG_CLAIM_NAMES]
    with database.atomic() as transaction:
        cursor = database.execute_sql(deliveries._PG_CLAIM_PLAN + EXPLAIN + deliveries._PG_CLAIM_POSITIONAL, params)
        plan = cursor.fetchone()[0]
        transaction.rollback()
    return plan_of(plan)


@pytest.mark.parametrize("hooks", [1, 20])
def test_a_claim_reads_about_the_rows_it_takes_from_a_backlog_the_statistics_do_not_know(
    database, keyring, make_integration, hooks
):
    made = _queue_backlog(database, keyring, make_integration, hooks)
    _stale_statistics(database)
    plan = _explained_claim(database, {made[0].id: 1}, cap=16)
    scans = [n for n in nodes(plan) if n.get("Relation Name") == "webhook_deliveries"]
    assert scans, plan
    for node in scans:  # each scan of the deliveries stops near the claim's size, not at the backlog's
        read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        assert read <= 3 * TAKEN, (node["Node Type"], node.get("Index Name"), read)
    assert plan["Actual Rows"] == (TAKEN if hooks > 1 else 1)  # one endpoint with one free slot: one claimed


def test_the_claim_claims_what_it_says_from_a_backlog_with_stale_statistics(database, keyring, make_integration):
    """The real call, prepared (after five custom plans PostgreSQL may pick a generic one): the same rows each time."""
    made = _queue_backlog(database, keyring, make_integration, 4)
    _stale_statistics(database)
    taken = set()
    for _ in range(8):
        claimed = deliveries.claim(TAKEN, 60, rooms={made[0].id: 2}, cap=3)
        assert 0 < len(claimed) <= TAKEN
        per_hook = collections.Counter(c.webhook_id for c in claimed)
        assert per_hook[made[0].id] <= 2 and all(per_hook[h.id] <= 3 for h in made[1:]), per_hook
        assert not taken & {c.id for c in claimed}  # never one already leased
        taken |= {c.id for c in claimed}


@pytest.mark.parametrize("hooks", [1, 20])
def test_a_claim_passing_over_the_rows_another_claim_holds_reads_about_those_and_the_rows_it_takes(
    database, keyring, make_integration, hooks
):
    """Two daemons woken by one NOTIFY: the second claim's walk of the due index passes over the head rows the
    first holds locked (uncommitted, in another connection) and stops at its LIMIT past them; the rows it reads
    are the held ones and about those it takes, not the backlog."""
    made = _queue_backlog(database, keyring, make_integration, hooks)
    _stale_statistics(database)
    holding, done = threading.Event(), threading.Event()

    def other_daemon():
        try:
            with database.atomic():
                held.extend(deliveries.claim(TAKEN, 60, cap=TAKEN))
                holding.set()
                done.wait(30)
        finally:
            holding.set()
            database.close()

    held: list = []
    thread = threading.Thread(target=other_daemon)
    thread.start()
    try:
        assert holding.wait(30)
        plan = _explained_claim(database, {made[0].id: 1}, cap=16)
    finally:
        done.set()
        thread.join(30)
    assert len(held) == TAKEN
    scans = [n for n in nodes(plan) if n.get("Relation Name") == "webhook_deliveries"]
    for node in scans:  # the held rows are passed over, not the backlog read
        read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        assert read <= len(held) + 3 * TAKEN, (node["Node Type"], node.get("Index Name"), read)
    assert plan["Actual Rows"] == (TAKEN if hooks > 1 else 1)  # as many as with nobody else claiming


def test_a_claim_does_not_read_the_backlog_of_a_webhook_switched_off(database, keyring, make_integration):
    """A webhook switched off by its operator keeps its queued deliveries, parked: the claim's walk of the due
    index does not pass over them (it did, row by row, on every claim: 13 ms a claim with 50,000 of them against
    1.5), and reads about what it takes of the other webhooks'. Switched on, they are claimed again."""
    (paused,) = _queue_backlog(database, keyring, make_integration, 1)
    webhooks.update(paused.id, is_active=False)
    # Another webhook's deliveries, queued after the paused one's: a claim walking the due index in order meets
    # the paused webhook's first.
    other = make_integration()
    hook = webhooks.create(keyring, integration_id=other.id, url="https://hooks.example.com/other", events=["*"])[0]
    emitted = events.emit_many([(other.id, "post.created", {"late": n}, None) for n in range(20)])
    assert all(isinstance(o, dict) for o in emitted), emitted
    plan = _explained_claim(database, {}, cap=16)
    for node in (n for n in nodes(plan) if n.get("Relation Name") == "webhook_deliveries"):
        read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        assert read <= 3 * TAKEN, (node["Node Type"], node.get("Index Name"), read)
    assert plan["Actual Rows"] == TAKEN
    claimed = deliveries.claim(TAKEN, 60, cap=TAKEN)
    assert len(claimed) == TAKEN and {c.webhook_id for c in claimed} == {hook.id}

    webhooks.update(paused.id, is_active=True)
    claimed = deliveries.claim(100, 60, cap=100)
    assert {c.webhook_id for c in claimed} == {hook.id, paused.id}  # the other's 10 left, then the paused one's


def _updates(database) -> tuple[int, int]:
    """webhook_deliveries' updates and HOT updates so far, this connection's own flushed first."""
    database.execute_sql("SELECT pg_stat_force_next_flush()")
    return database.execute_sql(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'webhook_deliveries'"
    ).fetchone()


def test_the_claims_of_a_queue_queued_in_a_burst_are_hot_updates(database, keyring, make_integration):
    """A claim changes only unindexed columns (the lease): it writes no index entry when its row's new version fits
    on the row's page (a HOT update). A burst of queued rows filled their pages to the table's fillfactor, and at 80
    (migration 0017) a few rows of each page had room: about a third of the claims were HOT, the others writing an
    entry in each of the table's five indexes. At 50 (0019) they all are."""
    _queue_backlog(database, keyring, make_integration, 1)
    before = _updates(database)
    claimed = []
    while batch := deliveries.claim(100, 30):
        claimed += batch
    assert len(claimed) == BACKLOG
    updated, hot = (after - was for after, was in zip(_updates(database), before, strict=True))
    assert updated == BACKLOG and hot >= 0.9 * BACKLOG, (updated, hot)
