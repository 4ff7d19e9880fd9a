"""The rate budget without Redis: the provider's waits, shared by every process on the database.

- rate_waits: one row per integration a provider asked to wait, holding when
  the wait ends (``until``, on the product clock). Written only when a provider
  says "wait" (a longer wait extends it, a shorter one never shortens it) and
  read by nexusctl.core.rate_budget at most once a second per integration and
  process, so the CLI's sync runs, the daemon and its proxy see each other's
  waits on the embedded default (SQLite) and on PostgreSQL without REDIS_URL.
  Ended waits are deleted by the next write (index on ``until``).

Frozen definitions: never import db.models here.
"""

from peewee import Model, UUIDField

from nexusctl.db.fields import UTCDateTimeField, utcnow


def _rate_waits(db):
    class RateWait(Model):
        integration_id = UUIDField(primary_key=True)
        until = UTCDateTimeField(index=True)
        updated_at = UTCDateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "rate_waits"

    return RateWait


def up(migrator, db):
    db.create_tables([_rate_waits(db)])


def down(migrator, db):
    db.drop_tables([_rate_waits(db)])
