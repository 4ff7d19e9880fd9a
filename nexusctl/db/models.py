"""The spec's five tables as peewee models.

Columns are snake_case in the database; the API's camelCase names come from
the serializers in ``nexusctl.core``. Primary keys are UUIDs made by the
application, so a row's id is known before it is inserted (secrets are bound
to it). The schema itself is created by ``nexusctl/db/migrations``; these classes
must agree with the latest migration (a test checks that they do).
"""

from __future__ import annotations

import uuid

import peewee

from nexusctl.db.database import database_proxy
from nexusctl.db.fields import EncryptedTextField, EnumField, StringArrayField, UTCDateTimeField, utcnow
from nexusctl.enums import DeliveryStatus, Provider, SyncStatus


class BaseModel(peewee.Model):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        database = database_proxy
        legacy_table_names = False

    def save(self, *args, **kwargs):
        if self._pk is not None and not kwargs.get("force_insert"):
            self.updated_at = utcnow()
        return super().save(*args, **kwargs)


class Integration(BaseModel):
    # user_id and organization_id lead the composite indexes below (a single-column one each was dropped, 0017).
    user_id = peewee.UUIDField()
    organization_id = peewee.UUIDField(null=True)
    provider = EnumField(Provider, max_length=32, index=True)
    name = peewee.CharField(max_length=255)
    is_active = peewee.BooleanField(default=True)
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    # A channel webhook's token (Discord's webhook.incoming, migration 0011); its id is in metadata.provider.webhook.
    channel_webhook_token = EncryptedTextField()
    token_type = peewee.CharField(max_length=32, null=True)
    expires_at = UTCDateTimeField(null=True)
    scope = StringArrayField(default=list)
    metadata = peewee.JSONField(default=dict)
    last_sync_at = UTCDateTimeField(null=True)
    last_error = peewee.TextField(null=True)
    # The provider's id for the connected account: a reconnect updates, not duplicates.
    account_id = peewee.CharField(max_length=255, null=True)
    # One refresher at a time (see nexusctl.core.refresh); the token fences its write.
    refresh_lease_until = UTCDateTimeField(null=True)
    refresh_lease_token = peewee.UUIDField(null=True)
    # When metadata.syncSchedule next runs (partial index, migration 0008); None: not scheduled.
    next_sync_at = UTCDateTimeField(null=True)
    # The refresh sweep's back-off: consecutive failures and when it may try again (migration 0005).
    refresh_failures = peewee.IntegerField(default=0)
    refresh_retry_at = UTCDateTimeField(null=True)
    expiry_warned_for = UTCDateTimeField(null=True)  # the expires_at a TOKEN_EXPIRING warning went out for
    # Health (migration 0009, nexusctl.core.health): the last check's status and reasons, when the next is due,
    # and the last refresh outcomes it reads.
    health_status = peewee.CharField(max_length=16, null=True)
    health_rank = peewee.IntegerField(default=0)  # 0 healthy, 1 degraded, 2 broken: listings sort worst first
    health_reasons = peewee.JSONField(null=True)
    health_checked_at = UTCDateTimeField(null=True)
    health_due_at = UTCDateTimeField(default=utcnow)
    refreshed_at = UTCDateTimeField(null=True)
    refresh_failed_at = UTCDateTimeField(null=True)
    # The last proxied call the provider throttled or failed, until a later one is answered (migration 0015).
    proxy_failed_at = UTCDateTimeField(null=True)
    proxy_error_code = peewee.CharField(max_length=32, null=True)
    proxy_error = peewee.TextField(null=True)

    class Meta:
        table_name = "integrations"
        # Keyset pagination, per user and overall: ORDER BY created_at, id.
        indexes = (
            (("user_id", "created_at", "id"), False),
            (("created_at", "id"), False),
            (("organization_id", "created_at", "id"), False),  # per organization (migration 0011)
            (("user_id", "provider", "account_id"), True),
            (("expires_at",), False),  # partial: WHERE is_active (migration 0004), for the refresh sweep
            (("next_sync_at",), False),  # partial: WHERE next_sync_at IS NOT NULL (migration 0008)
            (("health_due_at",), False),  # the health job takes due rows oldest first (migration 0009)
            (("health_rank", "created_at", "id"), False),  # `integrations health`: worst first, keyset
        )


class Webhook(BaseModel):
    integration = peewee.ForeignKeyField(
        Integration, backref="webhooks", on_delete="CASCADE", column_name="integration_id"
    )
    url = peewee.TextField()
    events = StringArrayField(default=list)
    secret = EncryptedTextField()
    is_active = peewee.BooleanField(default=True)
    last_triggered_at = UTCDateTimeField(null=True)
    metadata = peewee.JSONField(default=dict)
    # After a rotation the old secret signs too, until previous_secret_expires_at.
    previous_secret = EncryptedTextField()
    previous_secret_expires_at = UTCDateTimeField(null=True)
    failing_since = UTCDateTimeField(null=True)  # first failure since the last success
    disabled_reason = peewee.TextField(null=True)

    class Meta:
        table_name = "webhooks"


class WebhookDelivery(BaseModel):
    # Not indexed alone: (webhook_id, created_at, id) serves the lookups and the cascading delete (0017).
    webhook = peewee.ForeignKeyField(
        Webhook, backref="deliveries", on_delete="CASCADE", column_name="webhook_id", index=False
    )
    event = peewee.CharField(max_length=255)
    payload = peewee.JSONField()
    status = EnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING, index=True)
    attempts = peewee.IntegerField(default=0)
    response = peewee.JSONField(null=True)
    error = peewee.TextField(null=True)
    delivered_at = UTCDateTimeField(null=True)
    next_attempt_at = UTCDateTimeField(null=True)
    lease_until = UTCDateTimeField(null=True)
    lease_token = peewee.UUIDField(null=True)
    # The emitting request's (or job's) trace context, a W3C traceparent, while traces are on (migration 0014).
    trace_parent = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = (
            (("created_at",), False),
            (("next_attempt_at",), False),  # partial: WHERE status IN ('PENDING', 'RETRYING') (migration 0003)
            (("webhook_id", "created_at", "id"), False),
        )


class WebhookAttempt(BaseModel):
    """One try at sending a delivery: what the receiver answered, how long it took."""

    # Not indexed alone: (delivery_id, number) serves the lookups and the cascading delete (0017).
    delivery = peewee.ForeignKeyField(
        WebhookDelivery, backref="attempt_log", on_delete="CASCADE", column_name="delivery_id", index=False
    )
    number = peewee.IntegerField()
    started_at = UTCDateTimeField()
    status_code = peewee.IntegerField(null=True)
    duration_ms = peewee.IntegerField(null=True)
    error = peewee.TextField(null=True)
    response_body = peewee.TextField(null=True)

    class Meta:
        table_name = "webhook_attempts"
        indexes = (
            (("delivery_id", "number"), False),
            (("started_at",), False),
        )  # `nexusctl top` reads recent attempts (0013)


class IntegrationSyncLog(BaseModel):
    integration = peewee.ForeignKeyField(
        Integration, backref="sync_logs", on_delete="CASCADE", column_name="integration_id"
    )
    action = peewee.CharField(max_length=64)
    resource_type = peewee.CharField(max_length=64, null=True)
    resource_id = peewee.CharField(max_length=255, null=True)
    status = EnumField(SyncStatus, max_length=16, default=SyncStatus.PENDING)
    items_processed = peewee.IntegerField(default=0)
    items_failed = peewee.IntegerField(default=0)
    error = peewee.TextField(null=True)
    metadata = peewee.JSONField(default=dict)
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    run_after = UTCDateTimeField(null=True)  # a deferred PENDING publish run is started from this time on

    class Meta:
        table_name = "integration_sync_logs"
        # A log listing is per integration, newest first; the daemon picks PENDING runs by status.
        indexes = (
            (("integration_id", "created_at", "id"), False),
            (("status", "created_at"), False),
            (("integration_id", "action", "created_at"), False),
        )  # the last run per action (0009)


class SyncCursor(BaseModel):
    """Where an action's next run resumes (after a run that stopped early); none after a completed run."""

    integration = peewee.ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
    action = peewee.CharField(max_length=64)
    resume = peewee.JSONField(null=True)

    class Meta:
        table_name = "sync_cursors"
        indexes = ((("integration_id", "action"), True),)


class SyncedItem(BaseModel):
    """A provider record an action has seen: its fingerprint decides created / updated / unchanged."""

    integration = peewee.ForeignKeyField(Integration, on_delete="CASCADE", column_name="integration_id")
    action = peewee.CharField(max_length=64)
    external_id = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)
    seen_run = peewee.UUIDField()  # the sync log of the last run that saw it

    class Meta:
        table_name = "synced_items"
        indexes = (
            (("integration_id", "action", "external_id"), True),
            (("integration_id", "action", "seen_run"), False),
        )


class OAuthState(BaseModel):
    state = peewee.CharField(max_length=128, unique=True)
    provider = EnumField(Provider, max_length=32)
    user_id = peewee.UUIDField()
    redirect_uri = peewee.TextField()
    metadata = peewee.JSONField(default=dict)
    expires_at = UTCDateTimeField(index=True)
    secret = EncryptedTextField()  # JSON: the PKCE verifier, WooCommerce's keys
    tenant = peewee.TextField(null=True)  # Shopify shop / WooCommerce store URL

    class Meta:
        table_name = "oauth_states"


class OutboxEvent(BaseModel):
    """An event to publish, written in the transaction of the change it reports."""

    type = peewee.CharField(max_length=64)
    user_id = peewee.UUIDField(null=True)
    integration_id = peewee.UUIDField(null=True)
    data = peewee.JSONField(default=dict)
    published_at = UTCDateTimeField(null=True)
    trace_parent = peewee.CharField(max_length=64, null=True)  # as on webhook_deliveries (migration 0014)

    class Meta:
        table_name = "outbox_events"
        # `events list|tail` page by time and type; the relay reads unpublished rows oldest first
        # through a partial (created_at, id) WHERE published_at IS NULL (migration 0006).
        indexes = ((("created_at", "id"), False), (("type", "created_at", "id"), False))


class ConsumedEvent(BaseModel):
    """An event from the bus this service has handled: the same event twice changes nothing more."""

    key = peewee.CharField(max_length=255, unique=True)  # stream + the event's own id
    stream = peewee.CharField(max_length=200)
    entry_id = peewee.CharField(max_length=64, null=True)
    type = peewee.CharField(max_length=64)
    outcome = peewee.JSONField(default=dict)

    class Meta:
        table_name = "consumed_events"
        indexes = ((("created_at",), False),)


class Lease(peewee.Model):
    """A named lease one daemon holds at a time (the outbox relay), renewed while held."""

    name = peewee.CharField(max_length=64, primary_key=True)
    holder = peewee.CharField(max_length=128)
    until = UTCDateTimeField()
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        database = database_proxy
        table_name = "leases"


class RateWait(peewee.Model):
    """Until when a provider asked an integration's callers to wait (core.rate_budget, without Redis)."""

    integration_id = peewee.UUIDField(primary_key=True)
    until = UTCDateTimeField(index=True)  # the product clock
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        database = database_proxy
        table_name = "rate_waits"


class JobRun(BaseModel):
    """What a scheduled job last did: one row per job, shared by every daemon (last writer wins)."""

    name = peewee.CharField(max_length=64, unique=True)
    schedule = peewee.CharField(max_length=128, null=True)  # "every 60s", as the daemon scheduled it
    next_run_at = UTCDateTimeField(null=True)
    scheduled_by = peewee.CharField(max_length=255, null=True)  # hostname:pid of the daemon
    last_started_at = UTCDateTimeField(null=True)
    last_finished_at = UTCDateTimeField(null=True)
    outcome = peewee.CharField(max_length=16, null=True)  # "ok" or "failed"
    message = peewee.TextField(null=True)
    counts = peewee.JSONField(null=True)
    ran_by = peewee.CharField(max_length=255, null=True)  # hostname:pid, the daemon's or `nexusctl jobs run`'s

    class Meta:
        table_name = "job_runs"


ALL_MODELS = [
    Integration,
    Webhook,
    WebhookDelivery,
    WebhookAttempt,
    IntegrationSyncLog,
    OAuthState,
    OutboxEvent,
    JobRun,
    ConsumedEvent,
    Lease,
    SyncCursor,
    SyncedItem,
    RateWait,
]
