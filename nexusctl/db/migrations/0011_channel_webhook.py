"""A channel webhook the provider made at consent (Discord's webhook.incoming).

- integrations.channel_webhook_token: the webhook's token, encrypted like the
  access token (bound to the row and column), so `keys rotate` re-encrypts it
  with the other secrets. Its id, channel and server are provider facts in
  metadata.provider.webhook; the URL (id and token) is never stored.

Frozen definitions: never import db.models here.
"""

from nexusctl.db.fields import EncryptedTextField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integrations", "channel_webhook_token", EncryptedTextField()))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("integrations", "channel_webhook_token"))
