"""Written-out statements for hot paths: the SQL text built once per shape, values converted by the models' fields.

peewee builds a statement's SQL anew on every execution (its ``sql()`` walk was most of the refresh sweep's
CPU, bench/token_refresh.py, and of the emit and record batches' CPU, bench/real_paths.py). These take a
model, column values by field name and equality conditions, cache the text per (model, columns,
conditions, placeholder) and run it with ``execute_sql``: the same statement on SQLite and PostgreSQL, the
same conversions (``Field.db_value``; JSON as text, which both take).

Many rows at once (``insert_many``): on PostgreSQL one ``INSERT ... SELECT * FROM unnest(%s::uuid[], ...)``,
each column one array parameter, so the text is the same whatever the batch's size; on SQLite the
one-row INSERT through ``executemany`` (one prepared statement for the batch). ``in_list`` is the
matching ``IN`` for a list of values.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import json
import logging
import re
import threading
import uuid
import weakref

import peewee

from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.fields import as_utc

log = logging.getLogger(__name__)
CHUNK = 1000  # rows per statement of insert_many: bounded statements whatever the batch
# PostgreSQL's array type for a column of each of the models' field types (insert_many's unnest).
_ARRAY_TYPES = {
    "UUID": "uuid",
    "VARCHAR": "text",
    "TEXT": "text",
    "INT": "int",
    "BIGINT": "bigint",
    "BOOL": "bool",
    "TIMESTAMPTZ": "timestamptz",
    "JSON": "jsonb",
}


def param(field: peewee.Field, value):
    """``value`` as ``field`` hands it to the driver (a statement's parameter)."""
    if isinstance(field, peewee.JSONField):  # its db_value wraps for peewee's own statements only
        return None if value is None else json.dumps(value)
    return field.db_value(value)


@functools.lru_cache(maxsize=64)
def _update_sql(model, names: tuple, where: tuple, mark: str) -> str:
    fields = model._meta.fields
    sets = ", ".join(f'"{fields[n].column_name}" = {mark}' for n in names)
    conditions = " AND ".join(f'"{fields[n].column_name}" = {mark}' for n in where)
    return f'UPDATE "{model._meta.table_name}" SET {sets} WHERE {conditions}'


@functools.lru_cache(maxsize=64)
def _insert_sql(model, names: tuple, mark: str) -> str:
    fields = model._meta.fields
    columns = ", ".join(f'"{fields[n].column_name}"' for n in names)
    return f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({", ".join([mark] * len(names))})'


def update(model, values: dict, where: dict) -> int:
    """``UPDATE model SET values WHERE each of where equals``; how many rows it changed."""
    fields = model._meta.fields
    sql = _update_sql(model, tuple(values), tuple(where), database_proxy.param)
    params = [param(fields[n], v) for n, v in values.items()] + [param(fields[n], v) for n, v in where.items()]
    return database_proxy.execute_sql(sql, params).rowcount


def insert(instance: peewee.Model) -> None:
    """INSERT ``instance`` as made (its defaults filled in by the model: ids, timestamps)."""
    model, data = type(instance), instance.__data__
    fields = model._meta.fields
    sql = _insert_sql(model, tuple(data), database_proxy.param)
    database_proxy.execute_sql(sql, [param(fields[n], v) for n, v in data.items()])


# --- prepared on PostgreSQL -----------------------------------------------------------------------------
#
# PostgreSQL plans a statement sent as text on every execution: 0.3-0.4 ms of its CPU for the refresh's
# claim and store, about as much as executing them (EXPLAIN ANALYZE). A statement PREPAREd once per
# connection and run with EXECUTE is planned once (a generic plan after five runs). A connection pooler
# that shares server connections between clients (PgBouncer's transaction or statement pooling, which
# tracks protocol-level prepared statements at most, never SQL PREPARE) breaks this both ways: a name
# prepared here is missing on the next server connection ("does not exist"), or one prepared by another
# client is already there ("already exists"). Any failure of PREPARE or EXECUTE for either reason turns
# preparing off for this process and runs the statement as text: never a failed refresh (a refresh's
# store runs after the provider has rotated the tokens). Each name carries a hash of its text, so two
# versions of nexusctl behind one pooler never run each other's statement under one name.

_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> names prepared on it
_lock = threading.Lock()
_off = False
_MARK = re.compile(r"%s")
_LOST = {"26000", "42P05"}  # invalid_sql_statement_name (missing), duplicate_prepared_statement (already there)


@functools.lru_cache(maxsize=256)
def _prepared_name(prefix: str, sql: str) -> str:
    return f"{prefix}_{hashlib.sha1(sql.encode()).hexdigest()[:16]}"


def _prepare(name: str, sql: str) -> str:
    """``name`` with a hash of ``sql``, PREPAREd on this connection unless it was already (prepared statements
    outlive a rolled-back transaction: the name is kept)."""
    name = _prepared_name(name, sql)
    connection = database_proxy.connection()
    with _lock:
        names = _prepared.setdefault(connection, set())
    if name not in names:
        numbered = iter(range(1, sql.count("%s") + 1))
        database_proxy.execute_sql(f"PREPARE {name} AS " + _MARK.sub(lambda _: f"${next(numbered)}", sql))
        names.add(name)
    return name


def _lost(exc: peewee.DatabaseError) -> bool:
    """Whether PREPARE or EXECUTE failed for a name missing or taken (a pooler): if so preparing is turned off."""
    global _off
    if getattr(exc.__context__, "pgcode", None) not in _LOST:  # psycopg2's error, wrapped by peewee
        return False
    _off = True
    log.warning("prepared statements are not kept between calls (a connection pooler?): not preparing any more")
    return True


def run(name: str, sql: str, params: list, *, execute=None):
    """``execute_sql(sql, params)`` (autocommitted, outside a transaction); on PostgreSQL prepared as ``name``
    (with a hash of ``sql``) once per connection and run with EXECUTE."""
    if _off or not is_postgres(database_proxy) or database_proxy.in_transaction():
        return database_proxy.execute_sql(sql, params)
    try:
        name = _prepare(name, sql)
        statement = execute(name, sql) if execute else f"EXECUTE {name}({', '.join(['%s'] * len(params))})"
        return database_proxy.execute_sql(statement, params)
    except peewee.DatabaseError as exc:
        if not _lost(exc):
            raise
        return database_proxy.execute_sql(sql, params)


class PreparedLost(Exception):
    """A prepared name was missing or taken inside a transaction (a pooler): preparing is now off, and the
    caller's transaction is aborted; the same work run again runs as text."""


def run_in_transaction(name: str, sql: str, params: list, *, settings: str = ""):
    """``run`` for a statement inside the caller's transaction, after ``settings`` (``SET LOCAL ...;``
    statements, sent in the same round trip; PostgreSQL only), with ``sql``'s casts on EXECUTE's parameters
    (``run_typed``).
    Inside a transaction a failed PREPARE or EXECUTE cannot be retried as text (the transaction is aborted):
    a lost or clashing name (a pooler) turns preparing off for this process and raises ``PreparedLost``, for
    the caller to run its transaction again (as text) or to fail that once."""
    if not is_postgres(database_proxy):
        return database_proxy.execute_sql(sql, params)
    if _off:
        return database_proxy.execute_sql(settings + sql, params)
    try:
        name = _prepare(name, sql)
        return database_proxy.execute_sql(settings + _execute_sql(name, sql), params)
    except peewee.DatabaseError as exc:
        if not _lost(exc):
            raise
        raise PreparedLost(name) from exc


def run_anywhere(name: str, sql: str, params: list, *, settings: str = ""):
    """``run_typed`` outside a transaction, ``run_in_transaction`` (after ``settings``) inside one; text on
    SQLite (no settings)."""
    if database_proxy.in_transaction():
        return run_in_transaction(name, sql, params, settings=settings)
    return run_typed(name, sql, params)


def array_type(field: peewee.Field) -> str:
    """PostgreSQL's type of the elements of an array parameter for ``field``'s column (``unnest``, ``ANY``)."""
    return _ARRAY_TYPES[field.field_type]


def converter(field: peewee.Field):
    """How a value of ``field`` is passed as a parameter (JSON as text)."""
    if isinstance(field, peewee.JSONField):
        return lambda value: None if value is None else json.dumps(value)
    return field.db_value


@functools.lru_cache(maxsize=64)
def _insert_many_sql(model, names: tuple, postgres: bool) -> tuple[str, tuple]:
    fields = [model._meta.fields[n] for n in names]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    table = model._meta.table_name
    if postgres:
        arrays = ", ".join(f"%s::{_ARRAY_TYPES[f.field_type]}[]" for f in fields)
        sql = f'INSERT INTO "{table}" ({columns}) SELECT * FROM unnest({arrays})'
    else:
        sql = f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(["?"] * len(fields))})'
    return sql, tuple(converter(f) for f in fields)


def insert_many(model, names: tuple, rows: list) -> None:
    """INSERT ``rows`` (tuples of values in the order of the field ``names``) into ``model``'s table, with
    the fields' conversions: one statement per CHUNK rows on PostgreSQL, one prepared one on SQLite."""
    if not rows:
        return
    postgres = is_postgres(database_proxy)
    sql, convert = _insert_many_sql(model, names, postgres)
    for start in range(0, len(rows), CHUNK):
        part = rows[start : start + CHUNK]
        if postgres:
            columns = zip(*part, strict=True)
            database_proxy.execute_sql(sql, [[c(v) for v in column] for c, column in zip(convert, columns)])
        else:
            cursor = database_proxy.cursor()
            cursor.executemany(sql, [tuple(c(v) for c, v in zip(convert, row, strict=True)) for row in part])


def in_list(field: peewee.Field, values) -> tuple[str, list]:
    """``"column" IN (...)`` for ``values`` (converted by ``field``) and its parameters: ``= ANY(%s)`` with one
    array on PostgreSQL (the same text for any count), a placeholder each on SQLite."""
    column = f'"{field.column_name}"'
    convert = converter(field)
    if is_postgres(database_proxy):
        return f"{column} = ANY(%s::{_ARRAY_TYPES[field.field_type]}[])", [[convert(v) for v in values]]
    return f"{column} IN ({', '.join(['?'] * len(values))})", [convert(v) for v in values]


# --- an emit batch in one statement -------------------------------------------------------------------
#
# What ``run`` does, for statements whose parameters are arrays (``%s::uuid[]``): EXECUTE passes each one
# with the same cast (psycopg2 sends a list as ARRAY['...'], text[], which PostgreSQL does not coerce to
# uuid[] or jsonb[] by itself). Same names, same fallback to text behind a pooler.
_CAST = re.compile(r"%s(::[a-z]+(?:\[\])?)?")


@functools.lru_cache(maxsize=64)
def _execute_sql(name: str, sql: str) -> str:
    return f"EXECUTE {name}({', '.join('%s' + (cast or '') for cast in _CAST.findall(sql))})"


def run_typed(name: str, sql: str, params: list):
    """``run`` for a statement whose parameters carry their casts (``%s::uuid[]``); the same on SQLite."""
    return run(name, sql, params, execute=_execute_sql)


def one_write() -> bool:
    """Whether ``insert_together`` writes as one statement, atomic by itself (PostgreSQL, outside a transaction):
    its caller then needs no transaction of its own (two round trips, BEGIN and COMMIT, less)."""
    return is_postgres(database_proxy) and not database_proxy.in_transaction()


@functools.lru_cache(maxsize=16)
def _together_sql(parts: tuple, notify: bool) -> str:
    inserts = [_document_insert_sql(model, names) for model, names in parts]
    if len(inserts) == 1 and not notify:
        return inserts[0]
    with_ = ", ".join(f"w{k} AS ({sql})" for k, sql in enumerate(inserts))
    return f"WITH {with_} SELECT " + ("pg_notify(%s, '')" if notify else "1")


def _document_insert_sql(model, names: tuple) -> str:
    """PostgreSQL's INSERT of ``model``'s rows from one JSON document, an array of rows, each an array of the values
    of the fields ``names`` in order (``rows_document``), each read as its column's type (``json_element``)."""
    fields = [model._meta.fields[n] for n in names]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    values = ", ".join(json_element(f, k) for k, f in enumerate(fields))
    return (
        f'INSERT INTO "{model._meta.table_name}" ({columns}) SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r'
    )


def json_element(field: peewee.Field, k: int, name: str = "") -> str:
    """PostgreSQL's expression for the ``k``-th value of a row ``r`` of a ``rows_document`` as ``field``'s column type
    (``AS name`` when given): a JSON column's as the JSON it holds, a text array's from its JSON array, a JSON null
    as NULL (as ``converter`` passes None)."""
    if field.field_type == "JSON":
        value = f"NULLIF(r->{k}, 'null')"
    elif field.field_type == "TEXTARRAY":
        value = f"CASE WHEN jsonb_typeof(r->{k}) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(r->{k})) END"
    else:
        value = f"(r->>{k})::{_ARRAY_TYPES[field.field_type]}"
    return f"{value} AS {name}" if name else value


def insert_together(name: str, parts: list, *, notify: str | None = None) -> None:
    """``insert_many`` of each of ``parts`` ((model, field names, rows)), then on PostgreSQL ``NOTIFY notify``
    (delivered at commit): on PostgreSQL one statement (data-modifying WITHs, prepared as ``name``), which
    outside a transaction commits by itself, all or nothing (``one_write``); on SQLite each insert_many in
    turn, inside the caller's transaction.

    On PostgreSQL each part's rows go as one JSON document (``rows_document``), not as a parameter per column: the
    driver adapted a list value by value (``ARRAY['...', ...]``, with the GIL held) and the server parsed each
    element, and a JSON column's values were dumped and then escaped into the array's text. Values are what
    orjson writes as the columns read them: str, int, float, bool, None, UUID, datetime (a naive one as UTC),
    str enums, and dicts and lists for JSON columns."""
    parts = [(model, names, rows) for model, names, rows in parts if rows]
    if not parts:
        return
    if not is_postgres(database_proxy):
        for model, names, rows in parts:
            insert_many(model, names, rows)
        return
    # A part too large for one jsonb value goes as several documents (an insert each, the same statement).
    documents = [(model, names, document) for model, names, rows in parts for document in _documents(rows)]
    sql = _together_sql(tuple((model, names) for model, names, _ in documents), notify is not None)
    params = [document for _, _, document in documents]
    if notify is not None:
        params.append(notify)
    run_typed(name, sql, params)


# PostgreSQL refuses a jsonb value over 256 MiB (268,435,455 bytes): an emit batch of 500 events of 255 KiB to
# three webhooks is ~370 MiB of deliveries. A document stays well under it (its jsonb can be larger than its text).
DOCUMENT_MAX = 64 * 1024 * 1024


def _documents(rows: list) -> list[str]:
    """``rows`` as one document (``rows_document``), or, over DOCUMENT_MAX, as the documents of its halves."""
    document = rows_document(rows)
    if len(document) <= DOCUMENT_MAX or len(rows) < 2:
        return [document]
    half = len(rows) // 2
    return _documents(rows[:half]) + _documents(rows[half:])


def rows_document(rows: list) -> str:
    """``rows`` (tuples of values) as one JSON array of arrays: orjson's, or the standard library's for what orjson
    refuses (an integer beyond 64 bits; a lone surrogate, which PostgreSQL refuses either way)."""
    import orjson  # here for start-up speed: the CLI's commands mostly never write an emit

    try:
        return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()
    except orjson.JSONEncodeError:
        return _DOCUMENT(rows)


def _plain(value):
    """What the standard library's encoder cannot write of ``rows_document``'s values, as orjson writes it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return as_utc(value).isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not a column value")


_DOCUMENT = json.JSONEncoder(default=_plain, separators=(",", ":")).encode


_UTC = dt.timezone.utc
_NOTHING = object()


@functools.lru_cache(maxsize=16)
def _fast_converters(model, names: tuple) -> tuple:
    """For each field, a column of values (a list) as ``converter`` hands them to the driver, the common case
    first: a UUID's hex, a UTC datetime, a str or an int as it is (on PostgreSQL, insert_together's only use),
    an enum's value, and JSON dumped once for a run of the same object (the payload an event's deliveries share)."""
    return tuple(_fast(model._meta.fields[n]) for n in names)


def _fast(field: peewee.Field):
    convert = converter(field)
    if isinstance(field, peewee.JSONField):
        return _dumps_column
    kind = getattr(field, "enum_class", None)
    if kind is not None:

        def one(value):
            return value.value if value.__class__ is kind else convert(value)

    elif field.field_type == "UUID":  # a foreign key to a UUID key too

        def one(value):
            return value.hex if value.__class__ is uuid.UUID else convert(value)

    elif field.field_type == "TIMESTAMPTZ":

        def one(value):
            return value if value.__class__ is dt.datetime and value.tzinfo is _UTC else convert(value)

    elif field.field_type in ("VARCHAR", "TEXT", "INT", "BIGINT"):
        plain = str if field.field_type in ("VARCHAR", "TEXT") else int

        def one(value):
            return value if value.__class__ is plain else convert(value)

    else:
        one = convert
    return lambda column: list(map(one, column))


def _dumps_column(column) -> list:
    out, last, text = [], _NOTHING, None
    for value in column:
        if value is not last:
            last, text = value, None if value is None else json.dumps(value)
        out.append(text)
    return out


# --- arrays as text on PostgreSQL -------------------------------------------------------------------------
#
# psycopg2 passes a Python list as ``ARRAY['...', '...'::timestamptz, ...]``: one adapter object per element
# on this side, and on the server one constant expression per element to parse, coerce and fold. For a
# record batch that was ~25 µs of client CPU and ~55 µs of the server's per 10-column row. The same array as
# one text parameter in PostgreSQL's array syntax (``'{"...","..."}'``, read by the type's ``array_in``) costs
# ~3 µs of client CPU per row and a fraction of the server's.

_ESCAPED = ("\\", '"')


def array_text(values) -> str:
    """PostgreSQL's text form of a one-dimensional array of driver values (str, int, float, bool, datetime,
    UUID, None): every element double-quoted with ``\\`` and ``"`` escaped, so a comma, a brace, a space or
    the word NULL inside a value stays part of it; None is NULL. A UUID (as its hex) and an int need no quotes;
    a run of the same datetime (a batch's "now" in every row) is formatted once."""
    parts = []
    add = parts.append
    last, last_text = _NOTHING, ""
    for value in values:
        kind = value.__class__
        if kind is str:
            text = value
        elif kind is uuid.UUID:
            add(value.hex)
            continue
        elif kind is int:
            add(str(value))
            continue
        elif value is None:
            add("NULL")
            continue
        elif value is True or value is False:
            add("t" if value else "f")
            continue
        elif kind is dt.datetime:
            if value is not last:
                last, last_text = value, '"' + str(value) + '"'
            add(last_text)
            continue
        else:
            text = value if isinstance(value, str) else str(value)  # a str enum is its value
        if "\\" in text or '"' in text:
            text = text.replace("\\", "\\\\").replace('"', '\\"')
        add('"' + text + '"')
    return "{" + ",".join(parts) + "}"


def insert_text_statement(model, names: tuple, rows: list) -> tuple[str, list]:
    """PostgreSQL's ``insert_many_text`` statement for ``rows`` (at most CHUNK) and its parameters (one text array a
    column; no rows: empty arrays, which insert nothing), for a caller that runs it inside a statement of its own."""
    sql, _ = _insert_many_sql(model, names, True)
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    return sql, [array_text(c(column)) for c, column in zip(_fast_converters(model, names), columns)]


def insert_many_text(model, names: tuple, rows: list) -> None:
    """``insert_many`` with each PostgreSQL column passed as one text array (``array_text``) instead of a list
    the driver adapts element by element: the same statement text, the same rows; SQLite as ``insert_many``."""
    if not rows:
        return
    if not is_postgres(database_proxy):
        return insert_many(model, names, rows)
    sql, _ = _insert_many_sql(model, names, True)
    fast = _fast_converters(model, names)  # column by column, the common cases first (insert_together's)
    for start in range(0, len(rows), CHUNK):
        part = rows[start : start + CHUNK]
        columns = zip(*part, strict=True)
        params = [array_text(c(column)) for c, column in zip(fast, columns)]
        run_anywhere(f"nexus_insert_{model._meta.table_name}", sql, params)
