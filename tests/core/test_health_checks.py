"""Integration health in core, on SQLite and PostgreSQL: expiry reasons, announcing a change once
(also with concurrent checkers), due batches, the worst-first listing of stored statuses (one query, no
writes), the scopes publishing needs, the gauges, and the
deliveries query's plan on a large table."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest

from nexusctl.core import health, health_checks, integrations
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, OutboxEvent, Webhook, WebhookDelivery
from nexusctl.enums import Provider
from nexusctl.errors import IntegrationNotFound, UsageProblem

LEAD = dt.timedelta(days=7)
WINDOWS = {"lead": LEAD, "recheck": dt.timedelta(minutes=15)}


def _in(**delta) -> dt.datetime:
    return utcnow() + dt.timedelta(**delta)


def _codes(record: dict) -> list[str]:
    return [r["code"] for r in record["reasons"]]


def _changes(row_id) -> list[tuple[str, str]]:
    rows = (
        OutboxEvent.select()
        .where(
            (OutboxEvent.integration_id == row_id)
            & OutboxEvent.type.in_(["integration.error", "integration.recovered"])
        )
        .order_by(OutboxEvent.created_at, OutboxEvent.id)
    )
    return [(e.type, e.data["status"]) for e in rows]


def test_expiry_reasons(database, make_integration):
    cases = [
        # A long-lived Facebook token that has lapsed cannot be renewed any more.
        (dict(provider=Provider.FACEBOOK, refresh_token=None, expires_at=_in(hours=-1)), "broken", ["TOKEN_EXPIRED"]),
        # Google without a refresh token (offline access refused): a warning ahead of expiry.
        (dict(provider=Provider.YOUTUBE, refresh_token=None, expires_at=_in(days=2)), "degraded", ["TOKEN_EXPIRING"]),
        # Expired but renewable, and no refresh has failed: renewed on its next use.
        (dict(provider=Provider.DISCORD, expires_at=_in(minutes=-5)), "healthy", []),
        (
            dict(
                provider=Provider.TIKTOK,
                expires_at=_in(hours=2),
                metadata={"provider": {"refreshTokenExpiresAt": _in(days=3).isoformat()}},
            ),
            "degraded",
            ["REFRESH_TOKEN_EXPIRING"],
        ),
        (
            dict(
                provider=Provider.TIKTOK,
                expires_at=_in(hours=-2),
                metadata={"provider": {"refreshTokenExpiresAt": _in(days=-1).isoformat()}},
            ),
            "broken",
            ["REFRESH_TOKEN_EXPIRED"],
        ),
        (dict(provider=Provider.MAILCHIMP, refresh_token=None, expires_at=None), "healthy", []),
        (
            dict(provider=Provider.SLACK, is_active=False, last_error="SLACK refused the refresh: invalid_grant"),
            "broken",
            ["INACTIVE"],
        ),
    ]
    for fields, status, codes in cases:
        row = make_integration(**fields)
        record = health_checks.check(row.id, **WINDOWS)
        assert (record["status"], _codes(record)) == (status, codes), fields
    inactive = health_checks.check(row.id, **WINDOWS)
    assert "invalid_grant" in inactive["reasons"][0]["message"]


def test_missing_scopes_count_only_what_was_asked_for_and_reported(database, make_integration):
    partial = make_integration(provider=Provider.SLACK, scope=["channels:read", "groups:read", "team:read"])
    record = health_checks.check(partial.id, **WINDOWS)
    assert record["scopes"]["missing"] == ["chat:write"] and "publish" in record["reasons"][0]["message"]
    unreported = make_integration(provider=Provider.SLACK, scope=[])
    assert health_checks.check(unreported.id, **WINDOWS)["scopes"]["reported"] is False
    # X connections made before tweet.write was asked for cannot publish until they reconnect.
    older = make_integration(provider=Provider.TWITTER, scope=["tweet.read", "users.read", "offline.access"])
    record = health_checks.check(older.id, **WINDOWS)
    assert record["status"] == "degraded" and record["scopes"]["missing"] == ["tweet.write"]
    twitter = make_integration(
        provider=Provider.TWITTER, scope=["tweet.read", "tweet.write", "users.read", "offline.access"]
    )
    assert health_checks.check(twitter.id, **WINDOWS)["status"] == "healthy"


def test_an_approval_only_scope_counts_once_the_operator_configured_it(database, make_integration):
    # LinkedIn's r_member_social (fetch_posts) is asked for only with LINKEDIN_APPROVED_SCOPES: only then can a
    # grant lack it in a way connecting again fixes.
    row = make_integration(provider=Provider.LINKEDIN, scope=["openid", "profile", "email", "w_member_social"])
    assert health_checks.check(row.id, **WINDOWS)["scopes"]["missing"] == []
    record = health_checks.check(row.id, **WINDOWS, approved={Provider.LINKEDIN: ("r_member_social",)})
    assert record["scopes"]["missing"] == ["r_member_social"] and "fetch_posts" in record["reasons"][0]["message"]


def test_a_change_is_announced_once_and_recovery_too(database, make_integration):
    row = make_integration(provider=Provider.DISCORD)
    assert health_checks.check(row.id, **WINDOWS)["status"] == "healthy"
    assert _changes(row.id) == []  # a first healthy check announces nothing
    Integration.update(is_active=False, last_error="gone").where(Integration.id == row.id).execute()
    for _ in range(3):
        health_checks.check(row.id, **WINDOWS)
    Integration.update(is_active=True, last_error=None).where(Integration.id == row.id).execute()
    for _ in range(3):
        health_checks.check(row.id, **WINDOWS)
    assert _changes(row.id) == [("integration.error", "broken"), ("integration.recovered", "healthy")]
    error = OutboxEvent.get((OutboxEvent.integration_id == row.id) & (OutboxEvent.type == "integration.error"))
    assert error.data["code"] == "INTEGRATION_BROKEN" and error.data["previousStatus"] == "healthy"
    assert error.data["reasons"][0]["code"] == "INACTIVE" and "gone" in error.data["message"]


def test_concurrent_checkers_announce_a_change_once(database, make_integration, db_url):
    row = make_integration(provider=Provider.DISCORD)
    health_checks.check(row.id, **WINDOWS)
    integrations.update(row.id, is_active=False)  # as PATCH isActive: false does
    barrier, errors = threading.Barrier(6), []

    def checker():
        try:
            barrier.wait()
            with database.connection_context():
                health_checks.check(row.id, **WINDOWS)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=checker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert _changes(row.id) == [("integration.error", "broken")]


def test_unknown_and_someone_elses_integration_are_not_found(database, make_integration):
    row = make_integration()
    with pytest.raises(IntegrationNotFound):
        health_checks.check(uuid.uuid4(), **WINDOWS)
    with pytest.raises(IntegrationNotFound):
        health_checks.check(row.id, owner_id=uuid.uuid4(), **WINDOWS)
    with pytest.raises(UsageProblem):
        health_checks.check("nope", **WINDOWS)


def test_due_checks_are_a_bounded_batch_and_then_wait(database, make_integration):
    rows = [make_integration(provider=Provider.DISCORD) for _ in range(5)]
    assert health_checks.check_due(limit=2, **WINDOWS)["checked"] == 2
    assert health_checks.check_due(limit=10, **WINDOWS)["checked"] == 3
    assert health_checks.check_due(limit=10, **WINDOWS)["checked"] == 0  # all checked: due after HEALTH_RECHECK
    # An expiry coming within the lead brings the next check forward to that moment.
    soon = make_integration(provider=Provider.YOUTUBE, refresh_token=None, expires_at=_in(days=7, minutes=5))
    health_checks.check(soon.id, **WINDOWS)
    due = Integration.get_by_id(soon.id).health_due_at
    assert _in(minutes=4) < due < _in(minutes=6)
    assert all(Integration.get_by_id(r.id).health_status == "healthy" for r in rows)


def test_the_listing_is_worst_first_and_pages_by_keyset(database, make_integration):
    user = uuid.uuid4()
    made = {
        "broken": [make_integration(user_id=user, is_active=False) for _ in range(2)],
        "degraded": [
            make_integration(
                user_id=user, provider=Provider.YOUTUBE, refresh_token=None, expires_at=_in(days=1), scope=[]
            )
            for _ in range(2)
        ],
        "healthy": [make_integration(user_id=user) for _ in range(3)],
    }
    health_checks.check_due(**WINDOWS)  # what the daemon's integration-health job does
    seen, cursor = [], None
    while True:
        page = health_checks.list_page(user_id=user, limit=3, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r["status"] for r in seen] == ["broken"] * 2 + ["degraded"] * 2 + ["healthy"] * 3
    assert len({r["integrationId"] for r in seen}) == 7
    assert _codes(seen[0]) == ["INACTIVE"] and _codes(seen[2]) == ["TOKEN_EXPIRING"]
    assert all(r["checkedAt"] and r["nextCheckAt"] for r in seen)
    everyone = health_checks.list_page(statuses="degraded,broken", limit=50).items
    assert {r["integrationId"] for r in everyone} == {str(r.id) for r in made["broken"] + made["degraded"]}
    with pytest.raises(UsageProblem):
        health_checks.list_page(statuses="sick")
    with pytest.raises(UsageProblem):
        health_checks.list_page(cursor="garbage!")
    with pytest.raises(UsageProblem, match="1 to 100"):
        health_checks.list_page(limit=101)


def test_the_listing_reads_what_was_stored_and_writes_nothing(database, make_integration):
    user = uuid.uuid4()
    row = make_integration(user_id=user, provider=Provider.DISCORD)
    # Never checked: shown as unknown (not as healthy), and not under a status filter.
    [unchecked] = health_checks.list_page(user_id=user).items
    assert (unchecked["status"], unchecked["checkedAt"], unchecked["reasons"]) == ("unknown", None, [])
    assert health_checks.list_page(user_id=user, statuses="healthy").items == []
    assert Integration.get_by_id(row.id).health_checked_at is None  # the list checked nothing
    health_checks.check(row.id, **WINDOWS)
    checked_at = Integration.get_by_id(row.id).health_checked_at
    # It breaks after its last check: the list shows the stored status (with when it was checked) until the
    # next check, announces nothing and writes nothing; the single-integration check sees it at once.
    integrations.update(row.id, is_active=False)  # as PATCH isActive: false does
    [listed] = health_checks.list_page(user_id=user).items
    assert listed["status"] == "healthy" and listed["checkedAt"] == health._iso(checked_at)
    assert Integration.get_by_id(row.id).health_checked_at == checked_at and _changes(row.id) == []
    assert health_checks.check(row.id, **WINDOWS)["status"] == "broken"
    assert health_checks.list_page(user_id=user).items[0]["status"] == "broken"


def test_a_list_of_100_costs_one_query(database, make_integration):
    user = uuid.uuid4()
    for i in range(101):
        make_integration(user_id=user, provider=Provider.SLACK if i % 2 else Provider.DISCORD)
    health_checks.check_due(**WINDOWS)
    calls, real = [], database.execute_sql

    def counting(sql, *args, **kwargs):
        calls.append(sql)
        return real(sql, *args, **kwargs)

    database.execute_sql = counting
    try:
        page = health_checks.list_page(user_id=user, limit=100)
    finally:
        database.execute_sql = real
    assert len(page.items) == 100 and page.next_cursor
    assert len(calls) == 1 and calls[0].lstrip().upper().startswith("SELECT"), calls


def test_every_publisher_that_asks_for_scopes_says_what_publishing_needs():
    from nexusctl.providers.registry import SPECS
    from nexusctl.providers.scopes import NEEDS
    from nexusctl.providers.sync.publish import PUBLISHERS

    for name in PUBLISHERS:
        provider = Provider(name)
        if SPECS[provider].scopes:
            assert "publish" in NEEDS.get(provider, {}), name


def test_a_youtube_grant_without_upload_cannot_publish(database, make_integration):
    read_only = make_integration(
        provider=Provider.YOUTUBE,
        scope=[
            "https://www.googleapis.com/auth/youtube.readonly",
            "https://www.googleapis.com/auth/yt-analytics.readonly",
            "https://www.googleapis.com/auth/youtube.force-ssl",
        ],
    )
    record = health_checks.check(read_only.id, **WINDOWS)
    assert record["status"] == "degraded" and record["scopes"]["missing"] == [
        "https://www.googleapis.com/auth/youtube.upload"
    ]
    assert "publish" in record["reasons"][0]["message"]


def test_a_youtube_grant_from_before_comments_names_their_scope(database, make_integration):
    """A connection made before comments were asked for lacks youtube.force-ssl: health says which actions."""
    old = make_integration(
        provider=Provider.YOUTUBE,
        scope=[
            "https://www.googleapis.com/auth/youtube.readonly",
            "https://www.googleapis.com/auth/youtube.upload",
            "https://www.googleapis.com/auth/yt-analytics.readonly",
        ],
    )
    record = health_checks.check(old.id, **WINDOWS)
    assert record["status"] == "degraded"
    assert record["scopes"]["missing"] == ["https://www.googleapis.com/auth/youtube.force-ssl"]
    assert "fetch_comments" in record["reasons"][0]["message"] and "reply_comment" in record["reasons"][0]["message"]


def test_gauges_count_by_provider_and_status(database, make_integration):
    make_integration(provider=Provider.SLACK, is_active=False)
    make_integration(provider=Provider.SLACK)
    make_integration(provider=Provider.DISCORD, expires_at=_in(hours=3))
    make_integration(provider=Provider.DISCORD, expires_at=_in(hours=30))
    make_integration(provider=Provider.DISCORD, expires_at=_in(hours=3), is_active=False)
    before = health_checks.gauges()
    assert ("SLACK", "unknown", 2) in before["byStatus"]
    health_checks.check_due(**WINDOWS)
    after = health_checks.gauges()
    assert sorted(after["byStatus"]) == [
        ("DISCORD", "broken", 1),
        ("DISCORD", "healthy", 2),
        ("SLACK", "broken", 1),
        ("SLACK", "healthy", 1),
    ]
    assert after["expiringWithin24h"] == 1  # active, within 24 h


def test_delivery_outcomes_of_the_last_day_only(database, make_integration):
    row = make_integration(provider=Provider.SLACK)
    hook = Webhook.create(integration=row, url="https://example.com/h", secret=None)
    old = utcnow() - dt.timedelta(hours=25)
    for status, created in [
        ("FAILED", old),
        ("FAILED", old),
        ("DELIVERED", utcnow()),
        ("RETRYING", utcnow()),
        ("PENDING", utcnow()),
    ]:
        WebhookDelivery.create(webhook=hook, event="media.created", payload={}, status=status, created_at=created)
    found = health.facts(row, True, utcnow()).webhooks
    assert (found["deliveries24h"], found["delivered"], found["retrying"], found["successRate"]) == (3, 1, 1, 0.5)


@pytest.mark.postgres
def test_the_deliveries_query_uses_an_index_on_a_large_table(pg_database):
    """200,000 deliveries over 1,000 webhooks of 500 integrations: the 24-hour count of one integration's
    webhooks is a range of (webhook_id, created_at, id) per webhook, not a scan of the day's deliveries."""
    rows = [Integration.create(user_id=uuid.uuid4(), provider=Provider.SLACK, name="x") for _ in range(500)]
    hooks = [Webhook.create(integration=rows[i % 500], url="https://example.com/h", secret=None) for i in range(1000)]
    ids = ",".join(f"'{h.id}'" for h in hooks)
    pg_database.execute_sql(
        "INSERT INTO webhook_deliveries (id, created_at, updated_at, webhook_id, event, payload, status, attempts) "
        "SELECT gen_random_uuid(), now() - mod(g, 2880) * interval '1 minute', now(), "
        f"(ARRAY[{ids}]::uuid[])[1 + mod(g, 1000)], 'media.created', '{{}}', "
        "(ARRAY['DELIVERED','FAILED','RETRYING','PENDING'])[1 + mod(g, 4)], 1 FROM generate_series(1, 200000) g"
    )
    pg_database.execute_sql("ANALYZE webhook_deliveries")
    mine = [h.id for h in hooks if h.integration_id == rows[0].id]
    query = WebhookDelivery.select(WebhookDelivery.status).where(
        WebhookDelivery.webhook.in_(mine) & (WebhookDelivery.created_at >= utcnow() - health.WEBHOOK_WINDOW)
    )
    sql, params = query.sql()
    plan = "\n".join(r[0] for r in pg_database.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert "webhook_deliveries_webhook_id_created_at_id" in plan and "Seq Scan" not in plan, plan
    # Its 2 webhooks have 400 deliveries over two days, 200 of them within the last 24 hours.
    assert health.facts(Integration.get_by_id(rows[0].id), True, utcnow()).webhooks["deliveries24h"] == 200


def test_a_successful_refresh_never_puts_off_a_check_something_asked_for(database, make_integration, keyring):
    """The refresh's fenced UPDATE stores the health it leaves (after_refresh plans it); a check already asked
    for (a proxied 5xx, a failed sync set health_due_at to now) must still run soon, before or during the
    refresh alike."""
    import functools

    from nexusctl.core import connections, proxy_health, refresh
    from nexusctl.providers.spec import TokenSet

    row = make_integration(expires_at=_in(days=30))
    health_checks.check(row.id, **WINDOWS)  # checked: the next check in 15 minutes
    plan = functools.partial(health_checks.after_refresh, **WINDOWS)

    def store(read) -> None:  # as the refresh does: its lease taken before the provider call, tokens stored after
        lease = uuid.uuid4()
        assert refresh._claim(row.id, lease)
        read.refresh_lease_token = lease
        fresh = TokenSet(access_token="at-new", refresh_token="rt-new", expires_at=_in(days=30))
        assert connections.store_refreshed(keyring, read, fresh, lease, None, plan)

    # Asked for before the refresh read the row: the refresh keeps the due date.
    proxy_health.record(row.id, proxy_health.PROVIDER_ERROR, "SLACK answered HTTP 503 to a proxied call")
    read = Integration.get_by_id(row.id)
    assert read.health_due_at <= utcnow()
    assert plan(Integration.get_by_id(row.id), read).values["health_due_at"] == read.health_due_at
    store(read)
    assert Integration.get_by_id(row.id).health_due_at <= utcnow()
    assert health_checks.check_due(**WINDOWS)["checked"] == 1  # the health job looks at it now

    # Asked for while the provider was called (after the refresh read the row): the refresh does not write
    # over it (its UPDATE is fenced on the health columns as read) and asks for a check itself.
    read = Integration.get_by_id(row.id)
    assert read.health_due_at > utcnow()
    proxy_health.record(row.id, proxy_health.RATE_LIMITED, "SLACK answered HTTP 429 to a proxied call")
    store(read)
    stored = Integration.get_by_id(row.id)
    assert stored.health_due_at <= utcnow() and stored.expires_at > _in(days=29)

    # Nothing asked meanwhile: the health it planned is stored, the next check when the last one said.
    health_checks.check(row.id, **WINDOWS)
    read = Integration.get_by_id(row.id)
    store(read)
    assert Integration.get_by_id(row.id).health_due_at == read.health_due_at > utcnow()
