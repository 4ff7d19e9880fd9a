"""Written-out statements for hot paths: the SQL text built once per shape, values converted by the models' fields.

peewee builds a statement's SQL anew on every execution (its ``sql()`` walk was most of the refresh sweep's
CPU, bench/token_refresh.py). These take a model, column values by field name and equality conditions,
cache the text per (model, columns, conditions, placeholder) and run it with ``execute_sql``: the same
statement on SQLite and PostgreSQL, the same conversions (``Field.db_value``; JSON as text, which both take).
"""

from __future__ import annotations

import functools
import json

import peewee

from nexusctl.db.database import database_proxy


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
