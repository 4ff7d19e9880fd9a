"""Lists read lean: the shown columns as tuples, by statements written once per shape of filters.

The list routes are the daemon's hottest reads (docs/benchmarks.md, issue 19). Through peewee every request
paid for composing its SELECT, a model object per row and each field's converter (``python_value``: a UUID
object, an aware datetime), which together cost more than the database. A ``Listing`` names a table's shown
columns and how each is read (UUID, TIME, JSON, ...); ``read`` runs the statement for one shape of filters,
written once (lru_cache), and returns each row's values already as JSON wants them (UUIDs and times as text,
``...Z``), for the list's serializer (``nexusctl.core.serializers.*_row``) to name.

Bounds stay those of ``paging.bounded_page`` (``newest_first``): the bulky column is measured by the database,
left out over FIELD_BYTES (null, with ``<key>Omitted: true``) and read only up to a page's share of
PAGE_BYTES; a page that may pass PAGE_BYTES, or holds a bulky value over its share, goes the general way
(``bounded_page``, which trims it).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from dataclasses import dataclass

from nexusctl.core.paging import FIELD_BYTES, PAGE_BYTES, Page, check_limit, decode_cursor, encode_key
from nexusctl.db.database import database_proxy, is_postgres

# How a column is read. On PostgreSQL UUIDs, times and JSON are read as text (psycopg2 would make UUID and
# datetime objects only for them to be written back as text); arrays as the driver parses them (in C).
UUID, TIME, JSON, ARRAY, BOOL, RAW = "uuid", "time", "json", "array", "bool", "raw"


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, a cheap key for the caches below per request
class Listing:
    """What a list shows of one table: ``columns`` as (name, kind), in the order its serializer reads them."""

    table: str
    columns: tuple[tuple[str, str], ...]
    bulky: str | None = None  # the column that can be large: left out of lists over FIELD_BYTES
    bulky_key: str | None = None  # its key in the row's dict
    join: str = ""  # e.g. the parent table, for an owner filter (aliases: t the listed table, p the parent)
    nested: str | None = None  # a list the serializer adds to each row's dict (a delivery's attemptLog)

    def index(self, name: str) -> int:
        return _index(self, name)


@functools.lru_cache(maxsize=256)
def _index(listing: Listing, name: str) -> int:
    return [column for column, _kind in listing.columns].index(name)


def _pg_time(text: str | None) -> str | None:
    """PostgreSQL's timestamptz text in a UTC session ('2026-05-01 12:00:00.5+00') as isoformat() + Z writes it
    ('2026-05-01T12:00:00.500000Z': six digits, none when whole seconds)."""
    if text is None:
        return None
    if text.endswith("+00"):
        if len(text) in (22, 29):  # whole seconds, or six digits of them: only the separators differ
            return text.replace(" ", "T").replace("+00", "Z")
        return f"{text[:10]}T{text[11:-3]:0<15}Z"  # PostgreSQL leaves out a fraction's trailing zeros
    return _utc(dt.datetime.fromisoformat(text))  # not a UTC session: let datetime say it


def _sqlite_time(text: str | None) -> str | None:
    """UTCDateTimeField's SQLite text (UTC, naive, six digits of seconds) as isoformat() + Z writes it."""
    if text is None:
        return None
    if len(text) == 26 and text[10] == " ":
        return f"{text[:10]}T{text[11:19]}Z" if text.endswith(".000000") else f"{text[:10]}T{text[11:]}Z"
    return _utc(dt.datetime.fromisoformat(text))


def _pg_json(text: str | None):
    """jsonb read as text (psycopg2's own decoding is a Python call per value too); the empty object, most
    rows' metadata, without a parse."""
    if text is None:
        return None
    return {} if text == "{}" else json.loads(text)


def _utc(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        return moment.isoformat() + "Z"
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def _sqlite_uuid(value):
    """peewee keeps SQLite UUIDs as 32 hex digits."""
    if value is None:
        return None
    if len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(uuid.UUID(str(value)))


def _sqlite_json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _sqlite_bool(value):
    return None if value is None else bool(value)


# (SQL for the column, converter or None) per kind; {} is the qualified column.
_POSTGRES = {
    UUID: ("CAST({} AS text)", None),
    TIME: ("CAST({} AS text)", _pg_time),
    JSON: ("CAST({} AS text)", _pg_json),
}
_SQLITE = {UUID: ("{}", _sqlite_uuid), TIME: ("{}", _sqlite_time), JSON: ("{}", _sqlite_json)}
_SQLITE[ARRAY], _SQLITE[BOOL] = _SQLITE[JSON], ("{}", _sqlite_bool)


def columns_sql(listing: Listing, postgres: bool) -> list[str]:
    """The SELECT's columns: each as its kind is read; the bulky one only up to a size given as the first
    parameter (else NULL), then its size."""
    kinds = _POSTGRES if postgres else _SQLITE
    columns = [kinds.get(kind, ("{}", None))[0].format(f't."{name}"') for name, kind in listing.columns]
    if listing.bulky:
        size = _size_sql(listing, postgres)
        at = listing.index(listing.bulky)
        columns[at] = f"CASE WHEN {size} <= ? THEN {columns[at]} END"
        columns.append(size)
    return columns


def _size_sql(listing: Listing, postgres: bool) -> str:
    """The bulky column's size as stored JSON text, measured by the database (as paging.json_bytes)."""
    bulky = f't."{listing.bulky}"'
    return f"octet_length(CAST({bulky} AS text))" if postgres else f"length(CAST({bulky} AS blob))"


@functools.lru_cache(maxsize=256)
def statement(listing: Listing, postgres: bool, where: tuple[str, ...], order: tuple[str, ...], after: bool) -> str:
    """The SELECT for one shape of filters (``where``: SQL with ? marks), newest first by ``order``; with
    ``after``, only rows before the cursor's values. Written once per shape: peewee built it on every request."""
    conditions = list(where)
    if after:
        keys = ", ".join(f't."{name}"' for name in order)
        conditions.append(f"({keys}) < ({', '.join('?' * len(order))})")
    sql = (
        f'SELECT {", ".join(columns_sql(listing, postgres))} FROM "{listing.table}" AS t {listing.join}'
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + " ORDER BY "
        + ", ".join(f't."{name}" DESC' for name in order)
        + " LIMIT ?"
    )
    return placeholders(sql, postgres)


def placeholders(sql: str, postgres: bool) -> str:
    """``sql`` with psycopg2's marks on PostgreSQL (written with ?, sqlite3's)."""
    return sql.replace("?", "%s") if postgres else sql


@functools.lru_cache(maxsize=64)
def _converters(listing: Listing, postgres: bool) -> tuple[tuple[int, object], ...]:
    kinds = _POSTGRES if postgres else _SQLITE
    found = ((i, kinds.get(kind, ("{}", None))[1]) for i, (_name, kind) in enumerate(listing.columns))
    return tuple((i, convert) for i, convert in found if convert is not None)


def converted(listing: Listing, rows, postgres: bool) -> list[list]:
    """Rows read by ``columns_sql`` as lists of JSON-ready values."""
    converters = _converters(listing, postgres)
    out = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        out.append(values)
    return out


def read(
    listing: Listing,
    where: dict[str, list],
    limit: int,
    *,
    order=("created_at", "id"),
    after: list | None = None,
    bulky_bytes: int = FIELD_BYTES,
) -> tuple[list[list], bool]:
    """Up to ``limit`` rows as lists of JSON-ready values (the columns, then the bulky column's size if there is
    one: the value itself is read only up to ``bulky_bytes``), and whether more follow. ``where``: SQL with ?
    marks -> its parameters (database values); ``after``: the cursor's values (database values) for ``order``."""
    postgres = is_postgres(database_proxy)
    sql = statement(listing, postgres, tuple(where), tuple(order), after is not None)
    params = [value for values in where.values() for value in values]
    first = [bulky_bytes] if listing.bulky else []
    rows = database_proxy.execute_sql(sql, [*first, *params, *(after or ()), limit + 1]).fetchall()
    return converted(listing, rows[:limit], postgres), len(rows) > limit


def newest_first(listing: Listing, model, where: dict[str, list], limit, cursor, *, serialize, general) -> Page:
    """A page of ``listing`` newest first (created_at, id), as ``serialize(rows)`` makes the rows' dicts (from
    ``read``'s lists, in order), bounded as paging.bounded_page bounds it; ``general()``: the same page the
    general way (bounded_page).

    That way is taken for a page that may pass PAGE_BYTES (bounded_page trims it): the bulky column is read
    here only up to PAGE_BYTES / (limit + 1) a row, so what this path loads stays about one page's worth."""
    limit = check_limit(limit)
    after = None
    if cursor:
        created, row_id = decode_cursor(cursor)
        after = [model.created_at.db_value(created), model.id.db_value(row_id)]
    share = min(FIELD_BYTES, PAGE_BYTES // (limit + 1))
    rows, more = read(listing, where, limit, after=after, bulky_bytes=share)
    omitted = []
    if listing.bulky:
        for i, values in enumerate(rows):
            size = values[-1]
            if size is not None and size > share:
                if size <= FIELD_BYTES:  # shown whole in a list, but more than this path reads
                    return general()
                omitted.append(i)
    items = serialize(rows)
    for i in omitted:  # left out of lists, as bounded_page does
        items[i][listing.bulky_key], items[i][f"{listing.bulky_key}Omitted"] = None, True
    if _json_bound(listing, rows, items) > PAGE_BYTES and _json_size(items) > PAGE_BYTES:
        return general()
    if not (more and rows):
        return Page(items, None, limit)
    last = rows[-1]
    return Page(items, encode_key(last[listing.index("created_at")], last[listing.index("id")]), limit)


# --- what a page costs as JSON, bounded cheaply ----------------------------------------------------------
#
# Measuring every page with json.dumps cost about as much as writing the answer (8% of the read route's CPU,
# py-spy). A bound from the values' kinds and the database's measure of the bulky column costs under half;
# a page is measured only when the bound passes PAGE_BYTES. A bound because json.dumps (ensure_ascii, as
# bounded_page measures) writes a character in at most 12 bytes (an astral one: two \u escapes) and a byte of
# stored JSON text in at most 6 (a control character).

_KEY = 24  # a key ("refreshRetryAt", quoted) with its colon, space and comma: camelCase keys are short
_FIXED = {UUID: 38, TIME: 40, BOOL: 5}  # "...Z" of a year up to 9999 (datetime's own limit), or null


def _json_bound(listing: Listing, rows: list[list], items: list[dict]) -> int:
    """At least the size of ``items`` as bounded_page measures it (json.dumps, one byte a row between)."""
    fixed, variable, bulky = _bound_plan(listing)
    total = 2
    for values in rows:
        total += fixed + sum(_bound(values[i]) for i in variable)
        if bulky is not None:
            total += 6 * (values[-1] or 0)
    if listing.nested:
        total += sum(_bound(item[listing.nested]) for item in items)
    return total


@functools.lru_cache(maxsize=64)
def _bound_plan(listing: Listing) -> tuple[int, tuple[int, ...], int | None]:
    """Per row: the bytes the fixed-size columns and every key can take; the columns to bound one by one."""
    keys = _KEY * (len(listing.columns) + 3)  # the columns' keys, <bulky>Omitted, the nested list's, a margin
    fixed = keys + 4 + sum(_FIXED.get(kind, 0) for name, kind in listing.columns if name != listing.bulky)
    variable = tuple(
        i for i, (name, kind) in enumerate(listing.columns) if kind not in _FIXED and name != listing.bulky
    )
    bulky = listing.index(listing.bulky) if listing.bulky else None
    return fixed + 8, variable, bulky


def _bound(value) -> int:
    """At least ``len(json.dumps(value, default=str))``."""
    if value is None or value is True or value is False:
        return 5
    kind = value.__class__
    if kind is str:
        return 12 * len(value) + 2
    if kind is int:
        return 21 if -(10**20) < value < 10**20 else len(str(value))
    if kind is float:
        return 24  # repr's shortest round trip, or Infinity / NaN
    if kind is list or kind is tuple:
        return 2 + sum(_bound(item) + 2 for item in value)
    if kind is dict:
        return 2 + sum(_bound(str(key)) + _bound(item) + 4 for key, item in value.items())
    return _bound(str(value))


def _json_size(items: list[dict]) -> int:
    return len(json.dumps(items, default=str)) + len(items)
