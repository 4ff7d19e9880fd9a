"""Room for a refresh's claim beside it on its page: integrations fillfactor 50 (issue 19).

The refresh sweep writes each integration it refreshes twice: the claim (refresh_lease_until and
refresh_lease_token, unindexed) and the store (tokens, expires_at, health_due_at: indexed). PostgreSQL writes
the claim as a HOT update, with no index entry at all, only if its new version fits on the row's page. With a
fifth of each page free (0017) an integration's row (its sealed tokens and metadata make it wide) rarely found
room: 29-30% of the table's updates were HOT in bench/token_refresh.py (6,000 integrations), every other claim
writing an entry in all ten indexes. With half of each page free every claim is HOT (50% of the updates), and
PostgreSQL spent 213-220 against 248-427 µs per refresh in two alternated pairs on a loaded machine.

The price is space: a page holds half the rows it could, for pages written from now on (a VACUUM FULL or
pg_repack rewrites the old ones). PostgreSQL only: SQLite has no such setting.

Frozen definitions: never import db.models here.
"""

import peewee

FILLFACTOR = 50
BEFORE = 80  # 0017's


def up(migrator, db):
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f'ALTER TABLE "integrations" SET (fillfactor = {FILLFACTOR})')


def down(migrator, db):
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f'ALTER TABLE "integrations" SET (fillfactor = {BEFORE})')
