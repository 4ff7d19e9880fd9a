"""Proxied provider calls count toward integration health.

- integrations.proxy_failed_at / proxy_error_code / proxy_error: the last
  proxied call that the provider throttled (RATE_LIMITED), failed (PROVIDER_ERROR:
  a 5xx, an unreachable host) since the last good one; NULL once a later proxied
  call got a usable answer. nexusctl.core.health reads them like a sync's last
  failed run (degraded). A caller's own 4xx (404, 400) is neither.

Frozen definitions: never import db.models here.
"""

from peewee import CharField, TextField

from nexusctl.db.fields import UTCDateTimeField

COLUMNS = (
    ("proxy_failed_at", lambda: UTCDateTimeField(null=True)),
    ("proxy_error_code", lambda: CharField(max_length=32, null=True)),
    ("proxy_error", lambda: TextField(null=True)),
)


def up(migrator, db):
    migrator.migrate(*(migrator.add_column("integrations", name, make()) for name, make in COLUMNS))


def down(migrator, db):
    migrator.migrate(*(migrator.drop_column("integrations", name) for name, _ in reversed(COLUMNS)))
