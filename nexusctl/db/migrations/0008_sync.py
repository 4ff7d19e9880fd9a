"""Provider syncs: where each action resumes, and what it has seen.

- sync_cursors: per (integration, action), the page state a run that stopped
  early (failed, rate limited, cancelled) resumes from; cleared on completion.
- synced_items: per (integration, action, external id), the fingerprint of
  the provider's data last seen and the run that saw it: a changed
  fingerprint is `<resource>.updated`, a new id `.created`, and after a full
  run every row another run saw last is `.deleted`.
- integration_sync_logs (status, created_at): the daemon finds PENDING runs
  (API starts, content.published) without scanning the history.
- integrations.next_sync_at (partial index where set): when metadata.syncSchedule
  next runs; the daemon claims due rows with a conditional UPDATE.

Frozen definitions: never import db.models here.
"""

import uuid

from peewee import SQL, CharField, ForeignKeyField, JSONField, Model, UUIDField

from nexusctl.db.fields import UTCDateTimeField, utcnow


def _tables(db):
    class Integration(Model):
        id = UUIDField(primary_key=True)

        class Meta:
            database = db
            table_name = "integrations"

    class SyncCursor(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        integration = ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
        action = CharField(max_length=64)
        resume = JSONField(null=True)

        class Meta:
            database = db
            table_name = "sync_cursors"
            indexes = ((("integration_id", "action"), True),)

    class SyncedItem(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        integration = ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
        action = CharField(max_length=64)
        external_id = CharField(max_length=255)
        fingerprint = CharField(max_length=64)
        seen_run = UUIDField()

        class Meta:
            database = db
            table_name = "synced_items"
            indexes = (
                (("integration_id", "action", "external_id"), True),
                (("integration_id", "action", "seen_run"), False),
            )

    return SyncCursor, SyncedItem


def up(migrator, db):
    db.create_tables(_tables(db))
    migrator.migrate(
        migrator.add_index("integration_sync_logs", ("status", "created_at")),
        migrator.add_column("integrations", "next_sync_at", UTCDateTimeField(null=True)),
        migrator.add_index("integrations", ("next_sync_at",), where=SQL("next_sync_at IS NOT NULL")),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("integrations", "integrations_next_sync_at"),
        migrator.drop_column("integrations", "next_sync_at"),
        migrator.drop_index("integration_sync_logs", "integration_sync_logs_status_created_at"),
    )
    db.drop_tables(list(reversed(_tables(db))))
