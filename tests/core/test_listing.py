"""Listing and updating integrations and sync logs through the core."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from db.models import IntegrationSyncLog
from nexusctl.core import integrations, sync_logs
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import IntegrationNotFound, InvalidProvider, UsageProblem

SAME_MOMENT = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def _walk(fetch, limit):
    seen, cursor = [], None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        seen += [r.id for r in page.items]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def test_pages_cover_every_row_once_newest_first_even_with_equal_timestamps(database, make_integration):
    rows = [make_integration(created_at=SAME_MOMENT if i % 3 == 0 else SAME_MOMENT + dt.timedelta(seconds=i))
            for i in range(25)]
    seen = _walk(integrations.list_page, 4)
    expected = [r.id for r in sorted(rows, key=lambda r: (r.created_at, str(r.id)), reverse=True)]
    assert len(seen) == len(set(seen)) == 25
    assert seen == expected


def test_filters(database, make_integration):
    user = uuid.uuid4()
    mine = make_integration(user_id=user, provider=Provider.SLACK)
    off = make_integration(user_id=user, provider=Provider.DISCORD, is_active=False)
    make_integration(provider=Provider.SLACK)
    assert [r.id for r in integrations.list_page(user_id=str(user)).items] == [off.id, mine.id]
    assert [r.id for r in integrations.list_page(user_id=user, provider="slack").items] == [mine.id]
    assert [r.id for r in integrations.list_page(user_id=user, is_active=False).items] == [off.id]
    with pytest.raises(InvalidProvider):
        integrations.list_page(provider="MYSPACE")


@pytest.mark.parametrize("limit", [0, 1001, True, "5"])
def test_bad_limits(database, limit):
    with pytest.raises(UsageProblem) as info:
        integrations.list_page(limit=limit)
    assert info.value.details["field"] == "limit"


def test_bad_cursor(database):
    with pytest.raises(UsageProblem) as info:
        integrations.list_page(cursor="not-a-cursor")
    assert info.value.details["field"] == "cursor"


@pytest.mark.parametrize("changes, field", [
    ({"name": ""}, "name"), ({"name": "x" * 256}, "name"), ({"metadata": ["a"]}, "metadata"),
    ({"is_active": "yes"}, "isActive"),
])
def test_update_validation(database, make_integration, changes, field):
    row = make_integration()
    with pytest.raises(UsageProblem) as info:
        integrations.update(row.id, **changes)
    assert info.value.details["field"] == field


def test_update_changes_what_was_asked(database, make_integration):
    row = make_integration(name="old", metadata={"keep": False})
    updated = integrations.update(row.id, name="  new  ", is_active=False, metadata={"team": "growth"})
    assert (updated.name, updated.is_active, updated.metadata) == ("new", False, {"team": "growth"})
    assert updated.updated_at > row.updated_at
    with pytest.raises(UsageProblem):
        integrations.update(row.id)


def test_get_errors(database):
    with pytest.raises(UsageProblem):
        integrations.get("12")
    with pytest.raises(IntegrationNotFound):
        integrations.get(uuid.uuid4())


def test_sync_logs_newest_first_with_status_filter(database, make_integration):
    row = make_integration()
    logs = [IntegrationSyncLog.create(integration=row, action="fetch_posts",
                                      status=SyncStatus.FAILED if i % 2 else SyncStatus.COMPLETED,
                                      created_at=SAME_MOMENT + dt.timedelta(minutes=i)) for i in range(6)]
    assert [r.id for r in sync_logs.list_page(row.id).items] == [r.id for r in reversed(logs)]
    assert [r.id for r in sync_logs.list_page(row.id, status="failed").items] == [logs[5].id, logs[3].id, logs[1].id]
    assert _walk(lambda **kw: sync_logs.list_page(row.id, **kw), 4) == [r.id for r in reversed(logs)]
    with pytest.raises(UsageProblem):
        sync_logs.list_page(row.id, status="DONE")
    with pytest.raises(IntegrationNotFound):
        sync_logs.list_page(uuid.uuid4())
