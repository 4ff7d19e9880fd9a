"""nexusctl.core.integrations and core.sync_logs: keyset paging, filters, validation.

Paging through any listing with the cursors it hands out visits every row
exactly once, newest first (created_at desc, id desc), even when many rows
share one created_at, and whatever is inserted meanwhile. Bad input is a
UsageProblem naming the field, never a crash.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from nexusctl.core import integrations, sync_logs
from nexusctl.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent, Webhook, WebhookDelivery
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import IntegrationNotFound, InvalidProvider, UsageProblem

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _walk(fetch, limit):
    """Every page of a listing; returns the pages' id lists."""
    pages, cursor = [], None
    for _ in range(1000):
        page = fetch(limit=limit, cursor=cursor)
        pages.append([row.id for row in page.items])
        assert page.limit == limit
        assert page.paging() == {
            "limit": limit,
            "nextCursor": page.next_cursor,
            "hasMore": page.next_cursor is not None,
        }
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
    raise AssertionError("paging never ended")


def _newest_first(rows):
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


def _cursor(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


# --- Paging ------------------------------------------------------------------


def test_integration_pages_cover_every_row_once_newest_first_with_ties(database, make_integration):
    # 10 rows share one instant, 6 share another, the rest are distinct.
    stamps = [T0] * 10 + [T0 + dt.timedelta(seconds=30)] * 6 + [T0 + dt.timedelta(minutes=i) for i in range(1, 10)]
    rows = [make_integration(created_at=stamp) for stamp in stamps]
    assert len(rows) == 25
    pages = _walk(integrations.list_page, 4)
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 4, 1]
    seen = [row_id for page in pages for row_id in page]
    assert len(seen) == len(set(seen)) == 25
    assert seen == _newest_first(rows)


def test_a_page_boundary_exactly_at_the_end_has_no_next_cursor(database, make_integration):
    for _ in range(8):
        make_integration(created_at=T0)
    assert [len(p) for p in _walk(integrations.list_page, 4)] == [4, 4]
    assert [len(p) for p in _walk(integrations.list_page, 8)] == [8]
    assert [len(p) for p in _walk(integrations.list_page, 1000)] == [8]


def test_rows_apart_by_microseconds_are_not_skipped_or_repeated(database, make_integration):
    rows = [make_integration(created_at=T0 + dt.timedelta(microseconds=i)) for i in range(9)]
    seen = [row_id for page in _walk(integrations.list_page, 2) for row_id in page]
    assert seen == _newest_first(rows)


def test_rows_inserted_while_paging_do_not_disturb_later_pages(database, make_integration):
    rows = [make_integration(created_at=T0 + dt.timedelta(seconds=i)) for i in range(10)]
    first = integrations.list_page(limit=3)
    make_integration(created_at=T0 + dt.timedelta(hours=1))  # newer than anything listed
    rest = _walk(lambda **kw: integrations.list_page(**kw) if kw["cursor"] else first, 3)
    seen = [row_id for page in rest for row_id in page]
    assert seen == _newest_first(rows)


def test_default_limit_is_applied(database, make_integration):
    for i in range(DEFAULT_LIMIT + 2):
        make_integration(created_at=T0 + dt.timedelta(seconds=i))
    page = integrations.list_page()
    assert len(page.items) == DEFAULT_LIMIT and page.limit == DEFAULT_LIMIT and page.next_cursor


def test_sync_log_pages_cover_every_row_once_with_ties(database, make_integration):
    owner, other = make_integration(), make_integration()
    stamps = [T0] * 7 + [T0 + dt.timedelta(seconds=s) for s in range(1, 19)]
    logs = [IntegrationSyncLog.create(integration=owner, action="fetch_posts", created_at=s) for s in stamps]
    IntegrationSyncLog.create(integration=other, action="fetch_posts", created_at=T0)
    pages = _walk(lambda **kw: sync_logs.list_page(owner.id, **kw), 4)
    seen = [row_id for page in pages for row_id in page]
    assert len(seen) == len(set(seen)) == 25
    assert seen == _newest_first(logs)


def test_sync_log_status_filter_and_owner(database, make_integration):
    user = uuid.uuid4()
    owner = make_integration(user_id=user)
    logs = [
        IntegrationSyncLog.create(
            integration=owner,
            action="a",
            created_at=T0 + dt.timedelta(seconds=i),
            status=SyncStatus.FAILED if i % 3 == 0 else SyncStatus.COMPLETED,
        )
        for i in range(9)
    ]
    failed = [r.id for r in reversed(logs) if r.status == SyncStatus.FAILED]
    assert [r.id for r in sync_logs.list_page(str(owner.id), status=" failed ").items] == failed
    assert len(sync_logs.list_page(owner.id, owner_id=user).items) == 9
    with pytest.raises(IntegrationNotFound):
        sync_logs.list_page(owner.id, owner_id=uuid.uuid4())  # someone else's looks absent
    with pytest.raises(UsageProblem) as info:
        sync_logs.list_page(owner.id, status="DONE")
    assert info.value.details == {"field": "status"}


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True, False, 2.5, "5"])
def test_bad_limits_are_usage_problems(database, limit):
    for fetch in (lambda **kw: integrations.list_page(**kw),):
        with pytest.raises(UsageProblem) as info:
            fetch(limit=limit)
        assert info.value.details["field"] == "limit"


def test_limit_bounds_are_accepted(database, make_integration):
    make_integration()
    assert integrations.list_page(limit=1).limit == 1
    assert integrations.list_page(limit=MAX_LIMIT).limit == MAX_LIMIT


def test_bad_limit_on_sync_logs(database, make_integration):
    row = make_integration()
    with pytest.raises(UsageProblem) as info:
        sync_logs.list_page(row.id, limit=0)
    assert info.value.details["field"] == "limit"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "é",
        _cursor(None),
        _cursor([1, 2]),
        _cursor({"a": 1}),
        _cursor("xy"),
        # Fixed ids: a test's id is the same in every collection (pytest-xdist's workers each collect).
        _cursor(["not a date", "1b94a24c-2a8e-4a47-bb4c-7118edc1ad51"]),
        _cursor([T0.isoformat(), "not-a-uuid"]),
        _cursor([T0.isoformat(), "79dd6800-76a9-4998-829e-479586fb478f", "extra"]),
    ],
)
def test_garbage_cursors_are_usage_problems(database, make_integration, cursor):
    row = make_integration()
    for fetch in (integrations.list_page, lambda **kw: sync_logs.list_page(row.id, **kw)):
        with pytest.raises(UsageProblem) as info:
            fetch(cursor=cursor)
        assert info.value.details == {"field": "cursor"}


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_out_of_range_cursor_dates_are_usage_problems(database, stamp):
    with pytest.raises(UsageProblem):
        integrations.list_page(cursor=_cursor([stamp, str(uuid.uuid4())]))


# --- Filters -----------------------------------------------------------------


def test_filters_by_user_provider_and_active(database, make_integration):
    user = uuid.uuid4()
    slack = make_integration(user_id=user, provider=Provider.SLACK, created_at=T0)
    ig_off = make_integration(
        user_id=user, provider=Provider.INSTAGRAM, is_active=False, created_at=T0 + dt.timedelta(seconds=1)
    )
    ig_on = make_integration(user_id=user, provider=Provider.INSTAGRAM, created_at=T0 + dt.timedelta(seconds=2))
    stranger = make_integration(provider=Provider.INSTAGRAM, created_at=T0 + dt.timedelta(seconds=3))

    def ids(**kw):
        return [r.id for r in integrations.list_page(**kw).items]

    assert ids(user_id=user) == [ig_on.id, ig_off.id, slack.id]
    assert ids(user_id=f" {user} ") == ids(user_id=str(user).upper()) == [ig_on.id, ig_off.id, slack.id]
    for spelling in ("instagram", "INSTAGRAM", "Instagram", Provider.INSTAGRAM):
        assert ids(provider=spelling) == [stranger.id, ig_on.id, ig_off.id]
    assert ids(user_id=user, provider="instagram") == [ig_on.id, ig_off.id]
    assert ids(user_id=user, is_active=False) == [ig_off.id]
    assert ids(user_id=user, is_active=True) == [ig_on.id, slack.id]
    assert ids(provider="slack", is_active=False) == []
    assert ids(user_id=uuid.uuid4()) == []


def test_listings_never_load_token_ciphertexts(database, make_integration):
    row = make_integration(access_token="SECRET-A")
    [listed] = integrations.list_page().items
    assert listed.id == row.id and listed.access_token is None and listed.refresh_token is None
    assert integrations.get(row.id).access_token is None


def test_bad_filters_are_usage_problems(database):
    with pytest.raises(InvalidProvider) as info:
        integrations.list_page(provider="myspace")
    assert "myspace" in info.value.message and "SLACK" in info.value.message
    with pytest.raises(UsageProblem) as info:
        integrations.list_page(user_id="12")
    assert info.value.details == {"field": "userId"}


# --- get / update / delete ---------------------------------------------------


@pytest.mark.parametrize("bad", ["12", "", "not-a-uuid", None, 42])
def test_get_with_a_non_uuid_is_a_usage_problem(database, bad):
    with pytest.raises(UsageProblem) as info:
        integrations.get(bad)
    assert info.value.details == {"field": "integrationId"}


def test_get_unknown_or_someone_elses_is_not_found(database, make_integration):
    missing = uuid.uuid4()
    with pytest.raises(IntegrationNotFound) as info:
        integrations.get(str(missing))
    assert info.value.details == {"id": str(missing)}
    row = make_integration()
    with pytest.raises(IntegrationNotFound):
        integrations.get(row.id, owner_id=uuid.uuid4())
    assert integrations.get(str(row.id), owner_id=row.user_id).id == row.id


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 7}, "name"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "{}"}, "metadata"),
        ({"is_active": "yes"}, "isActive"),
        ({"is_active": 1}, "isActive"),
    ],
)
def test_update_validation_names_the_field_and_changes_nothing(database, make_integration, changes, field):
    row = make_integration(name="keep", metadata={"k": 1})
    with pytest.raises(UsageProblem) as info:
        integrations.update(row.id, **changes)
    assert info.value.details == {"field": field}
    again = Integration.get_by_id(row.id)
    assert (again.name, again.metadata, again.is_active, again.updated_at) == ("keep", {"k": 1}, True, row.updated_at)


def test_update_with_nothing_to_change_is_a_usage_problem(database, make_integration):
    row = make_integration()
    with pytest.raises(UsageProblem) as info:
        integrations.update(row.id)
    assert "nothing to update" in info.value.message


def test_update_applies_only_what_was_asked(database, make_integration):
    row = make_integration(name="old", metadata={"a": 1}, scope=["read"])
    renamed = integrations.update(str(row.id), name="  " + "n" * 250 + "  ")
    assert renamed.name == "n" * 250 and renamed.metadata == {"a": 1} and renamed.is_active is True
    assert renamed.updated_at > row.updated_at and renamed.created_at == row.created_at
    assert integrations.update(row.id, name="x" * 255).name == "x" * 255
    off = integrations.update(row.id, is_active=False, metadata={"team": "grøwth", "n": [1, None]})
    assert (off.is_active, off.metadata) == (False, {"team": "grøwth", "n": [1, None]})
    assert integrations.update(row.id, metadata={}).metadata == {}
    stored = Integration.get_by_id(row.id)
    assert (stored.name, stored.is_active, stored.scope) == ("x" * 255, False, ["read"])
    assert stored.access_token == row.access_token  # the tokens are untouched


def test_update_of_unknown_or_foreign_integration_is_not_found(database, make_integration):
    with pytest.raises(IntegrationNotFound):
        integrations.update(uuid.uuid4(), name="x")
    row = make_integration(name="mine")
    with pytest.raises(IntegrationNotFound):
        integrations.update(row.id, name="stolen", owner_id=uuid.uuid4())
    assert Integration.get_by_id(row.id).name == "mine"


def test_delete_reports_and_removes_the_children(database, make_integration):
    row, other = make_integration(), make_integration()
    for owner in (row, other):
        hook = Webhook.create(integration=owner, url="https://example.com/h")
        WebhookDelivery.create(webhook=hook, event="e", payload={})
        WebhookDelivery.create(webhook=hook, event="e", payload={})
        IntegrationSyncLog.create(integration=owner, action="a")

    def disconnected(integration):
        return list(
            OutboxEvent.select().where(
                (OutboxEvent.type == "integration.disconnected") & (OutboxEvent.integration_id == integration.id)
            )
        )

    preview = integrations.delete(row.id, dry_run=True)
    assert (preview.webhooks, preview.deliveries, preview.sync_logs) == (1, 2, 1)
    assert Integration.select().count() == 2
    assert disconnected(row) == []  # a dry run records nothing
    done = integrations.delete(str(row.id))
    assert done.to_dict() == {
        "id": str(row.id),
        "deleted": True,
        "webhooksDeleted": 1,
        "deliveriesDeleted": 2,
        "syncLogsDeleted": 1,
        "revoked": None,
    }
    assert [r.id for r in Integration.select()] == [other.id]
    assert (Webhook.select().count(), WebhookDelivery.select().count(), IntegrationSyncLog.select().count()) == (
        1,
        2,
        1,
    )
    [event] = disconnected(row)
    assert event.user_id == row.user_id and event.published_at is None
    assert disconnected(other) == []
    with pytest.raises(IntegrationNotFound):
        integrations.delete(row.id)
    assert len(disconnected(row)) == 1  # the failed second delete recorded nothing
