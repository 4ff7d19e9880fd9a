"""Webhook management: create, list, show, update, delete, rotate the secret.

The secret is shown twice only: in the answer to create and to rotate. It is
stored encrypted like tokens. After a rotation the previous secret keeps
signing next to the new one for 24 hours, so receivers can switch over
without losing a delivery; a further rotation replaces it (two secrets sign at most).

Subscriptions are exact event names (``media.created``), a family
(``media.*``) or everything (``*``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from nexusctl import ssrf
from nexusctl.core import deliveries, integrations, lean, signing
from nexusctl.core.ids import parse_uuid
from nexusctl.core.metadata import check_metadata
from nexusctl.core.paging import Bulky, Page, bounded_page
from nexusctl.core.serializers import WEBHOOK_COLUMNS, webhook_row, webhook_to_dict
from nexusctl.core.storable import check_one_line
from nexusctl.core.webhook_rows import get, matches  # noqa: F401 - webhooks.get and .matches are the API's too
from nexusctl.crypto import Keyring
from nexusctl.db.database import database_proxy, is_postgres, retry_deadlocks
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, Webhook, WebhookDelivery
from nexusctl.db.secrets import public_fields, seal, unseal
from nexusctl.errors import UsageProblem

ROTATION_OVERLAP = dt.timedelta(hours=24)
MAX_EVENTS = 50
URL_MAX = 2048
EVENT_PATTERN = r"\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?"  # the API document states it too
_EVENT = re.compile(EVENT_PATTERN)
# What the service writes about its own deliveries: never delivered to a webhook (core.attempts), so no
# webhook may subscribe to them. Rows that subscribed before this was refused load and work as before.
WEBHOOK_EVENTS = "webhook."


def check_events(events) -> list[str]:
    if not isinstance(events, list) or not events or len(events) > MAX_EVENTS:
        raise UsageProblem(f"events must be a list of 1-{MAX_EVENTS} event names", field="events")
    clean = []
    for name in events:
        if not isinstance(name, str) or len(name) > 128 or not _EVENT.fullmatch(name):
            raise UsageProblem(
                f"events: {name!r} is not an event name like media.created, media.* or *", field="events"
            )
        if name == "webhook.*" or name.startswith(WEBHOOK_EVENTS):
            raise UsageProblem(
                f"events: {name!r}: webhook.* events (webhook.delivered, webhook.failed) are published to the"
                " event stream and outbox (`nexusctl events list` / `events tail`, the Redis stream EVENTS_STREAM),"
                " not delivered to webhooks: a delivery about a delivery would loop",
                field="events",
            )
        if name not in clean:
            clean.append(name)
    return clean


def _check_url(url) -> str:
    if not isinstance(url, str) or not url.strip() or len(url) > URL_MAX:
        raise UsageProblem(f"url must be an http(s) URL of at most {URL_MAX} characters", field="url")
    check_one_line(url, "url")
    return url.strip(
        ssrf.ASCII_BLANKS
    )  # ASCII blanks only: str.strip() would take U+3000 and the like off the ends unseen


def create(
    keyring: Keyring, *, integration_id, url, events, metadata=None, is_active=True, owner_id=None, limit=None
) -> tuple[Webhook, str]:
    """A new webhook and its secret (shown now, never again). ``limit``: the most webhooks the integration may
    have (WEBHOOKS_PER_INTEGRATION_MAX; the API and the CLI pass it), one more is VALIDATION_ERROR."""
    integration = integrations.get(integration_id, owner_id=owner_id)
    if metadata is not None:
        check_metadata(metadata)
    if limit is not None:
        with database_proxy.atomic():
            _check_room(integration.id, limit)
            return _insert(keyring, integration, url, events, metadata, is_active)
    return _insert(keyring, integration, url, events, metadata, is_active)


def _check_room(integration_id, limit: int) -> None:
    """Inside the creating transaction. On PostgreSQL the integration's row is locked first, so two creates at
    once count one after the other and cannot both take the last place."""
    param = database_proxy.param
    key = [Webhook.integration.db_value(integration_id)]
    if is_postgres(database_proxy):
        database_proxy.execute_sql(f'SELECT 1 FROM "integrations" WHERE "id" = {param} FOR UPDATE', key)
    # Counted on the (integration_id, ...) index, at most limit + 1 rows read.
    (count,) = database_proxy.execute_sql(
        f'SELECT COUNT(*) FROM (SELECT 1 FROM "webhooks" WHERE "integration_id" = {param} LIMIT {int(limit)}) AS c',
        key,
    ).fetchone()
    if count >= limit:
        raise UsageProblem(
            f"integration {integration_id} already has the most webhooks one may have ({limit}, "
            "WEBHOOKS_PER_INTEGRATION_MAX): delete one it no longer needs, or change an existing one's events",
            field="integrationId",
        )


def _insert(keyring: Keyring, integration, url, events, metadata, is_active) -> tuple[Webhook, str]:
    row = Webhook(
        integration=integration.id,
        url=_check_url(url),
        events=check_events(events),
        metadata=metadata or {},
        is_active=bool(is_active),
    )
    secret = signing.new_secret()
    seal(keyring, row, "secret", secret)  # row.id is set at construction: the AAD binds it
    row.save(force_insert=True)
    return get(row.id), secret


def list_view(*, integration_id=None, owner_id=None, limit=None, cursor=None) -> Page:
    """Webhooks newest first as the API's and CLI's dicts (an integration's: INTEGRATION_NOT_FOUND for an unknown
    one or, with ``owner_id``, someone else's), bounded in bytes (paging.bounded_page), read lean
    (nexusctl.core.lean: the shown columns as tuples, one statement per shape of filters)."""
    where = {}
    if integration_id is not None:
        # As every list under an integration (sync logs): an unknown one, or someone else's, is
        # INTEGRATION_NOT_FOUND, not an empty list that reads as "no webhooks yet".
        row_id = integrations.owner_of(integration_id, owner_id=owner_id)
        where['t."integration_id" = ?'] = [Webhook.integration.db_value(row_id)]
    if owner_id is not None:
        where['p."user_id" = ?'] = [Integration.user_id.db_value(owner_id)]
    return lean.newest_first(
        _OWNED if owner_id is not None else _LISTED,
        Webhook,
        where,
        limit,
        cursor,
        serialize=lambda rows: [webhook_row(values) for values in rows],
        general=lambda: bounded_page(
            _query(integration_id, owner_id),
            Webhook,
            limit,
            cursor,
            bulky=Bulky(Webhook.metadata, "metadata"),
            columns=public_fields(Webhook),
            serialize=lambda rows: [webhook_to_dict(r) for r in rows],
        ),
    )


_LISTED = lean.Listing("webhooks", WEBHOOK_COLUMNS, bulky="metadata", bulky_key="metadata")
# The owner's only: through the webhook's integration.
_OWNED = lean.Listing(
    "webhooks",
    WEBHOOK_COLUMNS,
    bulky="metadata",
    bulky_key="metadata",
    join='JOIN "integrations" AS p ON p."id" = t."integration_id"',
)


def _query(integration_id, owner_id):
    query = Webhook.select(*public_fields(Webhook)).join(Integration)
    if integration_id is not None:
        query = query.where(Webhook.integration == parse_uuid(integration_id, "integrationId"))
    if owner_id is not None:
        query = query.where(Integration.user_id == owner_id)
    return query


def update(webhook_id, *, url=None, events=None, is_active=None, metadata=None, owner_id=None) -> Webhook:
    if url is None and events is None and is_active is None and metadata is None:
        raise UsageProblem("nothing to update: give url, events, isActive or metadata")
    row = get(webhook_id, owner_id=owner_id)
    changes = {Webhook.updated_at: utcnow()}
    if url is not None:
        changes[Webhook.url] = _check_url(url)
    if events is not None:
        changes[Webhook.events] = check_events(events)
    if metadata is not None:
        changes[Webhook.metadata] = check_metadata(metadata)
    if is_active is not None and not isinstance(is_active, bool):
        raise UsageProblem("isActive must be true or false", field="isActive")
    switch = {Webhook.is_active: is_active}  # written only where it switches the webhook (``transaction``)
    if is_active:
        # Switching it on starts a fresh failure window; isActive true on a webhook already on (a client that sends
        # the whole object on every PATCH) leaves it: clearing it there kept a webhook whose endpoint never answers
        # from ever reaching the 5-day disable (deliveries.DISABLE_AFTER).
        switch[Webhook.failing_since] = None
        switch[Webhook.disabled_reason] = None

    def transaction() -> bool:
        """Apply the changes; whether this switched the webhook on or off (decided under its row's lock, not from
        the row read before: a pause and a resume at once each see the other's flag)."""
        with database_proxy.atomic():
            switched = False
            if is_active is not None:
                switched = bool(
                    Webhook.update(switch).where((Webhook.id == row.id) & (Webhook.is_active != is_active)).execute()
                )
            Webhook.update(changes).where(Webhook.id == row.id).execute()
        return switched

    if retry_deadlocks(transaction):
        # Its queued deliveries out of the claims' way while it is off, and due again when it is on: in batches of
        # their own transactions once the switch is committed (housekeeping's unpark_active mends what a stop
        # in between leaves: deliveries.mend_parking).
        (deliveries.unpark if is_active else deliveries.park)(row.id)
    return get(row.id)


def delete(webhook_id, *, owner_id=None) -> dict:
    row = get(webhook_id, owner_id=owner_id)

    def transaction() -> int:
        with database_proxy.atomic():
            deliveries = WebhookDelivery.select().where(WebhookDelivery.webhook == row.id).count()
            # Its deliveries first: the delivery worker locks a delivery, then its webhook, and a
            # cascade from the webhook took them the other way round (a deadlock on PostgreSQL).
            WebhookDelivery.delete().where(WebhookDelivery.webhook == row.id).execute()
            Webhook.delete().where(Webhook.id == row.id).execute()
        return deliveries

    return {"id": str(row.id), "deleted": True, "deliveriesDeleted": retry_deadlocks(transaction)}


def delete_preview(webhook_id, *, owner_id=None) -> tuple[Webhook, int]:
    """The webhook and how many deliveries deleting it would take with it (what a dry run or a question says)."""
    row = get(webhook_id, owner_id=owner_id)
    return row, WebhookDelivery.select().where(WebhookDelivery.webhook == row.id).count()


def send_test(webhook_id, *, owner_id=None) -> tuple[Webhook, uuid.UUID]:
    """Queue a ``webhook.test`` event to this webhook alone, whatever it subscribes to; the delivery's id.

    Refused for an inactive webhook (the worker never sends to one, so the test would wait
    silently forever); like Stripe and Svix, a disabled endpoint gets nothing, tests included.
    """
    row = get(webhook_id, owner_id=owner_id)
    deliveries.refuse_inactive(row, "a test")
    integration = integrations.get(row.integration_id)
    with database_proxy.atomic():
        (delivery_id,) = deliveries.queue(integration, "webhook.test", {"webhookId": str(row.id), "test": True}, [row])
    return row, delivery_id


def rotate_secret(keyring: Keyring, webhook_id, *, owner_id=None) -> tuple[Webhook, str]:
    """A new secret; the old one keeps signing (as a second signature) for 24 hours."""
    get(webhook_id, owner_id=owner_id)
    with database_proxy.atomic():
        row = Webhook.select().where(Webhook.id == parse_uuid(webhook_id, "webhookId")).first()
        old = unseal(keyring, row, "secret")
        secret = signing.new_secret()
        seal(keyring, row, "secret", secret)
        seal(keyring, row, "previous_secret", old)
        Webhook.update(
            secret=row.secret,
            previous_secret=row.previous_secret,
            previous_secret_expires_at=utcnow() + ROTATION_OVERLAP,
            updated_at=utcnow(),
        ).where(Webhook.id == row.id).execute()
    return get(row.id), secret


def signing_secrets(keyring: Keyring, row: Webhook, now: dt.datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, plus the previous during the overlap."""
    secrets = [unseal(keyring, row, "secret")]
    if row.previous_secret and row.previous_secret_expires_at and row.previous_secret_expires_at > (now or utcnow()):
        secrets.append(unseal(keyring, row, "previous_secret"))
    return [s for s in secrets if s]


async def check_url_resolving(settings, url) -> str:
    """The SSRF rules, then one resolution: every address the name has must be allowed."""
    return await ssrf.check_url_resolving(
        url, production=settings.is_production, allowed_networks=settings.webhook_allowed_networks
    )
