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
import uuid
from typing import Callable

import peewee

from nexusctl.core import events
from nexusctl.core.health_checks import AfterRefresh
from nexusctl.core.ids import parse_uuid
from nexusctl.crypto import Keyring
from nexusctl.db import statements
from nexusctl.db.database import database_proxy, is_postgres
from nexusctl.db.fields import UTCDateTimeField, utcnow
from nexusctl.db.models import Integration, OutboxEvent
from nexusctl.db.secrets import seal, unseal
from nexusctl.enums import Provider
from nexusctl.errors import IntegrationNotFound
from nexusctl.providers.spec import Account, TokenSet

NAME_MAX = 255


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
        "expires_at": tokens.expires_at,
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
    expires = tokens.expires_at.isoformat().replace("+00:00", "Z") if tokens.expires_at else None
    if is_postgres(database_proxy) and (plan is None or plan.status == plan.previous):
        # The common case (no webhook, no status change to announce) in one autocommitted statement.
        held = _store_alone(row, lease, values, plan, now, events.outbox_row(events.REFRESHED, row, expiresAt=expires))
        if held is not _HAS_WEBHOOKS:
            return held is not None
    with database_proxy.atomic():
        held = _update_refreshed(row.id, lease, values, plan, now)
        if held is None:
            return False  # the lease is gone: another refresher took over
        events.record(events.REFRESHED, row, expiresAt=expires)
        if held:
            plan.announce(row)
    return True


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
