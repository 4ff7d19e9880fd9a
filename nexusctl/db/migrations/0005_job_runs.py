"""Scheduled jobs: what each job last did, and the refresh sweep's per-integration state.

- job_runs: one row per job name (token-refresh, housekeeping), shared by
  every daemon on the database (an upsert; the last writer wins): its
  schedule, last start and finish, outcome and counts, next run, and which
  process (hostname:pid) scheduled and ran it. `nexusctl jobs list` reads it.
- integrations.refresh_failures / refresh_retry_at: consecutive failed
  sweep refreshes and when the sweep may try again (exponential back-off).
  Until now the back-off was a lease without a lease token; such rows move
  to refresh_retry_at here, so a lease always has a holder.
- integrations.expiry_warned_for: the expires_at an expiry warning
  (integration.error TOKEN_EXPIRING) went out for, so it goes out once.

Frozen field definitions: never import db.models here.
"""

import uuid

from peewee import CharField, IntegerField, JSONField, Model, TextField, UUIDField

from nexusctl.db.fields import UTCDateTimeField, utcnow


def _job_runs(db):
    class JobRun(Model):
        id = UUIDField(primary_key=True, default=uuid.uuid4)
        created_at = UTCDateTimeField(default=utcnow)
        updated_at = UTCDateTimeField(default=utcnow)
        name = CharField(max_length=64, unique=True)
        schedule = CharField(max_length=128, null=True)
        next_run_at = UTCDateTimeField(null=True)
        scheduled_by = CharField(max_length=255, null=True)
        last_started_at = UTCDateTimeField(null=True)
        last_finished_at = UTCDateTimeField(null=True)
        outcome = CharField(max_length=16, null=True)
        message = TextField(null=True)
        counts = JSONField(null=True)
        ran_by = CharField(max_length=255, null=True)

        class Meta:
            database = db
            table_name = "job_runs"

    return JobRun


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("integrations", "refresh_failures", IntegerField(default=0)),
        migrator.add_column("integrations", "refresh_retry_at", UTCDateTimeField(null=True)),
        migrator.add_column("integrations", "expiry_warned_for", UTCDateTimeField(null=True)),
    )
    # The old back-off: a lease nobody holds. Keep its time as the retry time.
    db.execute_sql(
        "UPDATE integrations SET refresh_retry_at = refresh_lease_until, refresh_lease_until = NULL "
        "WHERE refresh_lease_token IS NULL AND refresh_lease_until IS NOT NULL"
    )
    db.create_tables([_job_runs(db)])


def down(migrator, db):
    db.drop_tables([_job_runs(db)])
    migrator.migrate(
        *(
            migrator.drop_column("integrations", c)
            for c in ("expiry_warned_for", "refresh_retry_at", "refresh_failures")
        )
    )
