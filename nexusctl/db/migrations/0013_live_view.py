"""The live view's index: webhook attempts by time.

- webhook_attempts (started_at): `nexusctl top` counts the last seconds' attempts by outcome and the
  endpoints failing most in the last minutes. Without it each refresh read every attempt ever made;
  with it a refresh reads one window's rows (and at most nexusctl.core.activity.WINDOW_CAP of them).

Frozen definitions: never import db.models here.
"""


def up(migrator, db):
    migrator.migrate(migrator.add_index("webhook_attempts", ("started_at",)))


def down(migrator, db):
    migrator.migrate(migrator.drop_index("webhook_attempts", "webhook_attempts_started_at"))
