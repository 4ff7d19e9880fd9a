"""nexusctl/db/migrate.py: detecting, applying and reporting migrations; models vs migration drift.

An empty database is refused with the command to run; `migrate()` applies
what is pending exactly once (also under concurrency on PostgreSQL); a new
migration file makes a migrated database "behind"; a database migrated by a
newer version still runs. The models and the migrated schema must agree, so
neither can drift from the other unnoticed.
"""

from __future__ import annotations

import logging
import shutil
import threading

import peewee
import pytest
from playhouse.migrations import Runner

from nexusctl.db import migrate
from nexusctl.db.database import open_database
from nexusctl.db.models import ALL_MODELS, Integration
from nexusctl.enums import Provider
from nexusctl.errors import SchemaBehind

# What this version ships, read from the directory the runner reads: every
# expectation below follows it, and only test_this_version_ships_these_migrations
# spells the names out.
MIGRATIONS = sorted(p.stem for p in migrate.MIGRATIONS_DIR.glob("[0-9]*.py"))
# A migration written after this version: numbered after everything shipped.
NEXT = int(MIGRATIONS[-1][:4]) + 1
PROBE_NAME, BROKEN_NAME = f"{NEXT:04d}_add_probe", f"{NEXT:04d}_broken"

PROBE = '''"""Adds a probe column."""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integrations", "probe", TextField(null=True)))
'''

BROKEN = '''"""Adds a column, then fails: nothing of it may remain."""
from peewee import TextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integrations", "half_done", TextField(null=True)))
    raise RuntimeError("migration failed halfway")
'''


def _close(db):
    db.close()
    if hasattr(db, "close_all"):
        db.close_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path):
    """A database with no schema at all, of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("empty_postgres_url")
    db = open_database(url)
    yield db
    _close(db)


def _code_with(monkeypatch, tmp_path, **extra):
    """This version's migrations plus the given extra files, as MIGRATIONS_DIR."""
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__pycache__"))
    for name, body in extra.items():
        (directory / f"{name}.py").write_text(body)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", directory)
    return directory


def _columns(db, table):
    return {c.name for c in db.get_columns(table)}


# --- What ships -------------------------------------------------------------


def test_this_version_ships_these_migrations():
    assert MIGRATIONS == [
        "0001_initial",
        "0002_connections",
        "0003_webhook_delivery",
        "0004_refresh_sweep",
        "0005_job_runs",
        "0006_event_bus",
        "0008_sync",
        "0009_integration_health",
        "0010_publish_deferral",
        "0011_channel_webhook",
        "0012_organization_listing",
        "0013_live_view",
        "0014_trace_context",
        "0015_proxy_health",
        "0016_rate_waits",
        "0017_lean_indexes",
        "0018_parked_deliveries",
        "0019_hot_claims",
        "0020_hot_refresh_claims",
    ]


# --- Empty database --------------------------------------------------------


def test_an_empty_database_has_everything_pending_and_is_refused(empty_db):
    assert migrate.pending(empty_db) == MIGRATIONS
    rows = migrate.status(empty_db)
    assert [(row.name, row.applied_at, row.known) for row in rows] == [(name, None, True) for name in MIGRATIONS]
    assert migrate.known_names() == [row.name for row in rows]  # the quick check finds what the runner finds
    assert all(row.to_dict()["applied"] is False for row in rows)
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(empty_db)
    assert "nexusctl db migrate" in info.value.message and "no nexusctl schema" in info.value.message
    assert not empty_db.table_exists("integrations")  # checking created nothing


def test_migrate_applies_once_then_nothing(empty_db):
    assert migrate.migrate(empty_db) == MIGRATIONS
    assert migrate.migrate(empty_db) == []
    assert migrate.pending(empty_db) == []
    migrate.ensure_current(empty_db)  # does not raise
    rows = migrate.status(empty_db)
    assert [row.name for row in rows] == MIGRATIONS
    for row in rows:
        assert row.applied_at is not None and row.known
        assert row.to_dict()["applied"] is True and row.to_dict()["appliedAt"]
    for model in ALL_MODELS:
        assert empty_db.table_exists(model._meta.table_name)
    (count,) = empty_db.execute_sql(f"SELECT COUNT(*) FROM {migrate.HISTORY_TABLE}").fetchone()
    assert count == len(MIGRATIONS)


# --- A new migration file --------------------------------------------------


def test_a_new_migration_file_makes_the_database_behind(database, monkeypatch, tmp_path):
    _code_with(monkeypatch, tmp_path, **{PROBE_NAME: PROBE})
    assert migrate.pending(database) == [PROBE_NAME]
    with pytest.raises(SchemaBehind) as info:
        migrate.ensure_current(database)
    message = info.value.message
    assert PROBE_NAME in message and "nexusctl db migrate" in message
    assert not [name for name in MIGRATIONS if name in message]  # only what is missing is named
    assert "probe" not in _columns(database, "integrations")

    assert migrate.migrate(database) == [PROBE_NAME]
    assert "probe" in _columns(database, "integrations")
    assert migrate.pending(database) == [] and migrate.migrate(database) == []
    migrate.ensure_current(database)
    assert [(s.name, s.applied_at is not None) for s in migrate.status(database)] == [
        (name, True) for name in [*MIGRATIONS, PROBE_NAME]
    ]
    # The existing data is still there and usable.
    Integration.create(user_id="00000000-0000-0000-0000-000000000001", provider=Provider.SLACK, name="after")
    assert Integration.select().count() == 1


def test_a_failing_migration_leaves_nothing_behind(database, monkeypatch, tmp_path):
    _code_with(monkeypatch, tmp_path, **{BROKEN_NAME: BROKEN})
    with pytest.raises(RuntimeError, match="halfway"):
        migrate.migrate(database)
    assert "half_done" not in _columns(database, "integrations")
    assert migrate.pending(database) == [BROKEN_NAME]
    with pytest.raises(SchemaBehind):
        migrate.ensure_current(database)


def test_a_database_migrated_by_newer_code_still_runs_with_a_warning(database, caplog):
    database.execute_sql(
        f"INSERT INTO {migrate.HISTORY_TABLE} (name, applied) VALUES ('0099_from_the_future', CURRENT_TIMESTAMP)"
    )
    with caplog.at_level(logging.WARNING, logger="nexusctl.db.migrate"):
        migrate.ensure_current(database)  # does not raise
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "nexusctl.db.migrate"]
    assert len(warnings) == 1 and "0099_from_the_future" in warnings[0].getMessage()
    assert migrate.pending(database) == []
    unknown = [s for s in migrate.status(database) if not s.known]
    assert [(s.name, s.to_dict()["known"]) for s in unknown] == [("0099_from_the_future", False)]
    assert migrate.migrate(database) == []  # nothing to do, and no attempt to "apply" it


# --- Concurrency -----------------------------------------------------------


def _migrate_in_threads(url, n=3):
    results, errors = [], []
    barrier = threading.Barrier(n)

    def run():
        db = open_database(url)
        try:
            barrier.wait(timeout=10)
            results.append(migrate.migrate(db))
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(exc)
        finally:
            _close(db)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "migrate() hung"
    return results, errors


@pytest.mark.postgres
def test_concurrent_migrate_on_postgres_applies_once(empty_postgres_url):
    results, errors = _migrate_in_threads(empty_postgres_url, n=4)
    assert errors == []
    assert sorted(results) == [[], [], [], MIGRATIONS]
    db = open_database(empty_postgres_url)
    try:
        (count,) = db.execute_sql(f"SELECT COUNT(*) FROM {migrate.HISTORY_TABLE}").fetchone()
        assert count == len(MIGRATIONS)
        migrate.ensure_current(db)
    finally:
        _close(db)


def test_concurrent_migrate_on_sqlite_applies_once(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    read_status, first_done = threading.Event(), threading.Event()
    real_status = Runner.status

    def status(self):  # the slow reader: reads "pending", then the other finishes first
        rows = real_status(self)
        if threading.current_thread().name == "slow":
            read_status.set()
            first_done.wait(10)
        return rows

    monkeypatch.setattr(Runner, "status", status)
    results, errors = [], []

    def run(wait_for=None, done=None):
        db = open_database(url)
        try:
            if wait_for:
                wait_for.wait(10)
            results.append(migrate.migrate(db))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if done:
                done.set()
            _close(db)

    slow = threading.Thread(target=run, name="slow")
    fast = threading.Thread(target=run, name="fast", kwargs={"wait_for": read_status, "done": first_done})
    slow.start()
    fast.start()
    slow.join(30)
    fast.join(30)
    assert errors == [], errors
    assert sorted(results) == [[], MIGRATIONS]


# --- 0002_connections: down() then up() -------------------------------------


def _schema(db):
    """Every nexusctl table's columns, indexes and foreign keys, comparable as a whole."""
    return {
        table: (
            {(c.name, c.data_type, c.null, c.primary_key) for c in db.get_columns(table)},
            {(tuple(i.columns), i.unique) for i in db.get_indexes(table)},
            {(fk.column, fk.dest_table, (fk.on_delete or "").upper()) for fk in db.get_foreign_keys(table)},
        )
        for table in sorted(m._meta.table_name for m in ALL_MODELS)
        if db.table_exists(table)
    }


def _down_through(runner, name: str) -> list[str]:
    """Undo migrations newest first until ``name`` is undone; the names, in the order undone."""
    undone = []
    while name not in undone:
        step = runner.down()
        assert len(step) == 1, step
        undone += step
    return undone


def test_0002_connections_down_then_up_round_trips(database):
    from nexusctl.db.models import IntegrationSyncLog, OAuthState, OutboxEvent, Webhook

    row = Integration.create(user_id="00000000-0000-0000-0000-000000000002", provider=Provider.SLACK, name="kept")
    Webhook.create(integration=row, url="https://example.com/h")
    IntegrationSyncLog.create(integration=row, action="fetch_posts")
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)

    assert _down_through(runner, "0002_connections") == MIGRATIONS[:0:-1]  # down() undoes the newest first
    assert migrate.pending(database) == MIGRATIONS[1:]
    with pytest.raises(SchemaBehind):
        migrate.ensure_current(database)
    assert not database.table_exists(OutboxEvent._meta.table_name)
    assert not {"account_id", "refresh_lease_until", "refresh_lease_token"} & _columns(database, "integrations")
    assert not {"secret", "tenant"} & _columns(database, OAuthState._meta.table_name)
    assert not [i for i in database.get_indexes("integrations") if "account_id" in i.columns]
    # Dropping the columns kept the rows, and the rows that point at them.
    for table in ("integrations", "webhooks", "integration_sync_logs"):
        (count,) = database.execute_sql(f"SELECT COUNT(*) FROM {table}").fetchone()
        assert count == 1, table

    assert migrate.migrate(database) == MIGRATIONS[1:]
    assert migrate.pending(database) == []
    migrate.ensure_current(database)
    assert _schema(database) == before
    again = Integration.get_by_id(row.id)
    assert (again.name, again.account_id, again.refresh_lease_until, again.refresh_lease_token) == (
        "kept",
        None,
        None,
        None,
    )
    assert Webhook.select().where(Webhook.integration == row.id).count() == 1
    assert IntegrationSyncLog.select().where(IntegrationSyncLog.integration == row.id).count() == 1


def test_0003_webhook_delivery_down_then_up_round_trips(database):
    from nexusctl.db.models import Webhook, WebhookAttempt, WebhookDelivery

    row = Integration.create(user_id="00000000-0000-0000-0000-000000000003", provider=Provider.SLACK, name="kept")
    hook = Webhook.create(integration=row, url="https://example.com/h")
    delivery = WebhookDelivery.create(webhook=hook, event="media.created", payload={"a": 1})
    WebhookAttempt.create(delivery=delivery, number=1, started_at=delivery.created_at, status_code=500)
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    assert _down_through(runner, "0003_webhook_delivery") == MIGRATIONS[:1:-1]
    assert not database.table_exists("webhook_attempts")
    assert not {"next_attempt_at", "lease_until", "lease_token"} & _columns(database, "webhook_deliveries")
    assert not {"previous_secret", "failing_since"} & _columns(database, "webhooks")
    assert database.execute_sql("SELECT COUNT(*) FROM webhook_deliveries").fetchone() == (1,)
    assert migrate.migrate(database) == MIGRATIONS[2:]
    assert _schema(database) == before


def test_0011_channel_webhook_down_then_up_round_trips(database):
    row = Integration.create(
        user_id="00000000-0000-0000-0000-000000000011",
        provider=Provider.DISCORD,
        name="kept",
        channel_webhook_token="v1:sealed",
    )
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    undone = _down_through(runner, "0011_channel_webhook")
    assert undone == [
        "0020_hot_refresh_claims",
        "0019_hot_claims",
        "0018_parked_deliveries",
        "0017_lean_indexes",
        "0016_rate_waits",
        "0015_proxy_health",
        "0014_trace_context",
        "0013_live_view",
        "0012_organization_listing",
        "0011_channel_webhook",
    ]
    assert "channel_webhook_token" not in _columns(database, "integrations")
    assert migrate.migrate(database) == undone[::-1]
    assert _schema(database) == before
    assert Integration.get_by_id(row.id).channel_webhook_token is None  # dropped with its column


def test_0010_publish_deferral_down_then_up_round_trips(database):
    from nexusctl.db.fields import utcnow
    from nexusctl.db.models import IntegrationSyncLog

    row = Integration.create(user_id="00000000-0000-0000-0000-000000000010", provider=Provider.INSTAGRAM, name="kept")
    IntegrationSyncLog.create(integration=row, action="publish", run_after=utcnow())
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    undone = _down_through(runner, "0010_publish_deferral")
    assert undone[-1] == "0010_publish_deferral"
    assert "run_after" not in _columns(database, "integration_sync_logs")
    assert database.execute_sql("SELECT COUNT(*) FROM integration_sync_logs").fetchone() == (1,)
    assert migrate.migrate(database) == sorted(undone)
    assert _schema(database) == before
    assert IntegrationSyncLog.get(IntegrationSyncLog.integration == row.id).run_after is None


def test_0009_integration_health_down_then_up_round_trips(database):
    row = Integration.create(
        user_id="00000000-0000-0000-0000-000000000009",
        provider=Provider.SLACK,
        name="kept",
        health_status="broken",
        health_rank=2,
        health_reasons=[{"code": "INACTIVE"}],
    )
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    undone = _down_through(runner, "0009_integration_health")
    assert undone[-1] == "0009_integration_health"
    assert not {"health_status", "health_due_at", "refreshed_at"} & _columns(database, "integrations")
    assert database.execute_sql("SELECT COUNT(*) FROM integrations").fetchone() == (1,)
    assert migrate.migrate(database) == sorted(undone)
    assert _schema(database) == before
    again = Integration.get_by_id(row.id)
    # Back up, the status is unknown until the next check; every row is due for one at once.
    assert again.health_status is None and again.health_rank == 0 and again.health_due_at is not None


def _fillfactors(db) -> dict:
    rows = db.execute_sql(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('integrations', 'webhook_deliveries')"
    ).fetchall()
    return {name: options for name, options in rows}


def test_0017_lean_indexes_down_then_up_round_trips(database):
    single = {
        "integrations": {("user_id",), ("organization_id",)},
        "webhook_deliveries": {("webhook_id",)},
        "webhook_attempts": {("delivery_id",)},
    }

    def singles(table):
        return {tuple(i.columns) for i in database.get_indexes(table)} & single[table]

    postgres = isinstance(database, peewee.PostgresqlDatabase)
    assert all(not singles(table) for table in single)  # each column still leads a composite index
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    assert _down_through(runner, "0017_lean_indexes") == [
        "0020_hot_refresh_claims",
        "0019_hot_claims",
        "0018_parked_deliveries",
        "0017_lean_indexes",
    ]
    assert all(singles(table) == single[table] for table in single)
    if postgres:
        assert _fillfactors(database) == {"integrations": None, "webhook_deliveries": None}
    assert migrate.migrate(database) == [
        "0017_lean_indexes",
        "0018_parked_deliveries",
        "0019_hot_claims",
        "0020_hot_refresh_claims",
    ]
    assert _schema(database) == before


def test_0019_hot_claims_and_0020_hot_refresh_claims_down_then_up_round_trip(database):
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    if postgres:
        assert _fillfactors(database) == {"integrations": ["fillfactor=50"], "webhook_deliveries": ["fillfactor=50"]}
    before = _schema(database)
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    assert _down_through(runner, "0020_hot_refresh_claims") == ["0020_hot_refresh_claims"]
    if postgres:
        assert _fillfactors(database) == {"integrations": ["fillfactor=80"], "webhook_deliveries": ["fillfactor=50"]}
    assert _down_through(runner, "0019_hot_claims") == ["0019_hot_claims"]
    if postgres:
        assert _fillfactors(database) == {t: ["fillfactor=80"] for t in ("integrations", "webhook_deliveries")}
    assert migrate.migrate(database) == ["0019_hot_claims", "0020_hot_refresh_claims"]
    assert _schema(database) == before


def test_0018_parks_the_queued_deliveries_of_webhooks_already_switched_off(database):
    """Deliveries queued behind a webhook that was off before this version (due, skipped by every claim) are
    parked by the migration, the one a daemon is sending too (its record keeps it parked); those of an active
    webhook are left as they were. Undone, the parked ones are due again."""
    from nexusctl.core import deliveries
    from nexusctl.db.models import Webhook, WebhookDelivery

    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    assert _down_through(runner, "0018_parked_deliveries") == [
        "0020_hot_refresh_claims",
        "0019_hot_claims",
        "0018_parked_deliveries",
    ]
    integration = Integration.create(
        user_id="6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60", provider=Provider.SHOPIFY, name="s"
    )
    on = Webhook.create(integration=integration, url="https://hooks.example.com/on", events=["*"])
    off = Webhook.create(integration=integration, url="https://hooks.example.com/off", events=["*"])
    for n in range(3):
        deliveries.fan_out(integration, "post.created", {"n": n})
    leased = deliveries.claim(1, 60, exclude=[on.id])[0]  # a daemon sending one of the off webhook's
    Webhook.update(is_active=False).where(Webhook.id == off.id).execute()  # switched off before this version

    def due(hook):
        return sorted(
            (r.id == leased.id, r.next_attempt_at is not None)
            for r in WebhookDelivery.select().where(WebhookDelivery.webhook == hook.id)
        )

    assert due(off) == [(False, True), (False, True), (True, True)]
    assert migrate.migrate(database) == ["0018_parked_deliveries", "0019_hot_claims", "0020_hot_refresh_claims"]
    assert due(off) == [(False, False), (False, False), (True, False)] and due(on) == [(False, True)] * 3
    assert _down_through(runner, "0018_parked_deliveries") == [
        "0020_hot_refresh_claims",
        "0019_hot_claims",
        "0018_parked_deliveries",
    ]
    assert due(off) == [(False, True)] * 2 + [(True, True)]
    assert migrate.migrate(database) == ["0018_parked_deliveries", "0019_hot_claims", "0020_hot_refresh_claims"]


# --- Models vs migration ---------------------------------------------------


def test_every_model_matches_the_migrated_table(database):
    for model in ALL_MODELS:
        table = model._meta.table_name
        in_db = {c.name: c for c in database.get_columns(table)}
        in_model = {f.column_name: f for f in model._meta.sorted_fields}
        assert set(in_db) == set(in_model), table
        for name, field in in_model.items():
            assert in_db[name].null == field.null, f"{table}.{name} nullability"
            assert in_db[name].primary_key == field.primary_key, f"{table}.{name} primary key"


def _model_indexes(model):
    expected = set()
    for field in model._meta.sorted_fields:
        if field.unique:
            expected.add(((field.column_name,), True))
        elif field.index:  # a foreign key is indexed unless it says index=False
            expected.add(((field.column_name,), False))
    for columns, unique in model._meta.indexes:
        expected.add(
            (tuple(model._meta.fields[c].column_name if c in model._meta.fields else c for c in columns), unique)
        )
    return expected


def test_every_model_index_and_foreign_key_is_in_the_migrated_table(database):
    for model in ALL_MODELS:
        table = model._meta.table_name
        pk = model._meta.primary_key.column_name
        in_db = {(tuple(i.columns), i.unique) for i in database.get_indexes(table)} - {((pk,), True)}
        assert in_db == _model_indexes(model), table
        fks = {(fk.column, fk.dest_table, (fk.on_delete or "").upper()) for fk in database.get_foreign_keys(table)}
        expected = {
            (f.column_name, f.rel_model._meta.table_name, (f.on_delete or "").upper())
            for f in model._meta.sorted_fields
            if isinstance(f, peewee.ForeignKeyField)
        }
        assert fks == expected, table


@pytest.mark.postgres
def test_migrate_refuses_a_postgresql_older_than_13_before_applying_anything(pg_database, monkeypatch):
    """The record of delivery outcomes makes ids with gen_random_uuid() (built in from PostgreSQL 13): an older
    server is refused by name, with exit code 3, before any migration runs."""
    from nexusctl.errors import ConfigError

    applied = migrate.status(pg_database)
    real = pg_database.execute_sql

    def server_says_12(sql, *args, **kwargs):
        if sql == "SHOW server_version_num":
            return real("SELECT '120017'")
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(pg_database, "execute_sql", server_says_12)
    with pytest.raises(ConfigError) as refused:
        migrate.migrate(pg_database)
    assert refused.value.message == "DATABASE_URL: PostgreSQL 12 is too old; nexusctl needs PostgreSQL 13 or newer"
    assert refused.value.exit_code == 3
    monkeypatch.setattr(pg_database, "execute_sql", real)
    assert migrate.status(pg_database) == applied
