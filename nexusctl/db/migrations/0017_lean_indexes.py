"""Fewer index writes per refresh and per delivery (issue 19).

Every index on a table is one more entry written by each insert and by each
update that cannot be HOT. Four single-column indexes only repeat the leading
column of a composite index on the same table, which serves every query they
served (equality on that column, the cascading deletes' foreign-key lookups),
so they are dropped:

- integrations (user_id): (user_id, created_at, id) and (user_id, provider, account_id);
- integrations (organization_id): (organization_id, created_at, id) (0012);
- webhook_deliveries (webhook_id): (webhook_id, created_at, id);
- webhook_attempts (delivery_id): (delivery_id, number).

The spec's indexes on (user_id), (organization_id) and (webhook_id) are still
there in effect: each column leads an index. (status) on webhook_deliveries is
kept: `nexusctl top` counts the queue per status with it, bounded.

PostgreSQL only: integrations and webhook_deliveries get fillfactor 80. Their
rows are updated in place all the time (the refresh claim and store, the
health check; a delivery's claim and outcome) and a bulk-inserted page is full,
so no update could stay on its page as a HOT update (no index writes at all
when no indexed column changes). Leaving a fifth of each page free lets it.
It applies to pages written from now on (a VACUUM FULL or pg_repack rewrites
the old ones). SQLite has no such setting.

Frozen definitions: never import db.models here.
"""

import peewee

REDUNDANT = (
    ("integrations", "integrations_user_id", "user_id"),
    ("integrations", "integrations_organization_id", "organization_id"),
    ("webhook_deliveries", "webhook_deliveries_webhook_id", "webhook_id"),
    ("webhook_attempts", "webhookattempt_delivery_id", "delivery_id"),  # as 0003 named it
)
FILLFACTOR = 80
UPDATED_IN_PLACE = ("integrations", "webhook_deliveries")


def up(migrator, db):
    migrator.migrate(*(migrator.drop_index(table, name) for table, name, _ in REDUNDANT))
    if isinstance(db, peewee.PostgresqlDatabase):
        for table in UPDATED_IN_PLACE:
            db.execute_sql(f'ALTER TABLE "{table}" SET (fillfactor = {FILLFACTOR})')


def down(migrator, db):
    if isinstance(db, peewee.PostgresqlDatabase):
        for table in UPDATED_IN_PLACE:
            db.execute_sql(f'ALTER TABLE "{table}" RESET (fillfactor)')
    for table, name, column in REDUNDANT:
        db.execute_sql(f'CREATE INDEX "{name}" ON "{table}" ("{column}")')  # the names they had
