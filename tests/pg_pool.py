"""Fresh migrated PostgreSQL databases for tests, recycled instead of re-created.

A clone of the template (CREATE DATABASE ... TEMPLATE) and its DROP cost about
half a second each time on the CI machine, paid by every PostgreSQL test:
minutes of the 20-minute budget. After a test its database is emptied instead
(TRUNCATE ... RESTART IDENTITY: new empty files and sequences from 1, as in a
fresh clone) and handed to the next test, unless the test left anything a fresh
clone would not have: another schema (a column, an index, a table, a migration
row) or a database-level setting. Such a database is dropped, and any failure
while emptying one drops it too, so a test never sees another test's leavings.

Only the tables the test wrote are truncated: a table whose heap (or TOAST) file
is still empty, with no sequence of its own ever called, has never held a row,
not even a rolled-back one, so it is as the clone made it. TRUNCATE gives each
table and index new files, so emptying all thirteen tables after every test
cost ~0.1 s (most tests write two or three); the check is one catalog query.
"""

from __future__ import annotations

import uuid

# What a test may change beyond rows: compared with the template's before a database is reused.
SHAPE = """
SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
    SELECT 'c:' || a.attrelid::regclass || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
           || a.attnotnull || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS item
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND a.attnum > 0 AND NOT a.attisdropped  -- the catalog itself: information_schema.columns took 8 ms of 10
    UNION ALL SELECT 'i:' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT 'k:' || conrelid::regclass || ':' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 't:' || tgrelid::regclass || ':' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'f:' || proname || ':' || md5(prosrc) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT 'm:' || name FROM schema_migrations
    UNION ALL SELECT 's:' || array_to_string(setconfig, ',') FROM pg_db_role_setting
      WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) shape
"""

# The tables a test wrote: any page in the table's or its TOAST table's main file (a row, live, deleted or rolled
# back), or a sequence the table owns that was called (a nextval whose row never got written). The rest are as the
# template made them, all empty (schema_migrations keeps its rows: it is part of the schema).
WRITTEN = """
SELECT string_agg(format('%I', c.relname), ', ' ORDER BY c.relname) FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
   AND (pg_relation_size(c.oid) > 0
        OR (c.reltoastrelid <> 0 AND pg_relation_size(c.reltoastrelid) > 0)
        OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
                    WHERE d.classid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')
                      -- CASE: the planner may test rows before the join has kept only sequences
                      AND CASE WHEN s.relkind = 'S' THEN pg_sequence_last_value(s.oid) END IS NOT NULL))
"""


class PostgresPool:
    """Hands out migrated databases cloned from ``template``; takes them back emptied."""

    def __init__(self, admin, template: str, url_for, run_id: str) -> None:
        self._admin = admin  # an autocommit connection to the server's maintenance database
        self._template = template
        self._url_for = url_for
        self._run_id = run_id
        self._idle: list[str] = []
        self._shape = self._shape_of(template)

    def url_for(self, name: str) -> str:
        return self._url_for(name)

    def take(self) -> str:
        return self._idle.pop() if self._idle else self._clone()

    def give_back(self, name: str) -> None:
        if self._emptied(name):
            self._idle.append(name)
        else:
            self.drop(name)

    def drop(self, name: str) -> None:
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        while self._idle:
            self.drop(self._idle.pop())

    def _clone(self) -> str:
        name = f"nx_t_{self._run_id}_{uuid.uuid4().hex[:8]}"
        # FILE_COPY (PostgreSQL 15+) copies the template's files after a checkpoint: 180 ms here
        # against 540 ms for the default WAL_LOG, which writes every page to the WAL.
        strategy = " STRATEGY FILE_COPY" if self._admin.server_version >= 150000 else ""
        with self._admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"{strategy}')
        return name

    def _shape_of(self, name: str, conn=None) -> str:
        import psycopg2

        own = conn is None
        conn = conn or psycopg2.connect(self._url_for(name), connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute(SHAPE)
                return cur.fetchone()[0]
        finally:
            if own:
                conn.close()

    def _emptied(self, name: str) -> bool:
        """Empty ``name`` for the next test; False when it cannot be made like a fresh clone."""
        import psycopg2

        try:
            with self._admin.cursor() as cur:  # what the test left connected (a daemon's pool) goes
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
            conn = psycopg2.connect(self._url_for(name), connect_timeout=3)
        except psycopg2.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = '5s'")
                if self._shape_of(name, conn) != self._shape:
                    return False
                cur.execute(WRITTEN)
                written = cur.fetchone()[0]
                if written:
                    cur.execute(f"TRUNCATE {written} RESTART IDENTITY CASCADE")
            conn.commit()
            return True
        except psycopg2.Error:
            return False
        finally:
            conn.close()
