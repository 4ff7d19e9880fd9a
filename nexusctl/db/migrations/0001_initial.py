"""The spec's five tables, their indexes, and the keyset-paging indexes.

A frozen copy of the models as they were at this migration: it must never
import db.models, so later model changes cannot rewrite history.
"""

import uuid

from peewee import BooleanField, CharField, ForeignKeyField, IntegerField, JSONField, Model, TextField, UUIDField

from nexusctl.db.fields import EncryptedTextField, StringArrayField, UTCDateTimeField, utcnow


def _models(db):
    class Base(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)

        class Meta:
            database = db
            legacy_table_names = False

    class Integration(Base):
        user_id = UUIDField(index=True)
        organization_id = UUIDField(null=True, index=True)
        provider = CharField(max_length=32, index=True)
        name = CharField(max_length=255)
        is_active = BooleanField(default=True)
        access_token = EncryptedTextField()
        refresh_token = EncryptedTextField()
        token_type = CharField(max_length=32, null=True)
        expires_at = UTCDateTimeField(null=True)
        scope = StringArrayField(default=list)
        metadata = JSONField(default=dict)
        last_sync_at = UTCDateTimeField(null=True)
        last_error = TextField(null=True)

        class Meta:
            table_name = "integrations"
            indexes = ((("user_id", "created_at", "id"), False), (("created_at", "id"), False))

    class Webhook(Base):
        integration = ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
        url = TextField()
        events = StringArrayField(default=list)
        secret = EncryptedTextField()
        is_active = BooleanField(default=True)
        last_triggered_at = UTCDateTimeField(null=True)
        metadata = JSONField(default=dict)

        class Meta:
            table_name = "webhooks"

    class WebhookDelivery(Base):
        webhook = ForeignKeyField(Webhook, on_delete="CASCADE", column_name="webhook_id")
        event = CharField(max_length=255)
        payload = JSONField()
        status = CharField(max_length=16, default="PENDING", index=True)
        attempts = IntegerField(default=0)
        response = JSONField(null=True)
        error = TextField(null=True)
        delivered_at = UTCDateTimeField(null=True)

        class Meta:
            table_name = "webhook_deliveries"
            indexes = ((("created_at",), False),)

    class IntegrationSyncLog(Base):
        integration = ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
        action = CharField(max_length=64)
        resource_type = CharField(max_length=64, null=True)
        resource_id = CharField(max_length=255, null=True)
        status = CharField(max_length=16, default="PENDING")
        items_processed = IntegerField(default=0)
        items_failed = IntegerField(default=0)
        error = TextField(null=True)
        metadata = JSONField(default=dict)
        started_at = UTCDateTimeField(null=True)
        completed_at = UTCDateTimeField(null=True)

        class Meta:
            table_name = "integration_sync_logs"
            indexes = ((("integration_id", "created_at", "id"), False),)

    class OAuthState(Base):
        state = CharField(max_length=128, unique=True)
        provider = CharField(max_length=32)
        user_id = UUIDField()
        redirect_uri = TextField()
        metadata = JSONField(default=dict)
        expires_at = UTCDateTimeField(index=True)

        class Meta:
            table_name = "oauth_states"

    return [Integration, Webhook, WebhookDelivery, IntegrationSyncLog, OAuthState]


def up(migrator, db):
    db.create_tables(_models(db))


def down(migrator, db):
    db.drop_tables(list(reversed(_models(db))))
