"""Integration health: the last status per integration, and what it is derived from.

- integrations.health_status / health_rank / health_reasons / health_checked_at:
  the status the last check found (healthy, degraded, broken; rank 0, 1, 2 so
  listings sort worst first by an index) and its reasons. A check that finds
  another status writes the new one and its integration.error or
  integration.recovered event in one transaction, so each change is announced once.
- integrations.health_due_at: when the integration is next checked. A refresh
  or a sync outcome sets it to now; the daemon's health job takes due rows
  oldest first through the index, a bounded batch per run.
- integrations.refreshed_at / refresh_failed_at: the last successful and the
  last failed token refresh (the outcome is whichever is later).
- integration_sync_logs (integration_id, action, created_at): the last run of
  each action is one index probe, however long the history.

Frozen definitions: never import db.models here.
"""

from peewee import CharField, IntegerField, JSONField

from nexusctl.db.fields import UTCDateTimeField, utcnow

COLUMNS = (
    ("health_status", lambda: CharField(max_length=16, null=True)),
    ("health_rank", lambda: IntegerField(default=0)),
    ("health_reasons", lambda: JSONField(null=True)),
    ("health_checked_at", lambda: UTCDateTimeField(null=True)),
    ("health_due_at", lambda: UTCDateTimeField(default=utcnow)),
    ("refreshed_at", lambda: UTCDateTimeField(null=True)),
    ("refresh_failed_at", lambda: UTCDateTimeField(null=True)),
)


def up(migrator, db):
    migrator.migrate(*(migrator.add_column("integrations", name, make()) for name, make in COLUMNS))
    migrator.migrate(
        migrator.add_index("integrations", ("health_due_at",)),
        migrator.add_index("integrations", ("health_rank", "created_at", "id")),
        migrator.add_index("integration_sync_logs", ("integration_id", "action", "created_at")),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("integration_sync_logs", "integration_sync_logs_integration_id_action_created_at"),
        migrator.drop_index("integrations", "integrations_health_rank_created_at_id"),
        migrator.drop_index("integrations", "integrations_health_due_at"),
    )
    migrator.migrate(*(migrator.drop_column("integrations", name) for name, _ in reversed(COLUMNS)))
