"""Connections: provider account ids, the refresh lease, encrypted flow
secrets on oauth_states, and the event outbox.

- integrations.account_id: who the tokens belong to at the provider, so
  reconnecting the same account updates the row instead of adding one.
- integrations.refresh_lease_until / refresh_lease_token: one refresher per
  integration across threads, processes and daemons; the token fences the
  write of the new tokens.
- oauth_states.secret (encrypted: the PKCE verifier, WooCommerce's keys) and
  oauth_states.tenant (the Shopify shop or WooCommerce store).
- outbox_events: events recorded in the same transaction as the change that
  caused them, relayed to webhooks and the bus by later features.

Frozen field definitions: never import db.models here.
"""

import uuid

from peewee import CharField, JSONField, Model, TextField, UUIDField

from nexusctl.db.fields import EncryptedTextField, UTCDateTimeField, utcnow


def _outbox(db):
    class OutboxEvent(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        type = CharField(max_length=64)
        user_id = UUIDField(null=True)
        integration_id = UUIDField(null=True)  # no FK: integration.disconnected outlives its row
        data = JSONField(default=dict)
        published_at = UTCDateTimeField(null=True)

        class Meta:
            database = db
            table_name = "outbox_events"
            # The relay reads unpublished events oldest first.
            indexes = ((("published_at", "created_at"), False),)

    return OutboxEvent


def up(migrator, db):
    # migrator methods return operations; migrator.migrate() runs them.
    migrator.migrate(
        migrator.add_column("integrations", "account_id", CharField(max_length=255, null=True)),
        migrator.add_column("integrations", "refresh_lease_until", UTCDateTimeField(null=True)),
        migrator.add_column("integrations", "refresh_lease_token", UUIDField(null=True)),
        migrator.add_index("integrations", ("user_id", "provider", "account_id"), unique=True),
        migrator.add_column("oauth_states", "secret", EncryptedTextField(null=True)),
        migrator.add_column("oauth_states", "tenant", TextField(null=True)),
    )
    db.create_tables([_outbox(db)])


def down(migrator, db):
    db.drop_tables([_outbox(db)])
    migrator.migrate(
        migrator.drop_column("oauth_states", "tenant"),
        migrator.drop_column("oauth_states", "secret"),
        migrator.drop_index("integrations", "integrations_user_id_provider_account_id"),
        *(
            migrator.drop_column("integrations", c)
            for c in ("refresh_lease_token", "refresh_lease_until", "account_id")
        ),
    )
