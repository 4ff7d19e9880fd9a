"""The sweep refreshes in batches (one claim for the free workers, one store for the refreshes that finished
together): what a user sees of each integration stays its own. One refresh's provider failure marks only that
integration; one whose lease was taken over while the batch was at the provider is not stored by the sweep,
and the others are."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from support import clock
from support.waiting import wait_for
from test_refresh_flows import connected, expire_in

from nexusctl.daemon.jobs import STOP_TIMEOUT
from nexusctl.daemon.stopping import GRACE

BATCH = 5  # REFRESH_SWEEP_CONCURRENCY's default: the stack's daemon claims up to five at once
STOPPING = f"stopping: {BATCH} refresh(es) at the provider get up to"  # nexusctl.core.refresh, as the stop waits
STOP_BOUND = GRACE + STOP_TIMEOUT + 5  # the requests' grace, then the scheduled runs' wind-up (nexusctl.daemon)


def _far(stack, integration: str) -> bool:
    """Refreshed: the (one-hour) token expires more than half an hour from the shared clock's now."""
    (expires,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", integration)[0]
    return clock.aware(expires) > clock.now(stack.emulators) + dt.timedelta(minutes=30)


def _events(stack, integration: str, kind: str) -> list[dict]:
    rows = stack.sql("SELECT data FROM outbox_events WHERE integration_id = %s AND type = %s", integration, kind)
    return [json.loads(d) if isinstance(d, str) else d for (d,) in rows]


def _row(stack, integration: str) -> tuple:
    return stack.sql(
        "SELECT refresh_failures, last_error, is_active, refresh_lease_token FROM integrations WHERE id = %s",
        integration,
    )[0]


def _connected(stack, provider: str) -> dict:
    """Five users, one integration each: {integration: user}."""
    return {integration: user for user, integration in (connected(stack, provider) for _ in range(BATCH))}


def test_a_provider_failure_in_a_batch_marks_only_its_integration(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    ids = list(_connected(stack, "YOUTUBE"))
    before = emu.calls["refresh"]
    emu.fail_next("refresh", status=503)  # one of the batch's provider calls is refused: whichever comes first
    expire_in(stack, 120, ids[0])  # time passes: all five expire within the sweep's window

    wait_for(lambda: sum(_far(stack, i) for i in ids) == BATCH - 1, 20, "the four others refreshed")
    wait_for(lambda: any(_row(stack, i)[0] == 1 for i in ids), 20, "the refused one's failure recorded")
    failed = [i for i in ids if not _far(stack, i)]
    assert len(failed) == 1
    failures, error, active, lease = _row(stack, failed[0])
    assert (failures, active, lease) == (1, True, None)  # backed off, still active, lease given back
    assert error
    assert _events(stack, failed[0], "integration.refreshed") == []
    for other in set(ids) - set(failed):
        assert _row(stack, other)[:2] == (0, None)
        assert [e["integrationId"] for e in _events(stack, other, "integration.refreshed")] == [other]
    assert emu.calls["refresh"] == before + BATCH  # one provider call each


def test_a_lease_taken_over_mid_batch_is_not_stored_and_the_others_are(stack, fresh_emulators):
    """While the sweep's batch waits for the provider, time passes beyond the lease (60 s) and a user's
    refresh takes one integration over: the sweep must not write over that refresh's tokens, the others
    store as usual, and every integration has one integration.refreshed event."""
    emu = stack.emulators["YOUTUBE"]  # non-rotating: the sweep's late answer does not kill the grant
    user_of = _connected(stack, "YOUTUBE")
    ids = list(user_of)
    before = emu.calls["refresh"]
    emu.hold("refresh")  # the sweep's five wait at the provider until the user's refresh has been stored
    try:
        expire_in(stack, 120, ids[0])
        wait_for(lambda: emu.calls["refresh"] == before + BATCH, 20, "the batch at the provider")
        clock.pass_until(stack.emulators, clock.now(stack.emulators), margin=61)  # the sweep's leases lapse
        emu.let_new_through("refresh")  # the user's provider call answers; the sweep's five are still held
        taken = ids[2]
        answer = stack.api("POST", f"/integrations/{taken}/refresh", user=user_of[taken])
        assert answer.status == 200, answer.text
        mine = answer.json()["data"]["expiresAt"]
        emu.release("refresh")  # the sweep's answers come after the user's refresh was stored
        wait_for(lambda: all(_far(stack, i) for i in ids), 20, "all refreshed")
        wait_for(lambda: all(_row(stack, i)[3] is None for i in ids), 20, "every lease given back")
    finally:
        emu.release("refresh")
    assert emu.calls["refresh"] == before + BATCH + 1  # the sweep's five and the user's one
    (stored,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", taken)[0]
    assert clock.aware(stored) == clock.aware(mine)  # the user's refresh stands
    for integration in ids:
        assert len(_events(stack, integration, "integration.refreshed")) == 1, integration
    for integration in set(ids) - {taken}:
        assert _row(stack, integration)[:3] == (0, None, True)


def _leases(stack, ids) -> dict:
    """{integration: (refresh_lease_token, refresh_lease_until)}."""
    return {
        i: stack.sql("SELECT refresh_lease_token, refresh_lease_until FROM integrations WHERE id = %s", i)[0]
        for i in ids
    }


def test_a_claimed_ahead_row_that_waited_too_long_is_claimed_again_before_its_provider_call(stack, fresh_emulators):
    """The sweep claims ahead (up to four rows a place: here all ten in one claim, for five places). When the first
    five's provider calls take long, the five waiting rows have little lease left: each is given back and claimed
    again with a fresh lease before its provider call, so a refresh that comes after the old lease ran out waits
    for the sweep's instead of calling the provider with the same refresh token (one provider call per
    integration)."""
    emu = stack.emulators["YOUTUBE"]
    user_of = {**_connected(stack, "YOUTUBE"), **_connected(stack, "YOUTUBE")}
    ids = list(user_of)
    before = emu.calls["refresh"]
    emu.hold("refresh")  # the provider takes as long as the test needs (it answered after 5 s, real ones)
    try:
        expire_in(stack, 120, ids[0])
        wait_for(lambda: emu.calls["refresh"] == before + BATCH, 20, "the first five at the provider")
        first = _leases(stack, ids)
        assert len({token for token, _ in first.values()}) == 1, first  # one claim leased all ten
        (first_until,) = {until for _, until in first.values()}
        clock.pass_until(stack.emulators, clock.now(stack.emulators), margin=50)  # the five waiting: 10 s of lease left
        emu.release("refresh", hold_next=True)  # the first five answer; the next five are held in their turn
        wait_for(lambda: emu.calls["refresh"] == before + 2 * BATCH, 30, "the next five at the provider")
        # Given back and claimed again by the same pass, at once: their first lease has not run out yet (a row
        # left leased would reach the provider only once it had, in real time, at the daemon's next pass).
        assert clock.now(stack.emulators) < clock.aware(first_until)
        # (A place is free again while its row's tokens are stored: the next five can reach the provider before the
        # first five's store commits. They are held there, so only the first five can become refreshed.)
        wait_for(lambda: sum(not _far(stack, i) for i in ids) == BATCH, 20, "the first five's tokens to be stored")
        waiting = [i for i in ids if not _far(stack, i)]
        assert len(waiting) == BATCH
        again = _leases(stack, waiting)
        for integration, (token, until) in again.items():
            assert token is not None and token != first[integration][0], integration  # a fresh lease
            assert clock.aware(until) > clock.aware(first_until), integration
        clock.pass_until(stack.emulators, clock.aware(first_until), margin=1)  # the first claim's leases are over
        taken = waiting[0]
        with ThreadPoolExecutor(1) as pool:  # the user's refresh, while the sweep's is still at the provider
            asked = pool.submit(stack.api, "POST", f"/integrations/{taken}/refresh", user=user_of[taken])
            try:
                wait_for(lambda: stack.waiting_refreshes(taken), 20, "the user's refresh to wait for the sweep's")
            finally:
                emu.release("refresh")  # also on a failure: the call in the thread ends then
            answer = asked.result(timeout=30)
        assert answer.status == 200, answer.text
        wait_for(lambda: all(_far(stack, i) for i in ids), 30, "all refreshed")
        wait_for(lambda: all(_row(stack, i)[3] is None for i in ids), 20, "every lease given back")
    finally:
        emu.release("refresh")
    assert emu.calls["refresh"] == before + 2 * BATCH  # the user's refresh waited for the sweep's
    (stored,) = stack.sql("SELECT expires_at FROM integrations WHERE id = %s", taken)[0]
    assert clock.aware(stored) == clock.aware(answer.json()["data"]["expiresAt"])
    for integration in ids:
        assert len(_events(stack, integration, "integration.refreshed")) == 1, integration
        assert _row(stack, integration)[:3] == (0, None, True), integration


def _connect_discord(stack, n: int) -> dict:
    """``n`` Discord integrations (a rotating provider), each a different Discord account: {integration: user}."""
    emu, user_of = stack.emulators["DISCORD"], {}
    for _ in range(n):
        emu.account = {**emu.account, "id": str(uuid.uuid4().int)[:18]}
        user = uuid.uuid4()
        result = stack.connect("DISCORD", user)
        assert result["status"] == "success", result
        user_of[result["integrationId"]] = user
    return user_of


def test_a_stopping_daemon_stores_the_tokens_its_provider_calls_returned(stack, fresh_emulators):
    """SIGTERM while the sweep's refreshes of a rotating provider are at the provider: the daemon lets them answer
    and stores the rotated tokens before it closes its database; none is lost (the next refresh works)."""
    emu = stack.emulators["DISCORD"]
    user_of = _connect_discord(stack, BATCH)
    ids = list(user_of)
    before = emu.calls["refresh"]
    emu.hold("refresh")  # the five stay at the provider until the daemon is stopping
    try:
        expire_in(stack, 120, ids[0])
        wait_for(lambda: emu.calls["refresh"] == before + BATCH, 20, "the five at the provider")
        stack.process.terminate()  # SIGTERM while the five are at the provider
        wait_for(lambda: STOPPING in stack.logs(), 10, "the stopping sweep to wait for its provider calls")
        emu.release("refresh")  # they answer within the sweep's grace
        assert stack.process.wait(STOP_BOUND) == 0
    finally:
        emu.release("refresh")
        stack.restart()  # the next daemon, on the same database (the old one stopped first if it still runs)
    assert emu.calls["refresh"] == before + BATCH
    for integration in ids:  # stored before the old daemon exited
        assert _far(stack, integration), integration
        assert _row(stack, integration)[1:] == (None, True, None), integration
        assert len(_events(stack, integration, "integration.refreshed")) == 1, integration
    for integration in ids:  # the stored refresh token is the one the provider issued last: it still works
        answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user_of[integration])
        assert answer.status == 200, answer.text
    assert emu.calls["refresh"] == before + 2 * BATCH


def _claim_waiting(stack) -> bool:
    """A claim of the sweep (the UPDATE that leases integrations) waits for a row lock."""
    return (
        stack.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND (query LIKE '%%nexus_claim_many%%' OR query LIKE '%%refresh_lease_token%%')"
        )[0][0]
        > 0
    )


def _leased(stack, ids) -> set[str]:
    """Of ``ids``, those under a lease that was committed (a claim still waiting has committed none of its own)."""
    rows = stack.sql(
        "SELECT id FROM integrations WHERE id = ANY(%s::uuid[]) AND refresh_lease_token IS NOT NULL", list(ids)
    )
    return {str(i) for (i,) in rows}


def test_the_rows_in_hand_go_to_the_provider_while_the_next_claim_waits(stack, fresh_emulators):
    """The sweep claims its next rows beside its provider calls, not between them: while its next claim waits
    (here on row locks another session holds), the rows it holds in hand go on to the provider as places free.
    Before, the pass awaited each claim, issued once nothing was left in hand: the places freed during its trip
    stayed empty (the sweep ran at 0.15 of raw token POSTs, bench/token_refresh.py).

    The pass's first claim leases ten (two places' worth, the provider's pace unknown yet) and five of them go to
    the provider; with five in hand it claims the next five at once. All but the first ten are locked, so that
    claim waits with nothing of its own leased, while the provider holds the five: five rows are provably in hand
    (leased and committed, not called) before the test lets a place free, whatever the timing."""
    if stack.database_url.startswith("sqlite"):
        pytest.skip("a row lock held by another session: PostgreSQL's")
    emu = stack.emulators["YOUTUBE"]
    ids = [connected(stack, "YOUTUBE")[1] for _ in range(6 * BATCH)]  # soonest expiring first, as the sweep goes
    first, rest = ids[: 2 * BATCH], ids[2 * BATCH :]
    locker = psycopg2.connect(stack.database_url)
    before = emu.calls["refresh"]
    try:
        with locker.cursor() as cursor:  # all but the first claim's ten: every later claim waits on a lock
            cursor.execute("SELECT id FROM integrations WHERE id = ANY(%s::uuid[]) FOR UPDATE", (rest,))
        emu.hold("refresh")  # no call answers, so no place frees, until the test says so
        expire_in(stack, 120, ids[-1])  # time passes: all thirty are due
        wait_for(lambda: emu.calls["refresh"] == before + BATCH, 20, "the first five at the provider")
        wait_for(lambda: _claim_waiting(stack), 20, "the next claim waiting on the locked rows")
        # In hand: leased by a committed claim (the first), not yet called (the provider holds the five calls it
        # got, so no place has freed and no other row can have been sent).
        assert _leased(stack, ids) == set(first)
        assert emu.calls["refresh"] == before + BATCH
        emu.release("refresh", hold_next=True)  # the five at the provider answer: their places free
        wait_for(lambda: emu.calls["refresh"] >= before + 2 * BATCH, 20, "the five in hand sent while the claim waits")
        assert emu.calls["refresh"] == before + 2 * BATCH  # nothing else: the claim's rows are not leased yet
        assert _claim_waiting(stack)  # sent while the claim still waits, not after it came back
        assert not _leased(stack, rest)
        locker.commit()  # the locks go: the claim takes its rows, and the pass the rest
        emu.release("refresh")
        wait_for(lambda: all(_far(stack, i) for i in ids), 30, "all thirty refreshed")
    finally:
        locker.close()
        emu.release("refresh")
    assert emu.calls["refresh"] == before + 6 * BATCH  # one provider call each
    for integration in ids:
        assert len(_events(stack, integration, "integration.refreshed")) == 1, integration
