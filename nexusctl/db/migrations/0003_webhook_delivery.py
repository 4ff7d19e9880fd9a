"""Webhook delivery: scheduling, leases, every attempt, secret rotation.

- webhook_deliveries.next_attempt_at / lease_until / lease_token: the worker
  claims due rows in batches (FOR UPDATE SKIP LOCKED on PostgreSQL) under a
  lease; every write after the send is fenced by the lease token, and an
  expired lease makes the row claimable again (crash safety).
- webhook_attempts: one row per attempt (status code, duration, error,
  response body cut at 4 KB).
- webhooks.previous_secret / previous_secret_expires_at: after a rotation the
  old secret signs alongside the new one for 24 hours.
- webhooks.failing_since / disabled_reason: auto-disable after 5 days of
  failures without a success, or on HTTP 410.

Frozen field definitions: never import db.models here.
"""

import uuid

from peewee import SQL, ForeignKeyField, IntegerField, Model, TextField, UUIDField

from nexusctl.db.fields import EncryptedTextField, UTCDateTimeField, utcnow


def _attempts(db):
    class Delivery(Model):
        id = UUIDField(primary_key=True)

        class Meta:
            database = db
            table_name = "webhook_deliveries"

    class WebhookAttempt(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        delivery = ForeignKeyField(Delivery, on_delete="CASCADE", column_name="delivery_id")
        number = IntegerField()
        started_at = UTCDateTimeField()
        status_code = IntegerField(null=True)
        duration_ms = IntegerField(null=True)
        error = TextField(null=True)
        response_body = TextField(null=True)

        class Meta:
            database = db
            table_name = "webhook_attempts"
            indexes = ((("delivery_id", "number"), False),)

    return WebhookAttempt


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("webhook_deliveries", "next_attempt_at", UTCDateTimeField(null=True)),
        migrator.add_column("webhook_deliveries", "lease_until", UTCDateTimeField(null=True)),
        migrator.add_column("webhook_deliveries", "lease_token", UUIDField(null=True)),
        # The claim: the earliest due rows among PENDING/RETRYING. Partial, so a backlog of a
        # million is an index range scan that stops after the batch, not a scan and sort of all.
        migrator.add_index("webhook_deliveries", ("next_attempt_at",), where=SQL("status IN ('PENDING', 'RETRYING')")),
        # A webhook's delivery log, newest first (keyset paging).
        migrator.add_index("webhook_deliveries", ("webhook_id", "created_at", "id")),
        migrator.add_column("webhooks", "previous_secret", EncryptedTextField(null=True)),
        migrator.add_column("webhooks", "previous_secret_expires_at", UTCDateTimeField(null=True)),
        migrator.add_column("webhooks", "failing_since", UTCDateTimeField(null=True)),
        migrator.add_column("webhooks", "disabled_reason", TextField(null=True)),
    )
    db.create_tables([_attempts(db)])


def down(migrator, db):
    db.drop_tables([_attempts(db)])
    migrator.migrate(
        migrator.drop_index("webhook_deliveries", "webhook_deliveries_webhook_id_created_at_id"),
        migrator.drop_index("webhook_deliveries", "webhook_deliveries_next_attempt_at"),
        *(migrator.drop_column("webhook_deliveries", c) for c in ("lease_token", "lease_until", "next_attempt_at")),
        *(
            migrator.drop_column("webhooks", c)
            for c in ("disabled_reason", "failing_since", "previous_secret_expires_at", "previous_secret")
        ),
    )
