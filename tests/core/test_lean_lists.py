"""The lists read lean (nexusctl.core.lean) answer what the general way (model rows, *_to_dict, bounded_page)
answered: the same dicts, the same cursors, on SQLite and PostgreSQL, with null fields, times with and without
a fraction (PostgreSQL writes 12:00:00.5, the API 12:00:00.500000Z), bulky values left out or too large for
the lean share, and someone else's parent looking absent."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from nexusctl.core import deliveries, health_checks, integrations, lean, sync_logs, webhooks
from nexusctl.core.paging import FIELD_BYTES
from nexusctl.db.models import Integration, IntegrationSyncLog, WebhookAttempt, WebhookDelivery
from nexusctl.enums import DeliveryStatus, Provider, SyncStatus
from nexusctl.errors import IntegrationNotFound, WebhookNotFound

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
# Whole seconds, a fraction PostgreSQL shortens (.5, .12345), all six digits.
MOMENTS = [
    T0,
    T0 + dt.timedelta(microseconds=500_000),
    T0 + dt.timedelta(microseconds=123_450),
    T0 + dt.timedelta(seconds=1, microseconds=123_456),
]
NAME = 'n é ☃ 😀 "q" \\ \x01'  # every way json.dumps escapes


def _walk(fetch, limit):
    pages, cursor = [], None
    while True:
        page = fetch(limit=limit, cursor=cursor)
        pages.append((page.items, page.next_cursor))
        if not page.next_cursor:
            return pages
        cursor = page.next_cursor


def _general(monkeypatch):
    """Make every lean list go the general way (bounded_page over model rows), as a page over budget does."""
    monkeypatch.setattr(lean, "newest_first", lambda *args, general, **kw: general())


@pytest.fixture
def rows(database, make_integration, keyring):
    user = uuid.uuid4()
    made = [
        make_integration(
            user_id=user,
            organization_id=uuid.uuid4() if i % 2 else None,
            provider=list(Provider)[i % 3],
            name=NAME if i == 1 else f"n{i}",
            is_active=bool(i % 3),
            token_type="Bearer" if i % 2 else None,
            expires_at=MOMENTS[i % 4] if i % 3 else None,
            scope=["a", "b"] if i % 2 else [],
            metadata={"k": i, "t": NAME} if i % 3 else {},
            last_sync_at=MOMENTS[(i + 1) % 4] if i % 2 else None,
            last_error="boom" if i == 3 else None,
            created_at=MOMENTS[i % 4] if i < 4 else T0 + dt.timedelta(minutes=i),
            updated_at=MOMENTS[(i + 2) % 4],
        )
        for i in range(7)
    ]
    owner = made[1]
    for i in range(6):
        IntegrationSyncLog.create(
            integration=owner,
            action="fetch_posts",
            status=list(SyncStatus)[i % 3],
            resource_type="post" if i % 2 else None,
            items_processed=i,
            error="e" if i == 2 else None,
            metadata={"n": i} if i % 2 else {},
            started_at=MOMENTS[i % 4] if i else None,
            completed_at=MOMENTS[(i + 1) % 4] if i % 2 else None,
            created_at=MOMENTS[i % 4],
        )
    hooks = [
        webhooks.create(keyring, integration_id=owner.id, url=f"https://hooks.example.com/{i}", events=["*"])[0]
        for i in range(3)
    ]
    for i in range(7):
        delivery = WebhookDelivery.create(
            webhook=hooks[0],
            event="media.created",
            payload={"i": i, "name": NAME},
            status=list(DeliveryStatus)[i % 3],
            attempts=i % 3,
            response={"status": 500, "body": "no"} if i % 3 else None,
            delivered_at=MOMENTS[i % 4] if i % 2 else None,
            created_at=MOMENTS[i % 4],
        )
        for n in range(i % 3):
            WebhookAttempt.create(
                delivery=delivery, number=n + 1, started_at=MOMENTS[n], status_code=500 if n == 0 else None
            )
    return user, owner, hooks


def _lists(user, owner, hooks):
    return {
        "integrations": lambda **kw: integrations.list_view(user_id=user, **kw),
        "active slack": lambda **kw: integrations.list_view(user_id=str(user), is_active=True, provider="slack", **kw),
        "sync logs": lambda **kw: sync_logs.list_view(owner.id, **kw),
        "owned completed sync logs": lambda **kw: sync_logs.list_view(
            str(owner.id), status="completed", owner_id=user, **kw
        ),
        "webhooks": lambda **kw: webhooks.list_view(**kw),
        "owned webhooks": lambda **kw: webhooks.list_view(integration_id=owner.id, owner_id=user, **kw),
        "deliveries": lambda **kw: deliveries.page_with_attempts(hooks[0].id, owner_id=user, **kw)[0],
        "pending deliveries": lambda **kw: deliveries.page_with_attempts(hooks[0].id, status="pending", **kw)[0],
    }


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_lean_lists_answer_what_the_general_way_answered(rows, monkeypatch, limit):
    lists = _lists(*rows)
    lean_pages = {name: _walk(fetch, limit) for name, fetch in lists.items()}
    _general(monkeypatch)
    assert lean_pages == {name: _walk(fetch, limit) for name, fetch in lists.items()}
    every = [item for pages in lean_pages.values() for items, _cursor in pages for item in items]
    assert all(item["createdAt"].endswith("Z") and "+00:00" not in json.dumps(item) for item in every)
    assert {item["createdAt"] for item in every} >= {"2026-05-01T12:00:00Z", "2026-05-01T12:00:00.500000Z"}


def test_cursors_of_either_way_continue_the_other(rows, monkeypatch):
    user = rows[0]
    lean_first = integrations.list_view(user_id=user, limit=2)
    with monkeypatch.context() as patch:
        _general(patch)
        general_first = integrations.list_view(user_id=user, limit=2)
        general_rest = integrations.list_view(user_id=user, limit=10, cursor=lean_first.next_cursor)
    assert lean_first.next_cursor == general_first.next_cursor
    assert integrations.list_view(user_id=user, limit=10, cursor=general_first.next_cursor).items == general_rest.items


@pytest.mark.parametrize("checked", [False, True])
def test_health_list_reads_what_the_summaries_say(rows, checked):
    user = rows[0]
    if checked:  # the health job stores statuses (expired, inactive, ...: not all healthy) and when it looked
        health_checks.check_due(lead=dt.timedelta(days=1), recheck=dt.timedelta(minutes=15))
    pages = _walk(lambda **kw: health_checks.list_page(user_id=user, **kw), 2)
    listed = [item for items, _cursor in pages for item in items]
    expected = [
        health_checks.summary(row)
        for row in Integration.select()
        .where(Integration.user_id == user)
        .order_by(Integration.health_rank.desc(), Integration.created_at.desc(), Integration.id.desc())
    ]
    assert listed == expected and len(listed) == 7
    assert all((item["checkedAt"] is not None) == checked for item in listed)
    statuses = "degraded,broken" if checked else None
    assert [i["integrationId"] for i in health_checks.list_page(user_id=user, statuses=statuses).items] == [
        i["integrationId"] for i in listed if not checked or i["status"] in ("degraded", "broken")
    ]


def test_a_bulky_value_over_the_field_bound_is_left_out_and_one_over_the_lean_share_goes_the_general_way(
    database, make_integration, monkeypatch
):
    row = make_integration()
    logs = [
        IntegrationSyncLog.create(
            integration=row,
            action="fetch_posts",
            metadata={"blob": "m" * size},
            created_at=T0 + dt.timedelta(minutes=i),
        )
        for i, size in enumerate((10, FIELD_BYTES + 1, 40_000))
    ]
    went_general = []
    real = lean.newest_first

    def watched(*args, general, **kw):
        return real(*args, general=lambda: went_general.append(True) or general(), **kw)

    monkeypatch.setattr(lean, "newest_first", watched)
    both = sync_logs.list_view(row.id, limit=2)  # the 40 KB one is within the share of a page of 2
    assert not went_general and [r["id"] for r in both.items] == [str(logs[2].id), str(logs[1].id)]
    assert both.items[1]["metadata"] is None and both.items[1]["metadataOmitted"] is True
    assert both.items[0]["metadata"]["blob"] == "m" * 40_000 and "metadataOmitted" not in both.items[0]
    fifty = sync_logs.list_view(row.id, limit=50)  # 40 KB is more than a fiftieth of a page: the general way
    assert went_general and [r["id"] for r in fifty.items] == [str(r.id) for r in reversed(logs)]
    assert fifty.items[:2] == both.items


def test_someone_elses_parent_looks_absent(rows):
    _user, owner, hooks = rows
    stranger = uuid.uuid4()
    with pytest.raises(IntegrationNotFound):
        sync_logs.list_view(owner.id, owner_id=stranger)
    with pytest.raises(IntegrationNotFound):
        sync_logs.list_view(uuid.uuid4())
    with pytest.raises(WebhookNotFound):
        deliveries.page_with_attempts(hooks[0].id, owner_id=stranger)
    with pytest.raises(WebhookNotFound):
        deliveries.page_with_attempts(uuid.uuid4())
    with pytest.raises(IntegrationNotFound):  # as the sync logs' list: an empty list would say it exists
        webhooks.list_view(integration_id=owner.id, owner_id=stranger)
    with pytest.raises(IntegrationNotFound):
        webhooks.list_view(integration_id=uuid.uuid4())


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "😀" * 50,
        "\x01\x1f" * 30,
        '"\\' * 40,
        NAME,
        2**70,
        -(2**63),
        1e-300,
        float("inf"),
        None,
        True,
        [],
        {},
        {"a": [1, 2.5, {"b": None, "😀": "\x00"}], 7: "x"},
        ["😀", ["\x02", {"k": 2**90}]],
    ],
)
def test_the_cheap_json_bound_is_never_below_the_measured_size(value):
    assert lean._bound(value) >= len(json.dumps(value, default=str))


def test_the_page_bound_is_never_below_the_measured_size(rows):
    user, owner, hooks = rows
    cases = [
        (integrations._LISTED, integrations.list_view(user_id=user)),
        (sync_logs._LISTED, sync_logs.list_view(owner.id)),
        (webhooks._LISTED, webhooks.list_view()),
        (deliveries._LISTED, deliveries.page_with_attempts(hooks[0].id)[0]),
    ]
    for listing, page in cases:
        # The values the lean read gave, again (the bound reads them, not the dicts).
        values, _more = lean.read(listing, {}, 50)
        by_id = {v[0]: v for v in values}
        rows_of_page = [by_id[item["id"]] for item in page.items]
        assert lean._json_bound(listing, rows_of_page, page.items) >= lean._json_size(page.items), listing.table
