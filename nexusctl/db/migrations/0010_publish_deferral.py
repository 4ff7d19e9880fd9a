"""Deferred publish runs: a sync log may wait in PENDING until a time.

- integration_sync_logs.run_after: a publish run whose provider is still
  processing the media (an Instagram reel) goes back to PENDING with the time
  to look again; the daemon's sync runner starts PENDING publish runs whose
  run_after is unset or past. The (status, created_at) index finds the
  PENDING rows; run_after is read on those few.

Frozen definitions: never import db.models here.
"""

from nexusctl.db.fields import UTCDateTimeField


def up(migrator, db):
    migrator.migrate(migrator.add_column("integration_sync_logs", "run_after", UTCDateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column("integration_sync_logs", "run_after"))
