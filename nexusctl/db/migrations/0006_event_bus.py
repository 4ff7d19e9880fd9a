"""The platform event bus: outbox listing indexes, consumed events, leases.

- outbox_events: the relay's index is partial, (created_at, id) WHERE
  published_at IS NULL, so finding the oldest unpublished event costs the
  same with a month of published history as with none (it replaces 0002's
  (published_at, created_at), which made the scan step over every published
  row); (created_at, id) and (type, created_at, id) let `nexusctl events
  list|tail` page newest first, optionally by type.
- consumed_events: one row per event from another service that this service
  has handled (key = stream + the event's id), written in the handler's
  transaction, so the same event delivered twice changes nothing more.
- leases: a named lease one daemon holds at a time (the outbox relay: one
  publisher keeps events in order), renewed while held, taken over once it
  expires.

Frozen definitions: never import db.models here.
"""

import uuid

from peewee import CharField, JSONField, Model, UUIDField

from nexusctl.db.fields import UTCDateTimeField, utcnow


def _tables(db):
    class ConsumedEvent(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        key = CharField(max_length=255, unique=True)
        stream = CharField(max_length=200)
        entry_id = CharField(max_length=64, null=True)
        type = CharField(max_length=64)
        outcome = JSONField(default=dict)

        class Meta:
            database = db
            table_name = "consumed_events"
            indexes = ((("created_at",), False),)

    class Lease(Model):
        name = CharField(max_length=64, primary_key=True)
        holder = CharField(max_length=128)
        until = UTCDateTimeField()
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "leases"

    return ConsumedEvent, Lease


def up(migrator, db):
    db.create_tables(_tables(db))
    db.execute_sql(
        'CREATE INDEX "outbox_events_unpublished" ON "outbox_events" ("created_at", "id") WHERE published_at IS NULL'
    )
    migrator.migrate(
        migrator.drop_index("outbox_events", "outboxevent_published_at_created_at"),  # named by 0002
        migrator.add_index("outbox_events", ("created_at", "id")),
        migrator.add_index("outbox_events", ("type", "created_at", "id")),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("outbox_events", "outbox_events_type_created_at_id"),
        migrator.drop_index("outbox_events", "outbox_events_created_at_id"),
        migrator.drop_index("outbox_events", "outbox_events_unpublished"),
    )
    db.execute_sql(
        'CREATE INDEX "outboxevent_published_at_created_at" ON "outbox_events" ("published_at", "created_at")'
    )  # as 0002 named it
    db.drop_tables(_tables(db))
