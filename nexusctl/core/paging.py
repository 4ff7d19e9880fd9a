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


def newest_first(query: peewee.ModelSelect, model, limit: int | None, cursor: str | None) -> Page:
    """Run ``query`` one page at a time, newest first, after ``cursor``."""
    limit = check_limit(limit)
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(
            peewee.Tuple(model.created_at, model.id) < peewee.Tuple(
                peewee.Value(created, converter=model.created_at.db_value),
                peewee.Value(row_id, converter=model.id.db_value),
            )
        )
    rows = list(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None, limit)
