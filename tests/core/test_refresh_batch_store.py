"""The sweep's batched store (connections.store_refreshed_many): each refresh of a batch keeps its own outcome.

A refresh whose store fails (here: a provider's token_type longer than the column, which PostgreSQL refuses)
must not cost the other refreshes of its batch their rotated tokens: the batch is stored again row by row,
and only that refresh reports its error. One whose lease was taken over is not written; the others are.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from support import clock as shared_clock

from nexusctl.core import connections, health_checks, refresh
from nexusctl.db.database import is_postgres
from nexusctl.db.fields import utcnow
from nexusctl.db.models import OutboxEvent
from nexusctl.enums import Provider
from nexusctl.providers.spec import TokenSet

WINDOW = dt.timedelta(minutes=10)


def _claimed(keyring, make_integration, count: int):
    rows = [
        make_integration(provider=Provider.YOUTUBE, expires_at=utcnow() + dt.timedelta(minutes=2)) for _ in range(count)
    ]
    lease = uuid.uuid4()
    claimed = refresh._claim_expiring_many(keyring, [r.id for r in rows], lease, WINDOW, WINDOW)
    assert set(claimed) == {r.id for r in rows}  # one statement claimed them all
    return [claimed[r.id][0] for r in rows], lease


def _fresh(n: int, token_type: str = "Bearer") -> TokenSet:
    return TokenSet(
        access_token=f"new-access-{n}",
        refresh_token=f"new-refresh-{n}",
        token_type=token_type,
        expires_at=utcnow() + dt.timedelta(hours=1),
    )


def _refreshed_events(row_id) -> int:
    return (
        OutboxEvent.select()
        .where((OutboxEvent.integration_id == row_id) & (OutboxEvent.type == "integration.refreshed"))
        .count()
    )


def test_one_refresh_failing_in_a_batch_leaves_the_others_stored(keyring, make_integration, database):
    rows, lease = _claimed(keyring, make_integration, 4)
    odd = 2  # a provider answering a token_type longer than the column takes (varchar(32))
    batch = [(row, _fresh(n, "x" * 40 if n == odd else "Bearer"), lease, {}, None) for n, row in enumerate(rows)]
    outcomes = connections.store_refreshed_many(keyring, batch)
    postgres = is_postgres(database)
    for n, (row, outcome) in enumerate(zip(rows, outcomes)):
        stored, tokens = connections.load(keyring, row.id)
        if n == odd and postgres:
            assert isinstance(outcome, Exception)  # that refresh's own error, for its caller
            assert tokens.access_token != f"new-access-{n}" and _refreshed_events(row.id) == 0
            assert stored.refresh_lease_token == lease  # not given back by the failed store
            continue
        assert outcome is True
        assert (tokens.access_token, tokens.refresh_token) == (f"new-access-{n}", f"new-refresh-{n}")
        assert stored.refresh_lease_token is None and _refreshed_events(row.id) == 1


def test_a_lease_taken_over_is_not_written_and_the_others_are(
    keyring, make_integration, database, monkeypatch, tmp_path
):
    advance = shared_clock.own_file(monkeypatch, tmp_path / "clock")
    rows, lease = _claimed(keyring, make_integration, 3)
    advance(refresh.LEASE.total_seconds() + 1)  # the batch's provider calls took longer than the lease
    other = uuid.uuid4()
    assert refresh._claim(rows[1].id, other)  # another refresher (a user's refresh) takes the middle one over
    outcomes = connections.store_refreshed_many(
        keyring, [(row, _fresh(n), lease, {}, None) for n, row in enumerate(rows)]
    )
    assert outcomes == [True, False, True]
    for n, row in enumerate(rows):
        stored, tokens = connections.load(keyring, row.id)
        taken = n == 1
        assert (tokens.access_token == f"new-access-{n}") is not taken
        assert stored.refresh_lease_token == (other if taken else None)
        assert _refreshed_events(row.id) == (0 if taken else 1)


# What a provider may put in a scope and in the facts kept in metadata: separators of PostgreSQL's array text,
# quotes, a backslash, the word NULL, non-ASCII, a line separator, and an integer beyond 64 bits.
ODD_SCOPE = ["a,b", 'q"x', "{c}", "back\\slash", "ünï", "NULL", " "]
ODD_FACTS = {"big": 2**70, "text": 'é\u2028"{}', "nested": {"list": [1, None, "x"], "float": 0.1}}
STORED = (
    "token_type",
    "expires_at",
    "scope",
    "metadata",
    "last_error",
    "refresh_failures",
    "refresh_retry_at",
    "refresh_lease_until",
    "refresh_lease_token",
    "health_status",
    "health_rank",
    "health_reasons",
    "health_checked_at",
)


def test_a_batch_stores_every_column_as_a_refresh_stored_alone_does(keyring, make_integration, database):
    """store_refreshed_many (one statement on PostgreSQL) writes what store_refreshed writes, odd values too."""
    checked = utcnow() - dt.timedelta(minutes=1)
    rows = [
        make_integration(
            provider=Provider.YOUTUBE,
            expires_at=utcnow() + dt.timedelta(minutes=2),
            scope=list(ODD_SCOPE),  # as read: so the health the refresh leaves is planned, not asked for
            metadata={"provider": {"kept": "yes"}},
            health_status="healthy",
            health_checked_at=checked,
            health_due_at=checked + dt.timedelta(minutes=15),
            refresh_failures=2,
        )
        for _ in range(3)
    ]
    lease = uuid.uuid4()
    claimed = refresh._claim_expiring_many(keyring, [r.id for r in rows], lease, WINDOW, WINDOW)
    read = [claimed[r.id][0] for r in rows]
    # A provider's expiry in a zone of its own, whose offset has seconds (orjson's text of it drops them).
    expires = (utcnow() + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30, seconds=15)))

    def fresh(n: int) -> TokenSet:
        tokens = _fresh(n)
        tokens.expires_at, tokens.scope, tokens.metadata = expires, list(ODD_SCOPE), dict(ODD_FACTS)
        return tokens

    health = functools.partial(health_checks.after_refresh, lead=dt.timedelta(days=7), recheck=dt.timedelta(minutes=15))
    settled = {"refresh_failures": 0, "refresh_retry_at": None}
    assert connections.store_refreshed(keyring, read[0], fresh(0), lease, settled, health) is True
    batch = [(row, fresh(n), lease, settled, health) for n, row in enumerate(read[1:], start=1)]
    assert connections.store_refreshed_many(keyring, batch) == [True, True]

    stored = [connections.load(keyring, row.id) for row in rows]
    alone = {name: getattr(stored[0][0], name) for name in STORED}
    assert alone["scope"] == ODD_SCOPE and alone["metadata"] == {"provider": {"kept": "yes", **ODD_FACTS}}
    assert alone["refresh_failures"] == 0 and alone["refresh_lease_token"] is None and alone["expires_at"] == expires
    for n, (row, tokens) in enumerate(stored):
        assert {name: getattr(row, name) for name in STORED} == alone
        assert (tokens.access_token, tokens.refresh_token) == (f"new-access-{n}", f"new-refresh-{n}")
        (event,) = OutboxEvent.select().where(
            (OutboxEvent.integration_id == row.id) & (OutboxEvent.type == "integration.refreshed")
        )
        assert event.data == {
            "expiresAt": expires.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "integrationId": str(row.id),
            "userId": str(row.user_id),
            "provider": Provider.YOUTUBE.value,
        }
        assert event.user_id == row.user_id
