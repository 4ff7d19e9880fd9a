"""Listing and updating integrations and sync logs through the core."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from nexusctl.core import integrations, sync_logs
from nexusctl.db.models import IntegrationSyncLog
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
    rows = [
        make_integration(created_at=SAME_MOMENT if i % 3 == 0 else SAME_MOMENT + dt.timedelta(seconds=i))
        for i in range(25)
    ]
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


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"metadata": ["a"]}, "metadata"),
        ({"is_active": "yes"}, "isActive"),
    ],
)
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
    logs = [
        IntegrationSyncLog.create(
            integration=row,
            action="fetch_posts",
            status=SyncStatus.FAILED if i % 2 else SyncStatus.COMPLETED,
            created_at=SAME_MOMENT + dt.timedelta(minutes=i),
        )
        for i in range(6)
    ]
    assert [r.id for r in sync_logs.list_page(row.id).items] == [r.id for r in reversed(logs)]
    assert [r.id for r in sync_logs.list_page(row.id, status="failed").items] == [logs[5].id, logs[3].id, logs[1].id]
    assert _walk(lambda **kw: sync_logs.list_page(row.id, **kw), 4) == [r.id for r in reversed(logs)]
    with pytest.raises(UsageProblem):
        sync_logs.list_page(row.id, status="DONE")
    with pytest.raises(IntegrationNotFound):
        sync_logs.list_page(uuid.uuid4())


# --- pages bounded in bytes (paging.bounded_page) ------------------------------------------


def _walk_view(fetch, limit=1000):
    """Every page of a list_view: (rows, the size of each page's rows as JSON)."""
    import json

    rows, sizes, cursor = [], [], None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        assert page.items, "a page always holds at least one row"
        rows += page.items
        sizes.append(len(json.dumps(page.items)))
        if not page.next_cursor:
            return rows, sizes
        cursor = page.next_cursor


def test_sync_log_integration_and_webhook_lists_end_at_the_byte_budget(database, make_integration, keyring):
    from nexusctl.core import webhooks
    from nexusctl.core.paging import PAGE_BYTES

    row = make_integration(metadata={"note": "i" * 200_000})
    for n in range(2):
        make_integration(user_id=row.user_id, metadata={"note": str(n) * 200_000})
    logs = [
        IntegrationSyncLog.create(
            integration=row,
            action="fetch_posts",
            status=SyncStatus.COMPLETED,
            metadata={"blob": "m" * 300_000, "n": i},
            created_at=SAME_MOMENT + dt.timedelta(minutes=i),
        )
        for i in range(9)
    ]
    listed, sizes = _walk_view(lambda **kw: sync_logs.list_view(row.id, **kw))
    assert [r["id"] for r in listed] == [str(r.id) for r in reversed(logs)]
    assert all(r["metadata"]["blob"] == "m" * 300_000 for r in listed)
    assert max(sizes) <= PAGE_BYTES and len(sizes) == 3  # three of 300 KB a page

    listed, sizes = _walk_view(lambda **kw: integrations.list_view(user_id=row.user_id, **kw), limit=2)
    assert len(listed) == 3 and len(sizes) == 2  # the limit still counts

    hooks = [
        webhooks.create(keyring, integration_id=row.id, url="https://hooks.example.com/x", events=["*"])[0]
        for _ in range(3)
    ]
    listed, sizes = _walk_view(lambda **kw: webhooks.list_view(integration_id=row.id, **kw))
    assert sorted(r["id"] for r in listed) == sorted(str(h.id) for h in hooks) and "secret" not in listed[0]


def test_a_payload_over_the_field_bound_is_left_out_of_lists_but_not_of_its_own_view(
    database, make_integration, keyring
):
    from nexusctl.core import deliveries, webhooks
    from nexusctl.core.paging import FIELD_BYTES
    from nexusctl.db.models import WebhookDelivery

    row = make_integration()
    hook, _secret = webhooks.create(keyring, integration_id=row.id, url="https://hooks.example.com/x", events=["*"])
    huge = WebhookDelivery.create(
        webhook=hook,
        event="media.created",
        payload={"blob": "h" * (FIELD_BYTES + 1)},
        status="PENDING",
        created_at=SAME_MOMENT,
    )
    small = WebhookDelivery.create(
        webhook=hook,
        event="media.created",
        payload={"n": 1},
        status="PENDING",
        created_at=SAME_MOMENT + dt.timedelta(seconds=1),
    )
    page, rows = deliveries.page_with_attempts(hook.id, limit=10)
    assert [r["id"] for r in rows] == [str(small.id), str(huge.id)] and page.next_cursor is None
    assert rows[0]["payload"] == {"n": 1} and "payloadOmitted" not in rows[0]
    assert rows[1]["payload"] is None and rows[1]["payloadOmitted"] is True
    assert deliveries.get_with_attempts(huge.id)["payload"]["blob"] == "h" * (FIELD_BYTES + 1)


def test_the_relay_loads_a_bounded_batch_of_event_data(database, make_integration):
    from nexusctl.core import outbox
    from nexusctl.db.models import OutboxEvent

    for n in range(30):
        OutboxEvent.create(
            type="media.created", data={"n": n, "blob": "e" * 250_000}, created_at=SAME_MOMENT + dt.timedelta(seconds=n)
        )
    batch, more = outbox.unpublished(500)
    assert [e.data["n"] for e in batch] == list(range(len(batch))) and more
    assert 1 <= len(batch) <= outbox.RELAY_BYTES // 250_000
    outbox.mark_published([e.id for e in batch])
    rest, more = outbox.unpublished(500, max_bytes=10**9)
    assert [e.data["n"] for e in rest] == list(range(len(batch), 30)) and not more


def test_a_page_whose_rows_were_all_deleted_meanwhile_still_leads_on_to_the_rest(
    database, make_integration, monkeypatch
):
    """A page is planned (ids and sizes), then loaded: rows deleted in between are skipped. When that is every
    planned row, the empty page must still carry a cursor, else the rows behind them look like the list's end."""
    from nexusctl.core import paging

    row = make_integration()
    logs = [
        IntegrationSyncLog.create(
            integration=row,
            action="fetch_posts",
            status=SyncStatus.COMPLETED,
            created_at=SAME_MOMENT + dt.timedelta(minutes=i),
        )
        for i in range(5)
    ]
    load, raced = paging._load, []

    def load_after_a_concurrent_delete(query, model, columns, ids):
        if not raced:  # the first load only: another request deletes the two newest rows just before it
            raced.append(IntegrationSyncLog.delete().where(IntegrationSyncLog.id.in_(ids)).execute())
        return load(query, model, columns, ids)

    def general(limit, cursor=None):  # the way of a list page that may pass the byte budget (core.lean)
        query = IntegrationSyncLog.select().where(IntegrationSyncLog.integration == row.id)
        bulky = paging.Bulky(IntegrationSyncLog.metadata, "metadata")
        return paging.bounded_page(query, IntegrationSyncLog, limit, cursor, bulky=bulky, serialize=_sync_log_dicts)

    monkeypatch.setattr(paging, "_load", load_after_a_concurrent_delete)
    first = general(2)
    assert raced == [2] and first.items == [] and first.next_cursor, "the empty page ended the list"
    rest = sync_logs.list_view(row.id, limit=10, cursor=first.next_cursor)  # the lean way takes the cursor on
    assert [r["id"] for r in rest.items] == [str(r.id) for r in reversed(logs[:3])] and rest.next_cursor is None


def _sync_log_dicts(rows):
    from nexusctl.core.serializers import sync_log_to_dict

    return [sync_log_to_dict(r) for r in rows]
