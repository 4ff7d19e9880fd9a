"""The schema on SQLite and PostgreSQL: portable fields, the spec's indexes, cascades."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from nexusctl.db.models import ALL_MODELS, Integration, IntegrationSyncLog, Webhook, WebhookDelivery
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import DeliveryStatus, Provider
from nexusctl.errors import DecryptionFailed

UTC = dt.timezone.utc


@pytest.mark.parametrize("metadata", [{}, {"a": {"b": [1, 2.5, None, True]}}, {"ünï": "cødé ✓", "q": 'it\'s "quoted"'}])
@pytest.mark.parametrize("scope", [[], ["basic"], ["a,b", "with space", "ü", '"q"', "{x}"]])
def test_json_and_string_arrays_round_trip(database, scope, metadata):
    row = Integration.create(user_id=uuid.uuid4(), provider=Provider.HUBSPOT, name="n", scope=scope, metadata=metadata)
    again = Integration.get_by_id(row.id)
    assert again.scope == scope and again.metadata == metadata


@pytest.mark.postgres
def test_postgres_uses_native_types(pg_database):
    rows = pg_database.execute_sql(
        "SELECT column_name, data_type, udt_name FROM information_schema.columns WHERE table_name = 'integrations'"
    ).fetchall()
    types = {name: (data_type, udt) for name, data_type, udt in rows}
    assert types["metadata"][1] == "jsonb"
    assert types["scope"] == ("ARRAY", "_text")
    assert types["expires_at"][0] == "timestamp with time zone"
    assert types["id"][1] == "uuid" and types["user_id"][1] == "uuid"


def test_timestamps_are_stored_and_read_as_utc(database):
    plus5 = dt.timezone(dt.timedelta(hours=5))
    row = Integration.create(
        user_id=uuid.uuid4(),
        provider=Provider.SLACK,
        name="t",
        expires_at=dt.datetime(2026, 1, 1, 12, 0, tzinfo=plus5),
        last_sync_at=dt.datetime(2026, 1, 1, 12, 0),
    )  # naive = UTC
    again = Integration.get_by_id(row.id)
    assert again.expires_at == dt.datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
    assert again.expires_at.utcoffset() == dt.timedelta(0)
    assert again.last_sync_at == dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert again.created_at.tzinfo is not None and again.created_at.utcoffset() == dt.timedelta(0)


@pytest.mark.postgres
def test_postgres_session_time_zone_does_not_change_the_instant(pg_database):
    row = Integration.create(
        user_id=uuid.uuid4(), provider=Provider.SLACK, name="t", expires_at=dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    )
    pg_database.execute_sql("SET TIME ZONE 'Asia/Tokyo'")
    (stored,) = pg_database.execute_sql("SELECT expires_at FROM integrations WHERE id = %s", (str(row.id),)).fetchone()
    assert stored == dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    pg_database.execute_sql("SET TIME ZONE 'UTC'")


def test_time_comparisons_are_chronological_across_offsets(database):
    minus8 = dt.timezone(dt.timedelta(hours=-8))
    early = Integration.create(
        user_id=uuid.uuid4(),
        provider=Provider.SLACK,
        name="early",
        expires_at=dt.datetime(2026, 1, 1, 20, 0, tzinfo=minus8),
    )  # 04:00Z on the 2nd
    late = Integration.create(
        user_id=uuid.uuid4(), provider=Provider.SLACK, name="late", expires_at=dt.datetime(2026, 1, 2, 5, 0, tzinfo=UTC)
    )
    ordered = [r.name for r in Integration.select().order_by(Integration.expires_at)]
    assert ordered == ["early", "late"]
    cut = dt.datetime(2026, 1, 2, 4, 30, tzinfo=UTC)
    assert [r.id for r in Integration.select().where(Integration.expires_at < cut)] == [early.id]
    assert late.id not in [r.id for r in Integration.select().where(Integration.expires_at < cut)]


def test_ids_are_uuids_known_before_insert_and_updated_at_advances(database):
    row = Integration(user_id=uuid.uuid4(), provider=Provider.SLACK, name="t")
    assert isinstance(row.id, uuid.UUID)
    row.save(force_insert=True)
    created, first_update = row.created_at, row.updated_at
    row.name = "renamed"
    row.save()
    again = Integration.get_by_id(row.id)
    assert again.created_at == created and again.updated_at > first_update


def _index_columns(database, table):
    return {(tuple(i.columns), i.unique) for i in database.get_indexes(table)}


@pytest.mark.parametrize(
    "table, columns, unique",
    [
        ("integrations", ("user_id",), False),
        ("integrations", ("provider",), False),
        ("integrations", ("organization_id",), False),
        ("webhooks", ("integration_id",), False),
        ("webhook_deliveries", ("webhook_id",), False),
        ("webhook_deliveries", ("status",), False),
        ("webhook_deliveries", ("created_at",), False),
        ("oauth_states", ("state",), True),
        ("oauth_states", ("expires_at",), False),
    ],
)
def test_the_spec_indexes_exist(database, table, columns, unique):
    # A non-unique one may lead a composite index (0017 dropped the single-column ones that repeated one):
    # lookups by the column read it the same.
    indexed = _index_columns(database, table)
    if unique:
        assert (columns, unique) in indexed
    else:
        assert any(found[: len(columns)] == columns for found, _ in indexed), indexed


def test_models_match_the_migrated_schema(database):
    for model in ALL_MODELS:
        table = model._meta.table_name
        in_db = {c.name for c in database.get_columns(table)}
        in_model = {f.column_name for f in model._meta.sorted_fields}
        assert in_db == in_model, table


def test_deleting_an_integration_cascades(database, make_integration):
    row = make_integration()
    hook = Webhook.create(integration=row, url="https://example.com/h", events=["media.*"])
    WebhookDelivery.create(webhook=hook, event="media.created", payload={"x": 1}, status=DeliveryStatus.PENDING)
    IntegrationSyncLog.create(integration=row, action="fetch_posts")
    other = make_integration()
    IntegrationSyncLog.create(integration=other, action="fetch_posts")
    Integration.delete().where(Integration.id == row.id).execute()
    assert Webhook.select().count() == 0 and WebhookDelivery.select().count() == 0
    assert [log.integration_id for log in IntegrationSyncLog.select()] == [other.id]


def test_a_secret_opens_only_in_its_own_row_and_column(database, keyring, make_integration):
    a = make_integration(access_token="AAA-plain", refresh_token="AAA-refresh")
    b = make_integration(access_token="BBB-plain")
    assert unseal(keyring, Integration.get_by_id(a.id), "access_token") == "AAA-plain"
    stolen = Integration.get_by_id(a.id).access_token
    Integration.update(access_token=stolen).where(Integration.id == b.id).execute()
    Integration.update(refresh_token=stolen).where(Integration.id == a.id).execute()
    for row_id, column in [(b.id, "access_token"), (a.id, "refresh_token")]:
        with pytest.raises(DecryptionFailed) as info:
            unseal(keyring, Integration.get_by_id(row_id), column)
        assert "AAA-plain" not in info.value.message and stolen not in info.value.message


def test_no_plaintext_reaches_the_table(database, keyring, make_integration):
    make_integration(access_token="PLAINTEXT-ACCESS-1", refresh_token="PLAINTEXT-REFRESH-1")
    hook = Webhook(integration=Integration.select().get(), url="https://example.com/h")
    seal(keyring, hook, "secret", "whsec_PLAINTEXT")
    hook.save(force_insert=True)
    dump = repr(database.execute_sql("SELECT * FROM integrations").fetchall())
    dump += repr(database.execute_sql("SELECT * FROM webhooks").fetchall())
    assert "PLAINTEXT" not in dump and "nx1." in dump


@pytest.mark.postgres
def test_user_listing_query_uses_an_index_on_postgres(pg_database):
    users = [uuid.uuid4() for _ in range(200)]
    rows = [{"user_id": users[i % 200], "provider": Provider.SLACK, "name": f"n{i}"} for i in range(5000)]
    with pg_database.atomic():
        for start in range(0, len(rows), 1000):
            Integration.insert_many(rows[start : start + 1000]).execute()
    pg_database.execute_sql("ANALYZE integrations")
    query = (
        Integration.select()
        .where(Integration.user_id == users[7])
        .order_by(Integration.created_at.desc(), Integration.id.desc())
        .limit(51)
    )
    sql, params = query.sql()
    plan = "\n".join(r[0] for r in pg_database.execute_sql("EXPLAIN " + sql, params).fetchall())
    assert "Index" in plan, plan
