"""Field types that behave the same on SQLite and PostgreSQL.

- ``UTCDateTimeField``: aware UTC datetimes in and out. ``timestamptz`` on
  PostgreSQL; on SQLite a fixed-width UTC text form, so comparisons and
  ``ORDER BY`` are correct as plain string order.
- ``StringArrayField``: a list of strings. ``text[]`` on PostgreSQL, a JSON
  array on SQLite.
- ``EnumField``: a str Enum member, stored as its value (varchar).
- ``EncryptedTextField``: ciphertext written by ``nexusctl.db.secrets.seal``. Marking
  secret columns with their own type lets key rotation find every one of
  them and lets serializers refuse to show them.

JSON uses peewee's own ``JSONField`` (jsonb on PostgreSQL, text on SQLite).
"""

from __future__ import annotations

import datetime as dt
import json

import peewee

from nexusctl import clock

UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    """The product's "now" (nexusctl.clock: the system clock unless a test moved it)."""
    return clock.now()


def as_utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken to be UTC already; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class EnumField(peewee.CharField):
    # What playhouse.fields.EnumField does; ours because that module imports pickle, bz2
    # and zlib for its other fields, ~7 ms of every command's start (bench/cli_startup.py).
    def __init__(self, enum_class, *args, **kwargs) -> None:
        self.enum_class = enum_class
        kwargs.setdefault("choices", [(member.value, member.name) for member in enum_class])
        super().__init__(*args, **kwargs)

    def db_value(self, value):
        return None if value is None else super().db_value(self.enum_class(value).value)

    def python_value(self, value):
        return None if value is None else self.enum_class(super().python_value(value))


class UTCDateTimeField(peewee.FieldDatabaseHook, peewee.Field):
    field_type = "TIMESTAMPTZ"

    def _db_hook(self, database):
        self._postgres = isinstance(database, peewee.PostgresqlDatabase)

    def db_value(self, value):
        if value is None or isinstance(value, peewee.Node):
            return value
        if not isinstance(value, dt.datetime):
            raise TypeError(f"{self.name}: expected a datetime, got {type(value).__name__}")
        value = as_utc(value)
        if getattr(self, "_postgres", False):
            return value
        # isoformat pads the year to four digits (strftime's %Y does not on
        # glibc), so a year-1 "zero time" still reads back and sorts.
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def python_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return as_utc(value)


class StringArrayField(peewee.FieldDatabaseHook, peewee.Field):
    field_type = "TEXTARRAY"

    def _db_hook(self, database):
        self._postgres = isinstance(database, peewee.PostgresqlDatabase)

    def db_value(self, value):
        if value is None or isinstance(value, peewee.Node):
            return value
        items = [str(item) for item in value]
        return items if getattr(self, "_postgres", False) else json.dumps(items)

    def python_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            return json.loads(value)
        return list(value)


class EncryptedTextField(peewee.TextField):
    """Holds ciphertext only; see db.secrets for sealing and opening."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("null", True)
        super().__init__(*args, **kwargs)
