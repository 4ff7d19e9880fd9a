"""Room for a delivery's claim beside it on its page: webhook_deliveries fillfactor 50 (issue 19).

A claim (and each lease renewal) changes only unindexed columns (lease_until, lease_token): PostgreSQL can
write it as a HOT update, with no index entry at all, if the new version fits on the row's page. The record
that follows changes indexed ones (status, next_attempt_at: the due index's column and predicate), so it is
never HOT, and its version needs room on the page too. With a fifth of each page free (0017) a queue
inserted in a burst ran out of room after a few rows of each page: 19% of the table's updates were HOT, each
other claim writing an entry in all five indexes. With half of each page free the claims are (47% of the
updates, nearly every claim: bench/delivery_ab.py, 20,000 queued deliveries), and PostgreSQL spent 87-92
against 99-108 µs per delivery in three alternated pairs.

The price is space: a page holds half the rows it could (a fresh queue's pages; a delivery's row is updated
two or three times, so a fuller page does not stay full). It applies to pages written from now on (a
VACUUM FULL or pg_repack rewrites the old ones). PostgreSQL only: SQLite has no such setting.

Frozen definitions: never import db.models here.
"""

import peewee

FILLFACTOR = 50
BEFORE = 80  # 0017's


def up(migrator, db):
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f'ALTER TABLE "webhook_deliveries" SET (fillfactor = {FILLFACTOR})')


def down(migrator, db):
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f'ALTER TABLE "webhook_deliveries" SET (fillfactor = {BEFORE})')
