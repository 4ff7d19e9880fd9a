"""Keyset pagination: pages cost the same at row 10 and at row 10 million.

A cursor is the (created_at, id) of the last row of a page, opaque to
callers. Listings are newest first.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import peewee

from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.errors import UsageProblem

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


@dataclass
class Page:
    items: list
    next_cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    extra: dict = field(default_factory=dict)

    def paging(self) -> dict:
        return {"limit": self.limit, "nextCursor": self.next_cursor, "hasMore": self.next_cursor is not None}


def check_limit(limit: int | None, maximum: int = MAX_LIMIT) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise UsageProblem(f"limit must be a whole number from 1 to {maximum}", field="limit")
    return limit


def encode_cursor(row) -> str:
    raw = json.dumps([row.created_at.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_key(created_at: str, row_id: str) -> str:
    """``encode_cursor`` of a row read lean (nexusctl.core.lean): its created_at as the API writes it (...Z)."""
    created = created_at[:-1] + "+00:00" if created_at.endswith("Z") else created_at
    raw = json.dumps([created, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        created = dt.datetime.fromisoformat(created)
        if created.tzinfo is not None:
            created.astimezone(dt.timezone.utc)  # a date at the edge of the calendar overflows here
        return created, uuid.UUID(row_id)
    except (ValueError, TypeError, OverflowError):
        raise UsageProblem("cursor is not one this service issued", field="cursor") from None


def _after(query: peewee.ModelSelect, model, cursor: str | None) -> peewee.ModelSelect:
    if not cursor:
        return query
    created, row_id = decode_cursor(cursor)
    return query.where(
        peewee.Tuple(model.created_at, model.id)
        < peewee.Tuple(
            peewee.Value(created, converter=model.created_at.db_value),
            peewee.Value(row_id, converter=model.id.db_value),
        )
    )


def newest_first(query: peewee.ModelSelect, model, limit: int | None, cursor: str | None) -> Page:
    """Run ``query`` one page at a time, newest first, after ``cursor``."""
    limit = check_limit(limit)
    query = _after(query, model, cursor)
    rows = list(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None, limit)


# --- pages bounded in bytes ---------------------------------------------------------------
#
# A page of ``limit`` rows is also a page of at most PAGE_BYTES of JSON: 1,000 deliveries of 250 KB made one
# 250 MB answer and took the daemon past a gigabyte. Rows are added until the next would pass the budget;
# the page then ends early and its cursor continues from the next row, so every row stays reachable. A
# row's bulky column (a payload, metadata) over FIELD_BYTES is left out of lists (null, with
# ``<key>Omitted: true``): the row's own view shows it. The bulky column's size is read first (the
# database measures it), so no more than about a page's worth of it is ever loaded.

PAGE_BYTES = 1024 * 1024  # of row JSON per list answer, whatever the limit
FIELD_BYTES = PAGE_BYTES // 2  # a bulky value larger than this is left out of lists
ROW_BYTES = 1024  # what a row costs besides its bulky column, before it is measured
LOAD_ROWS = 100  # rows loaded (and their attempts, for deliveries) at a time


@dataclass(frozen=True)
class Bulky:
    """The one column of a listed model that can be large, and its key in the row's dict."""

    column: peewee.Field
    key: str


def json_bytes(column: peewee.Field):
    """The column's size as stored JSON text, measured by the database (jsonb on PostgreSQL, text on SQLite)."""
    if is_postgres(database_proxy):
        return peewee.fn.octet_length(peewee.Cast(column, "text"))
    return peewee.fn.length(peewee.Cast(column, "blob"))


def bounded_page(
    query: peewee.ModelSelect,
    model,
    limit: int | None,
    cursor: str | None,
    *,
    bulky: Bulky,
    serialize,
    columns=None,
    budget: int = PAGE_BYTES,
) -> Page:
    """A page of ``query``'s rows newest first, as the dicts ``serialize(rows)`` makes, within ``budget``.

    ``columns``: what to load (default every column); ``serialize`` takes a list of rows and returns their
    dicts in order. The page holds at least one row, and at most ``limit``.
    """
    limit = check_limit(limit)
    query = _after(query, model, cursor)
    order = (model.created_at.desc(), model.id.desc())
    sizes = list(
        query.select(model.id, json_bytes(bulky.column), model.created_at).order_by(*order).limit(limit + 1).tuples()
    )
    planned, cost = [], 0
    for row_id, size, _created in sizes[:limit]:
        whole = (size or 0) <= FIELD_BYTES
        row_cost = ROW_BYTES + ((size or 0) if whole else 0)
        if planned and cost + row_cost > budget:
            break
        planned.append((row_id, whole))
        cost += row_cost
    columns = list(columns or model._meta.sorted_fields)
    lean = [c for c in columns if c is not bulky.column]
    items, spent, last, cut = [], 0, None, False
    for start in range(0, len(planned), LOAD_ROWS):
        chunk = planned[start : start + LOAD_ROWS]
        omitted = {i for i, whole in chunk if not whole}
        rows = _load(query, model, columns, [i for i, whole in chunk if whole])
        rows.update(_load(query, model, lean, list(omitted)))
        ordered = [rows[i] for i, _whole in chunk if i in rows]  # a row deleted meanwhile is skipped
        for row, data in zip(ordered, serialize(ordered), strict=True):
            if row.id in omitted:
                data[bulky.key], data[f"{bulky.key}Omitted"] = None, True
            size = len(json.dumps(data, default=str)) + 1
            if items and spent + size > budget:
                cut = True
                break
            items.append(data)
            spent += size
            last = row
        if cut:
            break
    more = cut or len(planned) < len(sizes)
    if more and last is None and not cut:
        # Every planned row was deleted between the two queries: the page is empty, and the cursor goes on
        # after the last of them, so that the rows behind it are not taken for the end of the list.
        row_id, _size, created = sizes[len(planned) - 1]
        last = _Key(created, row_id)
    return Page(items, encode_cursor(last) if more and last is not None else None, limit)


@dataclass(frozen=True)
class _Key:
    created_at: dt.datetime
    id: uuid.UUID


def _load(query, model, columns, ids) -> dict:
    if not ids:
        return {}
    return {row.id: row for row in query.select(*columns).where(model.id.in_(ids))}
