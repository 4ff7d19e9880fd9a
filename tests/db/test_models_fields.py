"""Portable fields, spec indexes, cascades and sealed secrets, on SQLite and PostgreSQL.

What a user of the database sees: JSON and string lists come back exactly as
written, timestamps are one instant in UTC whatever offset they arrived with
(and sort chronologically), ids exist before the insert, the spec's indexes
are there (and the per-user listing uses one on PostgreSQL), deleting an
integration takes its children with it, and a token's ciphertext only opens
in the row and column it was written for.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid

import peewee
import psycopg2
import pytest

from nexusctl.core import integrations
from nexusctl.crypto import Keyring
from nexusctl.db.database import bind, open_database
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog, OAuthState, Webhook, WebhookDelivery
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import DeliveryStatus, Provider
from nexusctl.errors import DecryptionFailed

UTC = dt.timezone.utc
PLUS5 = dt.timezone(dt.timedelta(hours=5))


def _new(**fields) -> Integration:
    fields.setdefault("user_id", uuid.uuid4())
    fields.setdefault("provider", Provider.SLACK)
    fields.setdefault("name", "n")
    return Integration.create(**fields)


# --- JSON and string arrays ------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}]}, "none": None},
        {"ünïcødé": "日本語 ✓ 🎉", "quote": 'it\'s "q"', "backslash": "a\\b", "nl": "a\nb"},
        {"empty": {}, "emptylist": [], "zero": 0, "false": False, "big": 2**53},
    ],
)
def test_metadata_json_round_trips(database, metadata):
    row = _new(metadata=metadata)
    assert Integration.get_by_id(row.id).metadata == metadata


@pytest.mark.parametrize(
    "scope",
    [
        [],
        ["read"],
        ["read", "write", "admin", "users:read", "a.b/c"],
        ["ünï", "日本", "🎉"],
        ["a,b", 'say "hi"', "it's", "{braces}", "back\\slash", "NULL", "", " padded "],
    ],
)
def test_scope_string_array_round_trips(database, scope):
    row = _new(scope=scope)
    assert Integration.get_by_id(row.id).scope == scope
    hook = Webhook.create(integration=row, url="https://example.com/h", events=scope)
    assert Webhook.get_by_id(hook.id).events == scope


@pytest.mark.postgres
def test_postgres_columns_have_native_types(pg_database):
    expected = {
        ("integrations", "id"): "uuid",
        ("integrations", "user_id"): "uuid",
        ("integrations", "organization_id"): "uuid",
        ("integrations", "metadata"): "jsonb",
        ("integrations", "scope"): "_text",
        ("integrations", "created_at"): "timestamptz",
        ("integrations", "updated_at"): "timestamptz",
        ("integrations", "expires_at"): "timestamptz",
        ("webhooks", "events"): "_text",
        ("webhooks", "integration_id"): "uuid",
        ("webhook_deliveries", "payload"): "jsonb",
        ("webhook_deliveries", "response"): "jsonb",
        ("integration_sync_logs", "started_at"): "timestamptz",
        ("oauth_states", "expires_at"): "timestamptz",
    }
    rows = pg_database.execute_sql(
        "SELECT table_name, column_name, udt_name FROM information_schema.columns WHERE table_schema = 'public'"
    ).fetchall()
    actual = {(t, c): udt for t, c, udt in rows}
    assert {k: actual.get(k) for k in expected} == expected

    _new(scope=["a", "b"], metadata={"team": "growth"})
    types = pg_database.execute_sql(
        "SELECT pg_typeof(metadata)::text, pg_typeof(scope)::text, pg_typeof(created_at)::text, "
        "pg_typeof(id)::text, metadata->>'team', 'b' = ANY(scope) FROM integrations"
    ).fetchone()
    assert types == ("jsonb", "text[]", "timestamp with time zone", "uuid", "growth", True)


# --- Timestamps ------------------------------------------------------------


def test_aware_and_naive_datetimes_are_one_utc_instant(database):
    row = _new(
        expires_at=dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=PLUS5), last_sync_at=dt.datetime(2026, 1, 1, 12, 0)
    )  # naive: taken as UTC
    again = Integration.get_by_id(row.id)
    assert again.expires_at == dt.datetime(2026, 1, 1, 7, 0, 0, 123456, tzinfo=UTC)
    assert again.expires_at.tzinfo is not None and again.expires_at.utcoffset() == dt.timedelta(0)
    assert again.last_sync_at == dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert again.last_sync_at.utcoffset() == dt.timedelta(0)
    assert again.created_at.utcoffset() == dt.timedelta(0)


def test_timestamps_order_and_compare_chronologically_across_offsets(database):
    rnd = random.Random(1234)
    base = dt.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    instants = {}
    for i in range(30):
        instant = base + dt.timedelta(minutes=rnd.randint(-3000, 3000), microseconds=rnd.randint(0, 999999))
        offset = dt.timezone(dt.timedelta(minutes=rnd.choice([-720, -480, -330, 0, 60, 330, 545, 840])))
        row = _new(name=f"r{i}", expires_at=instant.astimezone(offset))  # same instant, other wall clock
        instants[row.id] = instant
    by_db = [r.id for r in Integration.select().order_by(Integration.expires_at, Integration.id)]
    assert by_db == sorted(instants, key=lambda i: (instants[i], i))
    for cut in [base, base - dt.timedelta(hours=7), (base + dt.timedelta(hours=9)).astimezone(PLUS5)]:
        earlier = {r.id for r in Integration.select().where(Integration.expires_at < cut)}
        assert earlier == {i for i, when in instants.items() if when < cut}


@pytest.mark.postgres
def test_postgres_sessions_in_another_time_zone_see_the_same_instant(pg_database, postgres_url):
    instant = dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    row = _new(expires_at=instant)
    raw = psycopg2.connect(postgres_url)
    try:
        with raw.cursor() as cur:
            cur.execute("SET TIME ZONE 'Asia/Tokyo'")
            cur.execute("SELECT expires_at, expires_at::text FROM integrations WHERE id = %s", (str(row.id),))
            seen, text = cur.fetchone()
    finally:
        raw.close()
    assert seen == instant and seen.utcoffset() == dt.timedelta(hours=9)
    assert text == "2026-03-01 09:00:00+09"


@pytest.mark.postgres
def test_postgres_server_default_time_zone_does_not_shift_writes_or_reads(pg_database, postgres_url):
    dbname = postgres_url.rsplit("/", 1)[1]
    pg_database.execute_sql(f"ALTER DATABASE \"{dbname}\" SET timezone TO 'Asia/Tokyo'")
    tokyo = bind(open_database(postgres_url))  # new connections default to Tokyo; ours say UTC
    try:
        row = _new(expires_at=dt.datetime(2026, 3, 1, 0, 0), last_sync_at=dt.datetime(2026, 3, 1, 5, 0, tzinfo=PLUS5))
        again = Integration.get_by_id(row.id)
        assert again.expires_at == dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC) == again.last_sync_at
        assert again.expires_at.utcoffset() == dt.timedelta(0)
        # The pool's own sessions speak UTC, whatever the server's default is.
        (text,) = tokyo.execute_sql(
            "SELECT expires_at::text FROM integrations WHERE id = %s", (str(row.id),)
        ).fetchone()
        assert text == "2026-03-01 00:00:00+00"
    finally:
        tokyo.close_all()
        bind(pg_database)


def test_sqlite_a_year_one_zero_timestamp_reads_back(sqlite_url):
    db = bind(open_database(sqlite_url))
    try:
        zero = dt.datetime(1, 1, 1, tzinfo=UTC)  # e.g. a provider's "zero time"
        row = _new(expires_at=zero)
        assert Integration.get_by_id(row.id).expires_at == zero
    finally:
        db.close()


def test_created_and_updated_at_are_set_on_insert_and_updated_at_advances_on_save(database):
    before = utcnow()
    row = _new()
    after = utcnow()
    again = Integration.get_by_id(row.id)
    assert before <= again.created_at <= after and before <= again.updated_at <= after
    assert (again.created_at, again.updated_at) == (row.created_at, row.updated_at)

    old = dt.datetime(2020, 1, 1, tzinfo=UTC)
    Integration.update(updated_at=old).where(Integration.id == row.id).execute()
    loaded = Integration.get_by_id(row.id)
    loaded.name = "renamed"
    saving = utcnow()
    loaded.save()
    final = Integration.get_by_id(row.id)
    assert final.name == "renamed"
    assert final.updated_at >= saving > old
    assert final.created_at == row.created_at


def test_uuid_ids_exist_before_insert(database, keyring):
    row = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name="pre")
    assert isinstance(row.id, uuid.UUID)
    known = row.id
    seal(keyring, row, "access_token", "bound-to-the-id")  # needs the id already
    row.save(force_insert=True)
    again = Integration.get_by_id(known)
    assert again.id == known and unseal(keyring, again, "access_token") == "bound-to-the-id"
    assert Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name="x").id != known


# --- Indexes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "table, columns, unique",
    [
        ("integrations", ["user_id"], False),
        ("integrations", ["provider"], False),
        ("integrations", ["organization_id"], False),
        ("webhooks", ["integration_id"], False),
        ("webhook_deliveries", ["webhook_id"], False),
        ("webhook_deliveries", ["status"], False),
        ("webhook_deliveries", ["created_at"], False),
        ("oauth_states", ["state"], True),
        ("oauth_states", ["expires_at"], False),
    ],
)
def test_spec_index_exists(database, table, columns, unique):
    found = [(i.columns, i.unique) for i in database.get_indexes(table)]
    if unique:
        assert (columns, unique) in found, found
    else:  # or leading a composite index (migration 0017 dropped the single-column repeats)
        assert any(cols[: len(columns)] == columns for cols, _ in found), found


def test_oauth_state_is_unique(database):
    values = dict(
        provider=Provider.SLACK,
        user_id=uuid.uuid4(),
        redirect_uri="https://app/cb",
        expires_at=utcnow() + dt.timedelta(minutes=10),
    )
    OAuthState.create(state="s-1", **values)
    with pytest.raises(peewee.IntegrityError):
        with database.atomic():
            OAuthState.create(state="s-1", **values)


@pytest.mark.postgres
def test_postgres_per_user_listing_uses_an_index(pg_database):
    users = [uuid.uuid4() for _ in range(300)]
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "user_id": users[i % 300],
            "provider": Provider.SLACK,
            "name": f"n{i}",
            "created_at": base + dt.timedelta(seconds=i),
        }
        for i in range(6000)
    ]
    with pg_database.atomic():
        for start in range(0, len(rows), 1000):
            Integration.insert_many(rows[start : start + 1000]).execute()
    pg_database.execute_sql("ANALYZE integrations")

    statements = []

    class Capture(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple) and str(record.msg[0]).startswith("SELECT"):
                statements.append(record.msg)

    logger, handler = logging.getLogger("peewee"), Capture()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        first = integrations.list_page(user_id=users[7])  # the real query, default limit 50 (+1)
        integrations.list_page(
            user_id=users[7], limit=5, cursor=integrations.list_page(user_id=users[7], limit=5).next_cursor
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert len(first.items) == 20
    listing = [s for s in statements if '"user_id" = ' in s[0] and "ORDER BY" in s[0]]
    assert len(listing) == 3 and "LIMIT" in listing[0][0] and listing[0][1][-1] == 51
    for sql, params in (listing[0], listing[2]):  # first page, and a page after a cursor
        plan = "\n".join(r[0] for r in pg_database.execute_sql("EXPLAIN " + sql, params).fetchall())
        assert "Index" in plan and "Seq Scan" not in plan, plan


# --- Cascades and foreign keys ---------------------------------------------


def test_deleting_an_integration_deletes_its_webhooks_deliveries_and_sync_logs(database, make_integration):
    doomed, kept = make_integration(), make_integration()
    for owner in (doomed, kept):
        for n in range(2):
            hook = Webhook.create(integration=owner, url=f"https://example.com/{n}")
            for _ in range(3):
                WebhookDelivery.create(webhook=hook, event="e", payload={"n": n}, status=DeliveryStatus.PENDING)
        IntegrationSyncLog.create(integration=owner, action="fetch_posts")
    Integration.get_by_id(doomed.id).delete_instance()
    assert {h.integration_id for h in Webhook.select()} == {kept.id}
    assert WebhookDelivery.select().count() == 6
    assert all(d.webhook.integration_id == kept.id for d in WebhookDelivery.select())
    assert [s.integration_id for s in IntegrationSyncLog.select()] == [kept.id]


def test_foreign_keys_are_enforced(database):
    with pytest.raises(peewee.IntegrityError):
        with database.atomic():
            Webhook.create(integration=uuid.uuid4(), url="https://example.com/orphan")
    assert Webhook.select().count() == 0


# --- Sealed secrets --------------------------------------------------------


def test_seal_and_unseal_round_trip(database, keyring, make_integration):
    row = make_integration(access_token="tok-ünï-✓", refresh_token=None)
    again = Integration.get_by_id(row.id)
    assert unseal(keyring, again, "access_token") == "tok-ünï-✓"
    assert again.refresh_token is None and unseal(keyring, again, "refresh_token") is None
    twin = make_integration(access_token="tok-ünï-✓")
    assert Integration.get_by_id(twin.id).access_token != again.access_token  # fresh nonce each time


@pytest.mark.parametrize("target", ["other row, same column", "same row, other column", "webhook secret"])
def test_a_moved_ciphertext_does_not_open(database, keyring, make_integration, target):
    a = make_integration(access_token="PLAIN-A-access", refresh_token="PLAIN-A-refresh")
    b = make_integration(access_token="PLAIN-B-access")
    stolen = Integration.get_by_id(a.id).access_token
    if target == "other row, same column":
        Integration.update(access_token=stolen).where(Integration.id == b.id).execute()
        victim, column = Integration.get_by_id(b.id), "access_token"
    elif target == "same row, other column":
        Integration.update(refresh_token=stolen).where(Integration.id == a.id).execute()
        victim, column = Integration.get_by_id(a.id), "refresh_token"
    else:
        hook = Webhook.create(integration=b, url="https://example.com/h", secret=stolen)
        victim, column = Webhook.get_by_id(hook.id), "secret"
    with pytest.raises(DecryptionFailed) as info:
        unseal(keyring, victim, column)
    text = info.value.message + str(info.value) + repr(info.value.details)
    assert "PLAIN-A" not in text and stolen not in text and stolen.split(".")[2][:16] not in text
    assert unseal(keyring, Integration.get_by_id(a.id), "access_token") == "PLAIN-A-access"


def test_a_value_under_an_unconfigured_key_fails_cleanly(database, make_integration):
    row = make_integration(access_token="PLAIN-OTHER")
    with pytest.raises(DecryptionFailed) as info:
        unseal(Keyring(bytes(range(100, 132))), Integration.get_by_id(row.id), "access_token")
    assert "PLAIN-OTHER" not in info.value.message and "ENCRYPTION_OLD_KEYS" in info.value.message


def test_raw_columns_never_hold_the_plaintext(database, keyring, make_integration):
    row = make_integration(access_token="PLAINTEXT-ACCESS-42", refresh_token="PLAINTEXT-REFRESH-42")
    hook = Webhook(integration=row, url="https://example.com/h")
    seal(keyring, hook, "secret", "whsec_PLAINTEXT-42")
    hook.save(force_insert=True)
    dump = ""
    for table in ("integrations", "webhooks"):
        dump += repr(database.execute_sql(f"SELECT * FROM {table}").fetchall())
    assert "PLAINTEXT" not in dump
    raw = database.execute_sql("SELECT access_token, refresh_token FROM integrations").fetchone()
    assert all(value.startswith(keyring.current_prefix) for value in raw)
