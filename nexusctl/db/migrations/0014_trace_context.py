"""Trace context carried into the outbox (OpenTelemetry traces, optional).

- webhook_deliveries.trace_parent and outbox_events.trace_parent: the W3C traceparent of the request
  (or job) that emitted the event, written only while the daemon exports traces; a delivery's attempt
  spans are its children, so one trace runs from `POST /integrations/:id/events` to each attempt.
  NULL otherwise (rows from before, traces off, the CLI).

Frozen definitions: never import db.models here.
"""

import peewee


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("webhook_deliveries", "trace_parent", peewee.CharField(max_length=64, null=True)),
        migrator.add_column("outbox_events", "trace_parent", peewee.CharField(max_length=64, null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("outbox_events", "trace_parent"),
        migrator.drop_column("webhook_deliveries", "trace_parent"),
    )
