"""Integration health: what the service knows about a connection, and one status from it.

``facts`` reads what the service already records about one integration, each
with an indexed query: the token's expiry (and the refresh token's, where the
provider says), the last refresh and its outcome, consecutive refresh failures,
the last run of each sync action, webhook deliveries of the last 24 hours,
the granted scopes against what its capabilities need, the last
rate-limit a sync met, and the last proxied call the provider throttled or
failed (nexusctl.core.proxy_health). ``judge`` turns them into ``healthy``, ``degraded``
(works, but needs attention) or ``broken`` (cannot call the provider), with
reasons in plain words. Storing the status and announcing its changes is
nexusctl.core.health_checks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import peewee

from nexusctl.db.models import Integration, IntegrationSyncLog, Webhook, WebhookDelivery
from nexusctl.enums import DeliveryStatus, SyncStatus
from nexusctl.providers import scopes as needed_scopes
from nexusctl.providers.adapters.tiktok import business_connection
from nexusctl.providers.adapters.tiktok import unavailable as tiktok_unavailable
from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import RefreshStyle
from nexusctl.providers.sync.comments import REPLIERS
from nexusctl.providers.sync.publish import PUBLISHERS
from nexusctl.providers.sync.registry import actions_of

HEALTHY, DEGRADED, BROKEN = "healthy", "degraded", "broken"
RANK = {HEALTHY: 0, DEGRADED: 1, BROKEN: 2}
STATUSES = tuple(RANK)
WEBHOOK_WINDOW = dt.timedelta(hours=24)
WEBHOOK_MIN_SUCCESS = 0.9  # below this share of deliveries delivered (last 24 h): degraded
PUBLISH = "publish"
_RENEWED_WITH_REFRESH_TOKEN = (RefreshStyle.STANDARD, RefreshStyle.ROTATING)
_LONG_LIVED = (RefreshStyle.FB_EXCHANGE, RefreshStyle.IG_REFRESH)


@dataclass
class Reason:
    code: str
    severity: str  # degraded or broken
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message}


@dataclass
class Facts:
    row: Integration
    has_refresh_token: bool
    refresh_token_expires_at: dt.datetime | None
    syncs: list[dict] = field(default_factory=list)
    webhooks: dict = field(default_factory=dict)
    granted: list[str] = field(default_factory=list)
    required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    last_rate_limit: dict | None = None

    @property
    def missing_scopes(self) -> list[str]:
        if not self.granted:  # the provider did not say what it granted: nothing to compare
            return []
        wanted = {s for scopes in self.required.values() for s in scopes}
        return sorted(wanted - needed_scopes.effective(self.row.provider, self.granted))


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def _parse(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def capabilities_of(row: Integration) -> list[str]:
    """What the integration does: its provider's sync actions, and publishing where the provider can (a TikTok
    connection: those of the kind of TikTok app it was made with)."""
    facts = (row.metadata or {}).get("provider") or {}
    return [
        c for c in capabilities_of_provider(row.provider) if tiktok_unavailable(row.provider.value, c, facts) is None
    ]


REPLY_COMMENT = "reply_comment"


def capabilities_of_provider(provider) -> list[str]:
    names = list(actions_of(provider))
    if provider.value in PUBLISHERS:
        names.append(PUBLISH)
    if provider.value in REPLIERS:  # replying to a comment (POST /integrations/{id}/comments/{commentId}/replies)
        names.append(REPLY_COMMENT)
    return names


def load(row_id) -> tuple[Integration, bool] | None:
    """The row (never shown: its ciphertexts stay in memory) and whether it holds a refresh token."""
    row = (
        Integration.select(Integration, Integration.refresh_token.is_null(False).alias("has_rt"))
        .where(Integration.id == row_id)
        .first()
    )
    return None if row is None else (row, bool(row.has_rt))


def facts(row: Integration, has_refresh_token: bool, now: dt.datetime, approved=()) -> Facts:
    """``approved``: the provider's approval-only scopes the operator configured (asked for, so required too)."""
    provider_facts = (row.metadata or {}).get("provider") or {}
    capabilities = capabilities_of(row)
    found = Facts(
        row,
        has_refresh_token,
        _parse(provider_facts.get("refreshTokenExpiresAt")),
        granted=list(row.scope or []),
        required=needed_scopes.required(
            row.provider, capabilities, approved, "business" if business_connection(provider_facts) else None
        ),
    )
    found.syncs = [s for s in (_last_run(row.id, name) for name in capabilities) if s is not None]
    limited = [s for s in found.syncs if s["rateLimitWaits"] or s["errorCode"] == "RATE_LIMITED"]
    if limited:
        last = max(limited, key=lambda s: s["at"])
        found.last_rate_limit = {
            "at": last["at"],
            "action": last["action"],
            "waits": last["rateLimitWaits"],
            "runFailed": last["errorCode"] == "RATE_LIMITED",
        }
    found.webhooks = _webhooks(row.id, now)
    return found


def _last_run(integration_id, action: str) -> dict | None:
    """The last finished run of one action: one probe of (integration_id, action, created_at)."""
    log = (
        IntegrationSyncLog.select(
            IntegrationSyncLog.status,
            IntegrationSyncLog.error,
            IntegrationSyncLog.metadata,
            IntegrationSyncLog.completed_at,
            IntegrationSyncLog.created_at,
        )
        .where(
            (IntegrationSyncLog.integration == integration_id)
            & (IntegrationSyncLog.action == action)
            & IntegrationSyncLog.status.in_([SyncStatus.COMPLETED, SyncStatus.FAILED])
        )
        .order_by(IntegrationSyncLog.created_at.desc())
        .limit(1)
        .first()
    )
    if log is None:
        return None
    meta = log.metadata or {}
    return {
        "action": action,
        "status": log.status.value,
        "at": _iso(log.completed_at or log.created_at),
        "error": log.error if log.status == SyncStatus.FAILED else None,
        "errorCode": meta.get("errorCode") if log.status == SyncStatus.FAILED else None,
        "rateLimitWaits": int(meta.get("rateLimitWaits") or 0),
    }


def _webhooks(integration_id, now: dt.datetime) -> dict:
    """Deliveries of the last 24 h by outcome: a range of (webhook_id, created_at, id) per webhook."""
    hooks = list(
        Webhook.select(Webhook.id, Webhook.is_active, Webhook.disabled_reason)
        .where(Webhook.integration == integration_id)
        .tuples()
    )
    counts = {s: 0 for s in DeliveryStatus}
    if hooks:
        query = (
            WebhookDelivery.select(WebhookDelivery.status, peewee.fn.COUNT(WebhookDelivery.id))
            .where(
                WebhookDelivery.webhook.in_([h[0] for h in hooks])
                & (WebhookDelivery.created_at >= now - WEBHOOK_WINDOW)
            )
            .group_by(WebhookDelivery.status)
            .tuples()
        )
        for status, count in query:
            counts[DeliveryStatus(status)] = count
    tried = counts[DeliveryStatus.DELIVERED] + counts[DeliveryStatus.FAILED] + counts[DeliveryStatus.RETRYING]
    return {
        "webhooks": len(hooks),
        "disabled": sum(1 for h in hooks if not h[1] and h[2]),
        "deliveries24h": sum(counts.values()),
        "delivered": counts[DeliveryStatus.DELIVERED],
        "failed": counts[DeliveryStatus.FAILED],
        "retrying": counts[DeliveryStatus.RETRYING],
        "pending": counts[DeliveryStatus.PENDING],
        "successRate": round(counts[DeliveryStatus.DELIVERED] / tried, 4) if tried else None,
    }


# --- the judgment ----------------------------------------------------------------


def renewable(row: Integration, has_refresh_token: bool) -> bool:
    """Can the service get a new access token by itself (before this one expires)?"""
    style = SPECS[row.provider].refresh
    return (style in _RENEWED_WITH_REFRESH_TOKEN and has_refresh_token) or style in _LONG_LIVED


def refresh_failing(row: Integration) -> bool:
    return row.refresh_failed_at is not None and (row.refreshed_at is None or row.refresh_failed_at > row.refreshed_at)


# The reasons judged from the integration's row alone (its token, its expiry and its refresh outcome): a
# refresh changes these and nothing else, so it re-judges them itself (health_checks.after_refresh).
ROW_CODES = frozenset(
    {
        "INACTIVE",
        "TOKEN_EXPIRED",
        "REFRESH_FAILING",
        "TOKEN_EXPIRING",
        "REFRESH_TOKEN_EXPIRED",
        "REFRESH_TOKEN_EXPIRING",
    }
)


def judge(f: Facts, now: dt.datetime, lead: dt.timedelta) -> tuple[str, list[Reason]]:
    """The status and its reasons, worst first. ``lead``: how far ahead an expiry needs attention."""
    reasons = row_reasons(f, now, lead)

    def add(code, severity, message):
        reasons.append(Reason(code, severity, message))

    missing = f.missing_scopes
    if missing:
        uses = sorted(c for c, s in f.required.items() if set(s) & set(missing))
        add(
            "MISSING_SCOPES",
            DEGRADED,
            f"not granted: {', '.join(missing)} (needed for {', '.join(uses)}); connect it again and allow them",
        )
    for run in f.syncs:
        if run["status"] == SyncStatus.FAILED.value:
            # A run refused for a missing scope says which (an approval-only one is not in f.required).
            code = run["errorCode"] if run["errorCode"] in ("RATE_LIMITED", "MISSING_SCOPES") else "SYNC_FAILED"
            add(code, DEGRADED, f"the last {run['action']} run failed at {run['at']}: {run['error']}")
    row = f.row
    if row.is_active and row.proxy_failed_at is not None:  # the last proxied call failed (core.proxy_health)
        throttled = row.proxy_error_code == "RATE_LIMITED"
        add(
            "PROXY_RATE_LIMITED" if throttled else "PROXY_FAILING",
            DEGRADED,
            f"the last proxied provider call {'was rate limited' if throttled else 'failed'} at "
            f"{_iso(row.proxy_failed_at)}: {row.proxy_error}",
        )
    hooks = f.webhooks
    if hooks.get("disabled"):
        add("WEBHOOK_DISABLED", DEGRADED, f"{hooks['disabled']} webhook(s) disabled after failing deliveries")
    rate = hooks.get("successRate")
    if rate is not None and rate < WEBHOOK_MIN_SUCCESS:
        failing_now = hooks["failed"] + hooks["retrying"]
        tried = hooks["delivered"] + failing_now
        add(
            "WEBHOOKS_FAILING",
            DEGRADED,
            f"{failing_now} of {tried} webhook deliveries in the last 24 h failed ({rate:.0%} delivered)",
        )
    return verdict(reasons)


def verdict(reasons: list[Reason]) -> tuple[str, list[Reason]]:
    """The status the reasons make, and the reasons worst first (a stable sort: same severity, same order)."""
    reasons.sort(key=lambda r: -RANK[r.severity])
    status = max((r.severity for r in reasons), key=RANK.__getitem__, default=HEALTHY)
    return status, reasons


def row_reasons(f: Facts, now: dt.datetime, lead: dt.timedelta) -> list[Reason]:
    """The reasons of ``ROW_CODES``: what the row itself says (``f.row``, ``f.has_refresh_token`` and
    ``f.refresh_token_expires_at``; no query), in ``judge``'s order."""
    row, reasons = f.row, []

    def add(code, severity, message):
        reasons.append(Reason(code, severity, message))

    if not row.is_active:
        add(
            "INACTIVE",
            BROKEN,
            f"the integration is inactive ({row.last_error or 'deactivated'}): connect it again"
            if row.last_error
            else "the integration is deactivated: activate it or connect it again",
        )
    expires = row.expires_at
    can_renew = renewable(row, f.has_refresh_token) and (
        SPECS[row.provider].refresh not in _LONG_LIVED or expires is None or expires > now
    )
    failing = refresh_failing(row)
    tries = max(row.refresh_failures or 0, 1)
    last = f": {row.last_error}" if row.last_error else ""
    if row.is_active and expires is not None and expires <= now and (not can_renew or failing):
        why = "renewing it keeps failing" if can_renew else "it cannot be renewed"
        add("TOKEN_EXPIRED", BROKEN, f"the access token expired at {_iso(expires)} and {why}: connect it again")
    elif row.is_active and failing:
        add(
            "REFRESH_FAILING",
            DEGRADED,
            f"the last token refresh failed at {_iso(row.refresh_failed_at)} ({tries} failure(s) in a row){last}",
        )
    if row.is_active and expires is not None and now < expires <= now + lead and not can_renew:
        add(
            "TOKEN_EXPIRING",
            DEGRADED,
            f"the access token expires at {_iso(expires)} and cannot be renewed "
            "by the service: connect it again before then",
        )
    rt_expiry = f.refresh_token_expires_at
    if row.is_active and f.has_refresh_token and rt_expiry is not None and rt_expiry <= now + lead:
        dead = rt_expiry <= now
        severity = BROKEN if dead and (expires is None or expires <= now) else DEGRADED
        add(
            "REFRESH_TOKEN_EXPIRED" if dead else "REFRESH_TOKEN_EXPIRING",
            severity,
            f"the refresh token {'expired' if dead else 'expires'} at {_iso(rt_expiry)}: connect it again "
            "to keep the connection renewing",
        )
    return reasons


def next_check(f: Facts, now: dt.datetime, lead: dt.timedelta, recheck: dt.timedelta) -> dt.datetime:
    """When the status could next change by time alone (an expiry comes within ``lead``, or passes),
    or ``recheck`` from now, whichever is sooner."""
    return min([now + recheck, *expiry_moments(f, now, lead)])


def expiry_moments(f: Facts, now: dt.datetime, lead: dt.timedelta) -> list[dt.datetime]:
    """The moments after ``now`` when the row's reasons could change by time alone (an expiry comes within
    ``lead``, or passes)."""
    moments = []
    for when in (f.row.expires_at, f.refresh_token_expires_at):
        if when is not None:
            moments += [t for t in (when - lead, when) if t > now]
    return moments


def refresh_token_expiry(row: Integration) -> dt.datetime | None:
    """The refresh token's expiry where the provider said it (``metadata.provider.refreshTokenExpiresAt``)."""
    return _parse(((row.metadata or {}).get("provider") or {}).get("refreshTokenExpiresAt"))


def record(f: Facts, status: str, reasons: list[Reason], checked_at: dt.datetime) -> dict:
    """The health record the API returns and `--json` prints (no token, ever)."""
    row = f.row
    outcome = None
    if row.refreshed_at or row.refresh_failed_at:
        outcome = "failed" if refresh_failing(row) else "succeeded"
    return {
        "integrationId": str(row.id),
        "userId": str(row.user_id),
        "provider": row.provider.value,
        "name": row.name,
        "isActive": row.is_active,
        "status": status,
        "reasons": [r.to_dict() for r in reasons],
        "checkedAt": _iso(checked_at),
        "token": {
            "expiresAt": _iso(row.expires_at),
            "renewable": renewable(row, f.has_refresh_token),
            "refreshTokenExpiresAt": _iso(f.refresh_token_expires_at),
        },
        "refresh": {
            "lastSucceededAt": _iso(row.refreshed_at),
            "lastFailedAt": _iso(row.refresh_failed_at),
            "lastOutcome": outcome,
            "consecutiveFailures": row.refresh_failures or 0,
            "retryAt": _iso(row.refresh_retry_at),
        },
        "syncs": [{k: v for k, v in s.items() if k != "errorCode"} for s in f.syncs],
        "webhooks": f.webhooks,
        "scopes": {
            "granted": f.granted,
            "required": sorted({s for v in f.required.values() for s in v}),
            "missing": f.missing_scopes,
            "reported": bool(f.granted),
        },
        "lastRateLimit": f.last_rate_limit,
    }
