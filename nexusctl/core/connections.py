"""Storing connections: tokens in, tokens out, always encrypted.

The only module that turns provider tokens into database rows and back (with
a channel webhook's token, Discord's webhook.incoming, which is as secret).
``save`` upserts by (user, provider, provider account): reconnecting the same
account updates the row (new tokens, active again, error cleared) instead of
adding a second one. The ``integration.connected`` event is written in the
same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Callable

import peewee

from nexusctl import tracing
from nexusctl.core import events
from nexusctl.core.health_checks import AfterRefresh
from nexusctl.core.ids import parse_uuid
from nexusctl.crypto import Keyring
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.fields import UTCDateTimeField, as_utc, utcnow
from nexusctl.db.models import Integration, OutboxEvent
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import Provider
from nexusctl.errors import IntegrationNotFound
from nexusctl.providers.spec import Account, TokenSet

NAME_MAX = 255
log = logging.getLogger(__name__)


def _seal_tokens(keyring: Keyring, row: Integration, tokens: TokenSet) -> None:
    seal(keyring, row, "access_token", tokens.access_token)
    seal(keyring, row, "refresh_token", tokens.refresh_token)


def save(
    keyring: Keyring,
    *,
    user_id: uuid.UUID,
    provider: Provider,
    account: Account,
    tokens: TokenSet,
    metadata: dict | None = None,
    tenant: str | None = None,
    organization_id: uuid.UUID | None = None,
) -> tuple[Integration, bool]:
    """Insert or update the integration of this provider account; returns (row, reconnected). A reconnect without
    ``organization_id`` keeps the one the integration has."""
    provider_facts = {**tokens.metadata, **account.metadata, "accountId": account.account_id}
    if tenant:
        provider_facts["tenant"] = tenant
    provider_facts = {k: v for k, v in provider_facts.items() if v is not None}
    try:
        return _save(keyring, user_id, provider, account, tokens, metadata, provider_facts, organization_id)
    except peewee.IntegrityError:
        # A concurrent connect of the same account inserted first (unique index): update that row.
        return _save(keyring, user_id, provider, account, tokens, metadata, provider_facts, organization_id)


def _save(
    keyring, user_id, provider, account, tokens, metadata, provider_facts, organization_id=None
) -> tuple[Integration, bool]:
    with database_proxy.atomic():
        query = Integration.select().where(
            (Integration.user_id == user_id)
            & (Integration.provider == provider)
            & (Integration.account_id == account.account_id)
        )
        row = (query.for_update() if is_postgres(database_proxy) else query).first()
        reconnected = row is not None
        if row is None:
            row = Integration(id=uuid.uuid4(), user_id=user_id, provider=provider, account_id=account.account_id)
        row.name = (account.name or account.account_id)[:NAME_MAX]
        if organization_id is not None:
            row.organization_id = organization_id
        row.is_active = True
        row.last_error = None
        row.token_type = tokens.token_type
        row.expires_at = tokens.expires_at
        row.scope = tokens.scope
        row.replaced_webhook = None
        if tokens.webhook_token:
            row.replaced_webhook = _previous_webhook(keyring, row, provider_facts) if reconnected else None
            seal(keyring, row, "channel_webhook_token", tokens.webhook_token)
        elif row.channel_webhook_token and "webhook" in ((row.metadata or {}).get("provider") or {}):
            # Reconnected without asking for a new channel webhook: the one made before still posts.
            provider_facts = {**provider_facts, "webhook": row.metadata["provider"]["webhook"]}
        row.metadata = {**(row.metadata or {}), **(metadata or {}), "provider": provider_facts}
        row.refresh_lease_until = None
        row.refresh_lease_token = None
        row.health_due_at = utcnow()  # a (re)connect is checked at once: it may be a recovery
        # New tokens: earlier refresh failures say nothing about them, so no back-off and no warning carried over.
        row.refresh_failed_at = None
        row.refresh_failures, row.refresh_retry_at, row.expiry_warned_for = 0, None, None
        _seal_tokens(keyring, row, tokens)
        row.save(force_insert=not reconnected)
        events.record(events.CONNECTED, row, name=row.name, reconnected=reconnected)
    return row, reconnected


def _previous_webhook(keyring: Keyring, row: Integration, provider_facts: dict) -> TokenSet | None:
    """The channel webhook a reconnect replaces (for the caller to delete at the provider), if another one."""
    old = ((row.metadata or {}).get("provider") or {}).get("webhook") or {}
    if not row.channel_webhook_token or not old.get("id") or old["id"] == provider_facts["webhook"]["id"]:
        return None
    return TokenSet(
        access_token="", metadata={"webhook": old}, webhook_token=unseal(keyring, row, "channel_webhook_token")
    )


def load(keyring: Keyring, integration_id, *, owner_id=None) -> tuple[Integration, TokenSet]:
    """The row with its tokens decrypted (for refresh, revoke and syncs only)."""
    row_id = parse_uuid(integration_id, "integrationId")
    row = Integration.get_or_none(Integration.id == row_id)
    if row is None or (owner_id is not None and row.user_id != owner_id):
        raise IntegrationNotFound(f"integration {row_id} not found", id=str(row_id))
    return row, tokens_of(keyring, row)


def tokens_of(keyring: Keyring, row: Integration) -> TokenSet:
    return TokenSet(
        access_token=unseal(keyring, row, "access_token") or "",
        refresh_token=unseal(keyring, row, "refresh_token"),
        token_type=row.token_type,
        expires_at=row.expires_at,
        scope=list(row.scope or []),
        metadata=dict((row.metadata or {}).get("provider") or {}),
        webhook_token=unseal(keyring, row, "channel_webhook_token"),
    )


def store_refreshed(
    keyring: Keyring,
    row: Integration,
    tokens: TokenSet,
    lease: uuid.UUID,
    also: dict | None = None,
    health: Callable[[Integration, Integration], AfterRefresh | None] | None = None,
) -> bool:
    """Write refreshed tokens if ``lease`` still holds (fencing); access and rotated refresh token together.
    ``also``: more column values for the same UPDATE (the refresh's failure bookkeeping). ``health(stored,
    read)``: the health the refresh leaves (health_checks.after_refresh: the row as now stored, and as read),
    stored by the same UPDATE where the health columns are still as read; without it, when it cannot say, or
    when they changed meanwhile, a health check is asked for at once. One transaction with the event."""
    return _store_prepared(_prepare_refreshed(keyring, row, tokens, lease, also, health))


@dataclass
class _Refreshed:
    """One refresh's store, planned: the column values, the health plan, the event."""

    row: Integration
    lease: uuid.UUID
    values: dict
    plan: AfterRefresh | None
    now: dt.datetime
    expires: str | None
    trace_parent: str | None = None  # the refresh's own span (a batch is stored from another task's context)

    @property
    def alone(self) -> bool:  # no status change to announce: the one-statement store may write it
        return self.plan is None or self.plan.status == self.plan.previous

    def event(self):
        event = events.outbox_row(events.REFRESHED, self.row, expiresAt=self.expires)
        if self.trace_parent is not None:
            event.trace_parent = self.trace_parent
        return event


def _prepare_refreshed(keyring, row, tokens, lease, also=None, health=None, trace_parent=None) -> _Refreshed:
    read_scope = list(row.scope or [])
    _seal_tokens(keyring, row, tokens)
    provider_facts = (row.metadata or {}).get("provider") or {}
    metadata = {
        **(row.metadata or {}),
        "provider": {**provider_facts, **{k: v for k, v in tokens.metadata.items() if v is not None}},
    }
    now = utcnow()
    scope = tokens.scope or read_scope
    values = {
        "access_token": row.access_token,
        "refresh_token": row.refresh_token,
        # In UTC: a provider's own zone could have an offset in seconds, which orjson's text of it drops (the batch).
        "expires_at": as_utc(tokens.expires_at) if tokens.expires_at else None,
        "token_type": tokens.token_type,
        "scope": scope,
        "metadata": metadata,
        "last_error": None,
        "updated_at": now,
        "refresh_lease_until": None,
        "refresh_lease_token": None,
        "refreshed_at": now,
        **(also or {}),
    }
    # A change of granted scopes is judged by a check (against what the capabilities need), not here.
    plan = health(_as_stored(row, values), row) if health and sorted(scope) == sorted(read_scope) else None
    expires = values["expires_at"].isoformat().replace("+00:00", "Z") if values["expires_at"] else None
    return _Refreshed(row, lease, values, plan, now, expires, trace_parent)


def _store_prepared(one: _Refreshed) -> bool:
    return _traced(one, _store_alone_or_not)


def _traced(one: _Refreshed, store: Callable[[_Refreshed], bool]) -> bool:
    if one.trace_parent is None:
        return store(one)
    with tracing.span("token refresh store", parent=one.trace_parent):  # stored from a batch: under its refresh
        return store(one)


def _store_alone_or_not(one: _Refreshed) -> bool:
    if is_postgres(database_proxy) and one.alone:
        # The common case (no webhook, no status change to announce) in one autocommitted statement.
        held = _store_alone(one.row, one.lease, one.values, one.plan, one.now, one.event())
        if held is not _HAS_WEBHOOKS:
            return held is not None
    return _store_in_transaction(one)


def _store_in_transaction(one: _Refreshed) -> bool:
    """The fenced UPDATE, the event with its deliveries and the health change's event in one transaction."""
    with database_proxy.atomic():
        held = _update_refreshed(one.row.id, one.lease, one.values, one.plan, one.now)
        if held is None:
            return False  # the lease is gone: another refresher took over
        events.record(events.REFRESHED, one.row, expiresAt=one.expires)
        if held:
            one.plan.announce(one.row)
    return True


def store_refreshed_many(keyring: Keyring, batch: list[tuple]) -> list[bool | Exception]:
    """``store_refreshed`` for many refreshes at once (the sweep's: those that finished while the previous
    store ran), each item its arguments after the keyring and, optionally, the ``traceparent`` of the refresh's
    span for its event (the batch is stored from another task's context); per item, whether its lease held,
    or the exception its store raised. Each is fenced by its own lease: one whose lease was taken over is not
    written, the others are.

    PostgreSQL: the refreshes with no status change to announce and no active webhook in one autocommitted
    statement (``UPDATE ... FROM unnest(...)`` and one multi-row outbox INSERT for their events); the
    others (deliveries to queue, a health change to announce) in their transaction each, as alone. SQLite:
    one transaction, each refresh in a savepoint of its own. When the batch's statement or transaction
    fails, each refresh is stored alone, so one refresh's failure never loses the others' rotated tokens."""
    prepared: list = []
    for item in batch:
        try:
            prepared.append(_prepare_refreshed(keyring, *item))
        except Exception as exc:  # noqa: BLE001 - that refresh's own failure, reported to its caller
            prepared.append(exc)
    results: list = list(prepared)
    todo = [i for i, one in enumerate(prepared) if not isinstance(one, Exception)]
    if len(todo) > 1:
        try:
            done = _store_batch([prepared[i] for i in todo])
        except peewee.DatabaseError as exc:  # SQLite's transaction: nothing of it written
            log.warning("storing %d refreshes at once failed (%s): storing each alone", len(todo), exc)
            done = {}
        for i in todo:
            if prepared[i].row.id in done:
                results[i] = done[prepared[i].row.id]
        todo = [i for i in todo if prepared[i].row.id not in done]
    for i in todo:  # alone: the one left, the ones with webhooks or a change to announce, or after a failure
        try:
            results[i] = _store_prepared(prepared[i])
        except Exception as exc:  # noqa: BLE001 - that refresh's own failure, reported to its caller
            results[i] = exc
    return results


def _store_batch(batch: list[_Refreshed]) -> dict:
    """Store what can be stored together; {integration id: lease held} for those stored (or fenced out)."""
    if not is_postgres(database_proxy):
        done = {}
        with database_proxy.atomic():
            for one in batch:
                try:
                    with database_proxy.atomic():  # a savepoint: one refresh's failure leaves the others
                        done[one.row.id] = _traced(one, _store_in_transaction)
                except peewee.DatabaseError as exc:
                    log.warning("storing the refresh of integration %s failed (%s)", one.row.id, exc)
        return done
    by_shape: dict = {}
    for one in batch:
        if one.alone:  # (a change to announce goes alone, in its transaction)
            event = one.event()
            by_shape.setdefault((tuple(one.values), tuple(event.__data__)), []).append((one, event))
    done = {}
    for group in by_shape.values():  # one, unless refreshes differ in the columns they write
        try:
            done.update(_store_alone_many(group))
        except peewee.DatabaseError as exc:  # nothing of the group written: its refreshes are stored alone
            log.warning("storing %d refreshes at once failed (%s): storing each alone", len(group), exc)
    return done


def _store_alone_many(group: list) -> dict:
    """PostgreSQL: ``_store_alone`` for many refreshes (of one shape) in one autocommitted statement: each
    row's UPDATE fenced by its own lease, one multi-row INSERT for the events of those written, nothing
    written for an integration with an active webhook. {integration id: lease held} for all but those.

    The refreshes go as one JSON document (a row an array: id, lease, the column values, the health plan, the
    event's values), written by orjson (statements.rows_document), not as a text[] parameter per column built
    value by value here and adapted element by element by the driver (5% of the sweep's CPU)."""
    ids = {one.row.id for one, _ in group}
    if len(ids) < len(group):
        raise ValueError("one refresh per integration per batch")
    first, first_event = group[0]
    names, event_columns = tuple(first.values), tuple(first_event.__data__)
    rows = []
    for one, event in group:
        plan = one.plan
        if plan is None:
            health = (None, None, None, None, None, None, None, one.now)
        else:
            fence, planned = plan.fence, plan.values
            ask = one.now if one.now != planned["health_due_at"] else one.now + dt.timedelta(microseconds=1)
            health = (
                fence["health_status"],
                fence["health_checked_at"],
                fence.get("health_due_at"),
                planned["health_status"],
                planned["health_rank"],
                planned["health_reasons"],
                planned["health_due_at"],
                ask,
            )
        rows.append((one.row.id, one.lease, *one.values.values(), *health, *event.__data__.values()))
    sql = _alone_many_sql(names, event_columns)
    found = statements.run_typed("nexus_refreshed_many", sql, [statements.rows_document(rows)]).fetchall()
    held = {uuid.UUID(str(row_id)): stored for row_id, stored in found}
    done = {}
    for row_id in ids:
        state = held.get(row_id, False)  # not returned: the lease is gone (another refresher took over)
        if state is not None:  # None: an active webhook, so it is stored alone (its deliveries queued)
            done[row_id] = bool(state)
    return done


@functools.lru_cache(maxsize=16)
def _alone_many_sql(names: tuple, event_columns: tuple) -> str:
    fields, outbox = Integration._meta.fields, OutboxEvent._meta.fields
    value = statements.json_element  # the k-th element of the row ``r``, as the field's column type
    health = 2 + len(names)  # where the health plan's 8 values begin; the event's follow them
    inputs = [value(fields["id"], 0, '"id"'), value(fields["refresh_lease_token"], 1, '"lease"')]
    inputs += [value(fields[name], 2 + k, f'"v_{name}"') for k, name in enumerate(names)]
    plan = [
        ("health_status", "f_status"),
        ("health_checked_at", "f_checked"),
        ("health_due_at", "f_due"),
        ("health_status", "p_status"),
        ("health_rank", "p_rank"),
        ("health_reasons", "p_reasons"),
        ("health_due_at", "p_due"),
        ("health_due_at", "ask"),
    ]
    inputs += [value(fields[like], health + k, f'"{name}"') for k, (like, name) in enumerate(plan)]
    inputs += [value(outbox[name], health + 8 + k, f'"e_{name}"') for k, name in enumerate(event_columns)]
    held = (
        'i."health_status" = t."f_status" AND i."health_checked_at" = t."f_checked" '
        'AND (t."f_due" IS NULL OR i."health_due_at" = t."f_due")'
    )
    sets = [f'"{fields[name].column_name}" = t."v_{name}"' for name in names]
    sets += [
        f'"health_status" = CASE WHEN {held} THEN t."p_status" ELSE i."health_status" END',
        f'"health_rank" = CASE WHEN {held} THEN t."p_rank" ELSE i."health_rank" END',
        f'"health_reasons" = CASE WHEN {held} THEN t."p_reasons" ELSE i."health_reasons" END',
        f'"health_due_at" = CASE WHEN {held} THEN t."p_due" ELSE t."ask" END',
    ]
    event_names = ", ".join(f'"{outbox[name].column_name}"' for name in event_columns)
    event_values = ", ".join(f't."e_{name}"' for name in event_columns)
    return (
        f'WITH "input" AS (SELECT {", ".join(inputs)} FROM jsonb_array_elements(%s::jsonb) AS r), '
        '"hooks" AS (SELECT DISTINCT "integration_id" FROM "webhooks" '
        'WHERE "integration_id" = ANY(ARRAY(SELECT "id" FROM "input")) AND "is_active"), '
        f'"stored" AS (UPDATE "integrations" AS i SET {", ".join(sets)} FROM "input" AS t '
        'WHERE i."id" = t."id" AND i."refresh_lease_token" = t."lease" '
        'AND t."id" NOT IN (SELECT "integration_id" FROM "hooks") RETURNING i."id"), '
        f'"event" AS (INSERT INTO "outbox_events" ({event_names}) SELECT {event_values} FROM "input" AS t '
        'WHERE t."id" IN (SELECT "id" FROM "stored")) '
        'SELECT "id", TRUE FROM "stored" UNION ALL SELECT "integration_id", NULL FROM "hooks"'
    )


def _update_refreshed(row_id, lease, values: dict, plan: AfterRefresh | None, now) -> bool | None:
    """The fenced UPDATE of a refresh, health included: None when the lease no longer holds, else whether
    ``plan``'s health was stored (False: none planned, or the health columns changed since they were read,
    and a check is asked for instead)."""
    sql = _refreshed_sql(
        tuple(values), None if plan is None else tuple(plan.fence), is_postgres(database_proxy), database_proxy.param
    )
    found = database_proxy.execute_sql(sql, _refreshed_params(row_id, lease, values, plan, now)).fetchone()
    return None if found is None else bool(found[0]) and plan is not None


_HAS_WEBHOOKS = object()
_PG_TYPES = {
    peewee.UUIDField: "uuid",
    peewee.JSONField: "jsonb",
    UTCDateTimeField: "timestamptz",
}  # of INSERT ... SELECT's placeholders


def _store_alone(row: Integration, lease, values: dict, plan: AfterRefresh | None, now, event) -> object:
    """PostgreSQL: the fenced UPDATE and its outbox event in one autocommitted statement (one round trip
    instead of BEGIN, UPDATE, INSERT, webhook SELECT, COMMIT), written only when the integration has no
    active webhook; ``_HAS_WEBHOOKS`` (nothing written) when it has one: the caller's transaction then
    queues their deliveries too. Else as ``_update_refreshed``."""
    fields = Integration._meta.fields
    outbox = type(event)._meta.fields
    sql = _alone_sql(tuple(values), None if plan is None else tuple(plan.fence), tuple(event.__data__))
    params = [
        statements.param(fields["id"], row.id),
        *_refreshed_params(row.id, lease, values, plan, now),
        *(statements.param(outbox[name], value) for name, value in event.__data__.items()),
    ]
    held, webhooks = statements.run("nexus_refreshed", sql, params).fetchone()
    if webhooks:
        return _HAS_WEBHOOKS
    return None if held is None else bool(held) and plan is not None


@functools.lru_cache(maxsize=16)
def _alone_sql(names: tuple, fence: tuple | None, event_columns: tuple) -> str:
    update = _refreshed_sql(names, fence, True, "%s").replace(
        " RETURNING ", ' AND NOT EXISTS (SELECT 1 FROM "hooks") RETURNING ', 1
    )
    fields = OutboxEvent._meta.fields
    casts = [f"CAST(%s AS {_PG_TYPES.get(type(fields[name]), 'text')})" for name in event_columns]
    columns = ", ".join(f'"{fields[name].column_name}"' for name in event_columns)
    return (
        'WITH "hooks" AS (SELECT 1 FROM "webhooks" WHERE "integration_id" = %s AND "is_active" LIMIT 1), '
        f'"stored" AS ({update} AS "held"), '
        f'"event" AS (INSERT INTO "outbox_events" ({columns}) SELECT {", ".join(casts)} FROM "stored") '
        'SELECT (SELECT "held" FROM "stored"), EXISTS (SELECT 1 FROM "hooks")'
    )


def _refreshed_params(row_id, lease, values: dict, plan: AfterRefresh | None, now) -> list:
    fields = Integration._meta.fields
    params = [statements.param(fields[name], value) for name, value in values.items()]
    if plan is None:
        params.append(statements.param(fields["health_due_at"], now))
    else:
        fence = [statements.param(fields[name], value) for name, value in plan.fence.items()]
        for name, value in plan.values.items():
            params += [*fence, statements.param(fields[name], value)]
        # A check at once when the fence fails: a moment other than the planned one, so RETURNING tells them apart.
        ask = now if now != plan.values["health_due_at"] else now + dt.timedelta(microseconds=1)
        params.append(statements.param(fields["health_due_at"], ask))
    params += [statements.param(fields["id"], row_id), statements.param(fields["refresh_lease_token"], lease)]
    if plan is not None:
        params.append(statements.param(fields["health_due_at"], plan.values["health_due_at"]))
    return params


@functools.lru_cache(maxsize=16)
def _refreshed_sql(names: tuple, fence: tuple | None, postgres: bool, mark: str) -> str:
    """``_update_refreshed``'s statement, written out once per shape (peewee rebuilt it on every refresh)."""
    fields = Integration._meta.fields

    def column(name: str) -> str:
        return f'"{fields[name].column_name}"'

    def typed(name: str) -> str:  # a CASE of placeholders needs its type on PostgreSQL
        return f"CAST({mark} AS jsonb)" if postgres and isinstance(fields[name], peewee.JSONField) else mark

    sets = [f"{column(name)} = {typed(name)}" for name in names]
    if fence is None:
        sets.append(f'"health_due_at" = {mark}')
        returning = "TRUE" if postgres else "1"
    else:
        held = " AND ".join(f"{column(name)} = {mark}" for name in fence)
        sets += [
            f"{column(name)} = CASE WHEN {held} THEN {typed(name)} ELSE {column(name)} END"
            for name in ("health_status", "health_rank", "health_reasons")
        ]
        stamp = f"CAST({mark} AS timestamptz)" if postgres else mark  # typed for PREPARE
        sets.append(f'"health_due_at" = CASE WHEN {held} THEN {stamp} ELSE {stamp} END')
        returning = f'"health_due_at" = {mark}'
    return (
        f'UPDATE "integrations" SET {", ".join(sets)} WHERE "id" = {mark} AND "refresh_lease_token" = {mark} '
        f"RETURNING {returning}"
    )


def _as_stored(row: Integration, values: dict) -> Integration:
    """A copy of ``row`` with ``values`` (column name: value) as the UPDATE writes them."""
    stored = Integration(__no_default__=1)
    stored.__data__ = {**row.__data__, **values}
    return stored
