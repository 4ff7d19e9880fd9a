"""Running a sync: one action of one integration, page by page, with a sync log.

The run takes a lease named after (integration, action), so two runs of the
same action never overlap, across daemons and CLI processes; the lease is
renewed after every page and released at the end (a run that dies lets it
expire). A publish renews it every LEASE_SECONDS / 3 in the background (an
upload's retries and slow chunks included) and stops once it is lost or
recovery marked the run interrupted; ``finish`` completes only a run still
IN_PROGRESS, so neither a cancel nor recovery's FAILED is overwritten. Pages
come from the provider's action (nexusctl/providers/sync), each applied in one
transaction by nexusctl.core.sync_state.

- Incremental (default): resumes where a run that stopped early left off;
  for lists that are newest first, stops at the first page with nothing new
  or changed. ``full``: reads everything from the start and, at the end,
  every item not seen is ``<resource>.deleted``.
- Rate limits: the provider's wait is honoured and the page retried, as long
  as the total stays within the budget (SYNC_RATE_LIMIT_BUDGET); beyond it the
  run ends FAILED with RATE_LIMITED and the next run resumes from its cursor. A spent daily quota
  (``quotaResetAt``: YouTube's) is not waited for in the run: the run goes back to PENDING until the reset
  (``rateLimitedUntil`` in its metadata) and then resumes from its cursor. The waits are the integration's,
  shared with the API proxy and every other process (nexusctl.core.rate_budget): a wait the proxy or another
  run was told is kept by the run before its next call (nothing sent: BudgetWait), and a wait the run is told
  makes proxied calls answer 429 until it ends. A kept wait beyond what is left of the run's budget defers
  the run like a spent quota: back to PENDING until the wait ends (``rateLimitedUntil``, ``rateLimitReason``),
  taken again then by the daemon's sync runner and resumed from its cursor; not a failure, so the
  integration's health is not touched. A publish is deferred the same way (its "may have posted" look-up
  unchanged); a snapshot reads afresh when taken again.
- A refused token is refreshed once (the single-flight refresh) and the page
  retried; a token about to expire is refreshed before the first call.
- Cancelling (``nexusctl sync cancel``) stops the run after its current page.
- Snapshots (``fetch_analytics``): no pages, no per-item events; the action's report becomes the log's summary
  and one ``<resource>.fetched`` event (nexusctl.core.snapshots), since metrics change on every read.
- Scopes: an action whose needed scopes (providers.scopes) the connection's
  grant lacks fails at once with MISSING_SCOPES naming them, before any call;
  a scope that only widens what an action reads (Shopify's read_all_orders)
  is noted in the log's metadata (``note``) when missing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from nexusctl import clock, telemetry, tracing
from nexusctl.core import connections, integrations, key_usage, leases, rate_budget, refresh, sync_state
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration, IntegrationSyncLog
from nexusctl.enums import SyncStatus
from nexusctl.errors import (
    KeyNotConfigured,
    NexusError,
    ProviderError,
    RateLimited,
    SyncFailed,
    SyncNotStarted,
    TokenExpired,
)
from nexusctl.providers import scopes as needed_scopes
from nexusctl.providers.adapters.tiktok import unavailable
from nexusctl.providers.spec import NotYetRefreshable
from nexusctl.providers.sync.base import BudgetWait, SyncApi
from nexusctl.providers.sync.publish import PUBLISHERS
from nexusctl.providers.sync.publish_common import NotReady
from nexusctl.providers.sync.publish_media import cannot_take
from nexusctl.providers.sync.publish_reconcile import RECONCILERS
from nexusctl.providers.sync.registry import AUTH_HEADER, action_of

log = logging.getLogger(__name__)

# Renewed after every page and, during a publish, every LEASE_SECONDS / 3 by a background task: comfortably
# longer than anything one step waits for (a 20 s provider call, an upload chunk's 300 s CHUNK_TIMEOUT).
LEASE_SECONDS = 900.0
UNKNOWN_WAIT = 10.0  # seconds, when a provider throttles without saying for how long
EXPIRY_MARGIN = dt.timedelta(seconds=60)
PUBLISH = "publish"  # queued by content.published (nexusctl.core.inbound), run like a sync
# Seconds before a run this process cannot decrypt the tokens for (a key rotation under way) is looked at again,
# by whichever daemon takes it (the sync runner's recovery pass picks it up).
KEY_MISSING_DELAY = 30.0
# Seconds before a deferred publish looks again (the provider still processing its video), then every minute.
DEFER_DELAYS = (5.0, 10.0, 20.0, 30.0, 60.0)


def plan(
    integration_id, action: str | None, *, full: bool = False, trigger: str = "cli", owner_id=None, keyring=None
) -> list[IntegrationSyncLog]:
    """PENDING logs for one action (or each action of the provider): what `sync run` and the API start. With
    ``keyring``, tokens under a key it lacks (a rotation this process missed) refuse the start."""
    integration = integrations.get(integration_id, owner_id=owner_id)
    if keyring is not None:
        key_usage.require_keys(keyring, Integration, integration.id, ("access_token", "refresh_token"))
    if not integration.is_active:
        raise SyncNotStarted(
            f"integration {integration.id} is inactive ({integration.last_error or 'disconnected'}); "
            "reconnect it first",
            id=str(integration.id),
        )
    # The spec's resourceType / resourceId: what the action fetches, and from which account (the provider's id
    # for it; the integration's own id when the provider gave none).
    account = integration.account_id or str(integration.id)
    facts = (integration.metadata or {}).get("provider") or {}
    if action is not None and (refused := unavailable(integration.provider.value, action, facts)) is not None:
        raise refused  # a TikTok connection offers what its kind of TikTok app can do
    return [
        sync_state.create(
            integration, a.name, full=full, trigger=trigger, resource_type=a.resource, resource_id=account
        )
        for a in action_of(integration.provider, action)
        if unavailable(integration.provider.value, a.name, facts) is None
    ]


def _api(svc, row: Integration, tokens, caller: str = "sync") -> SyncApi:
    """``caller``: who the provider's waits are logged as told to (rate_budget.Gate): sync, publish, reply."""
    adapter = svc.adapter_of(row)  # a TikTok connection's: of the kind of TikTok app it was made with
    api = SyncApi(
        adapter,
        tokens,
        tokens.metadata.get("tenant"),
        # A TikTok API for Business connection's adapter sends its token as Access-Token (adapters.tiktok).
        auth_header=getattr(adapter, "api_header", None) or AUTH_HEADER.get(row.provider, "bearer"),
    )
    api.settings = svc.settings  # publishers that post as the application (Discord's bot) read its credentials
    api.budget = rate_budget.Gate(svc, row.id, caller)  # the provider's waits, shared with the API proxy
    return api


async def _fresh_tokens(svc, integration_id, *, force: bool = False):
    row, tokens = await svc.run(connections.load, svc.keyring, integration_id)
    if force or (
        tokens.expires_at is not None and tokens.expires_at <= utcnow() + EXPIRY_MARGIN and tokens.refresh_token
    ):
        try:
            await refresh.refresh(svc, integration_id)
        except NotYetRefreshable:  # the current token is still the one to use
            return row, tokens
        row, tokens = await svc.run(connections.load, svc.keyring, integration_id)
    return row, tokens


async def _wait_out(exc: RateLimited, stats: dict, budget: float, what: str, *, resumes: bool) -> None:
    """Wait out a provider's throttle if the run's budget allows (counted in ``stats``), else end the run:
    a sync says it will resume from its cursor; a publish just fails with the provider's refusal."""
    wait = float(exc.retry_after if exc.retry_after is not None else UNKNOWN_WAIT)
    if stats["rateLimitWaitedSeconds"] + wait > budget:
        if not resumes:
            raise exc
        raise RateLimited(
            f"{exc.message}; the wait ({wait:.0f} s) is beyond the run's budget of {budget:.0f} s: "
            "the next run resumes from here",
            **exc.details,
        ) from None
    stats["rateLimitWaits"] += 1
    stats["rateLimitWaitedSeconds"] += wait
    since = clock.time()  # before the line: a test that moves the clock when it sees it is never too early
    log.info("%s: rate limited; waiting %.0f s", what, wait)
    await clock.wait(wait, since=since)  # the provider's window: on the product clock (a test moves it)


def _beyond_budget(exc: RateLimited, stats: dict, budget: float) -> bool:
    """A wait the integration's budget holds (nothing was sent) that the run's budget cannot wait out."""
    wait = float(exc.retry_after if exc.retry_after is not None else UNKNOWN_WAIT)
    return isinstance(exc, BudgetWait) and stats["rateLimitWaitedSeconds"] + wait > budget


def _wait_for_quota(log_id, exc: RateLimited, stats: dict) -> IntegrationSyncLog:
    """Back to PENDING until the provider's quota resets (the sync runner takes it then, and it resumes from its
    cursor): rate limited, not failed, so the integration keeps its health and no retry spends calls before."""
    reset = dt.datetime.fromisoformat(exc.details["quotaResetAt"].replace("Z", "+00:00"))
    return _rate_deferred(log_id, exc, stats, reset)


def _wait_for_budget(log_id, exc: BudgetWait, stats: dict) -> IntegrationSyncLog:
    """Back to PENDING until the wait the integration's budget holds ends (the sync runner takes it then), as
    for a spent quota: the provider was not even called, so neither a failure nor a call spent before it ends."""
    return _rate_deferred(log_id, exc, stats, utcnow() + dt.timedelta(seconds=float(exc.retry_after or 0) + 1))


def _rate_deferred(log_id, exc: RateLimited, stats: dict, until: dt.datetime) -> IntegrationSyncLog:
    until = until.astimezone(dt.timezone.utc).replace(microsecond=0)
    log.warning("run %s: %s; it waits until %s", log_id, exc.message, until.isoformat())
    return sync_state.defer(
        log_id,
        until,
        extra={
            **stats,
            "errorCode": exc.code,
            "rateLimitedUntil": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rateLimitReason": exc.message,
        },
    )


async def _refreshed(svc, integration_id, api: SyncApi) -> tuple[Integration, SyncApi]:
    """After a refused token: refresh (single-flight) and a new API handle that keeps counting calls."""
    row, tokens = await _fresh_tokens(svc, integration_id, force=True)
    fresh = _api(svc, row, tokens, api.budget.caller if api.budget is not None else "sync")
    fresh.calls = api.calls
    return row, fresh


class _Cancelled(Exception):
    """``nexusctl sync cancel`` seen between two chunks of an upload: stop before sending more."""


def _lease_lost(log_id) -> SyncFailed:
    return SyncFailed(
        f"publish {log_id} lost its run lease (another process took the run over or marked it interrupted): stopped"
    )


async def _keep_lease(svc, lock: str, holder: str, lost: asyncio.Event) -> None:
    """A publish's lease, renewed every LEASE_SECONDS / 3 whatever the publisher is waiting for (a slow chunk, a
    retry's sleep, the media host); once another holder has it, ``lost`` is set and the heartbeat stops the run."""
    while not lost.is_set():
        await asyncio.sleep(LEASE_SECONDS / 3)
        try:
            if not await svc.run(leases.acquire, lock, holder, LEASE_SECONDS):
                lost.set()
        except NexusError as exc:  # the database away for a moment: the next beat tries again
            log.warning("renewing the lease %s failed: %s", lock, exc.message)


async def run(svc, log_id, *, progress=None, budget: float | None = None) -> IntegrationSyncLog:
    """Execute a PENDING log to its end state; never raises for a provider's failure (the log says it)."""
    with tracing.span("sync run", {"nexus.sync_log.id": str(log_id)}) as span:
        entry = await _run(svc, log_id, progress=progress, budget=budget)
        if taken_elsewhere(entry):  # another process runs it (and counts it): nothing was run here
            span.set_attribute("nexus.sync.outcome", "taken_elsewhere")
            return entry
        # A deferred run is back to PENDING: it is counted again when it runs.
        outcome = "deferred" if entry.status == SyncStatus.PENDING else entry.status.value.lower()
        telemetry.sync_run(entry.action, outcome)
        span.set_attribute("nexus.sync.action", entry.action)
        span.set_attribute("nexus.sync.outcome", outcome)
    return entry


def taken_elsewhere(entry: IntegrationSyncLog) -> bool:
    """Whether ``run`` found its log already started by another process (the daemon's sync runner, another
    `nexusctl sync run` picking up the same due deferred run): the conditional start (PENDING -> IN_PROGRESS)
    is theirs, so the log's status is that process's run, not this one's."""
    return bool(getattr(entry, "taken_elsewhere", False))


async def _run(svc, log_id, *, progress=None, budget: float | None = None) -> IntegrationSyncLog:
    budget = svc.settings.sync_rate_limit_budget if budget is None else budget
    started = await svc.run(sync_state.start, log_id)
    if started is None:  # cancelled before it started, or another process started it first
        entry = await svc.run(IntegrationSyncLog.get_by_id, log_id)
        entry.taken_elsewhere = entry.status != SyncStatus.CANCELLED
        return entry
    integration_id, name = started.integration_id, started.action
    lock, holder = f"sync:{integration_id}:{name}", str(log_id)
    stats = {"rateLimitWaits": 0, "rateLimitWaitedSeconds": 0.0, "providerCalls": 0}
    if not await svc.run(leases.acquire, lock, holder, LEASE_SECONDS):
        if name == PUBLISH:  # another post to this integration is being made: this one goes right after
            return await svc.run(sync_state.defer, log_id, utcnow() + dt.timedelta(seconds=DEFER_DELAYS[0]))
        error = SyncNotStarted(f"another {name} sync of this integration is running")
        return await svc.run(sync_state.fail, log_id, integration_id, error)
    api = None
    try:
        row, tokens = await _fresh_tokens(svc, integration_id)
        refused = unavailable(row.provider.value, name, (row.metadata or {}).get("provider"))
        if refused is not None:  # planned before the connection was made again with another kind of TikTok app
            raise refused
        if name == PUBLISH:
            lost = asyncio.Event()

            async def heartbeat(final: bool = False):
                """Between steps of a long upload: keep the run lease and stop once it is lost (or recovery marked
                the run interrupted); honour a cancel unless the last byte may have gone (``final``)."""
                if lost.is_set() or not await svc.run(leases.acquire, lock, holder, LEASE_SECONDS):
                    lost.set()
                    raise _lease_lost(log_id)
                status = await svc.run(sync_state.status_of, log_id)
                if status == SyncStatus.CANCELLED and not final:
                    raise _Cancelled  # the abandoned upload session makes no video
                if status not in (SyncStatus.IN_PROGRESS, SyncStatus.CANCELLED):
                    raise _lease_lost(log_id)

            renewer = asyncio.create_task(_keep_lease(svc, lock, holder, lost))
            try:
                return await _publish(svc, started, row, tokens, stats, budget, heartbeat)
            finally:
                renewer.cancel()
        (action,) = action_of(row.provider, name)
        granted, approved = row.scope or [], svc.settings.providers[row.provider].approved_scopes
        refused = needed_scopes.refusal(row.provider, name, granted, approved)
        if refused is not None:
            raise refused
        widening = needed_scopes.WIDENING.get(row.provider, {}).get(name)
        if widening is not None and granted and widening[0] not in granted:
            stats["note"] = widening[1]
        if action.report is not None:  # a snapshot (fetch_analytics): one report, one event
            return await _snapshot(svc, log_id, integration_id, row, tokens, action, stats, budget)
        full = bool((started.metadata or {}).get("full"))
        resume = None if full else await svc.run(sync_state.resume_of, integration_id, name)
        stats["resumedFrom"] = resume
        api, refreshed, early = _api(svc, row, tokens), False, False
        while True:
            try:
                async for page in action.pages(api, resume):
                    if await svc.run(sync_state.is_cancelled, log_id):
                        stats["providerCalls"] = api.calls
                        return await svc.run(IntegrationSyncLog.get_by_id, log_id)
                    counts = await svc.run(
                        sync_state.apply_page,
                        log_id,
                        integration_id,
                        name,
                        page.items,
                        page.resume,
                        {"resource": action.resource},
                    )
                    resume = page.resume
                    await svc.run(leases.acquire, lock, holder, LEASE_SECONDS)
                    if progress is not None:
                        progress(len(page.items), counts)
                    if (
                        not full
                        and action.newest_first
                        and stats["resumedFrom"] is None
                        and page.items
                        and not counts["created"]
                        and not counts["updated"]
                    ):
                        early = True  # everything older was seen before
                        break
                break
            except RateLimited as exc:
                if exc.details.get("quotaResetAt"):  # a spent daily quota: asking again before the reset only fails
                    stats["providerCalls"] = api.calls
                    return await svc.run(_wait_for_quota, log_id, exc, stats)
                if _beyond_budget(exc, stats, budget):  # a wait someone else was told, longer than this run may wait
                    stats["providerCalls"] = api.calls
                    return await svc.run(_wait_for_budget, log_id, exc, stats)
                await _wait_out(exc, stats, budget, f"sync {log_id}", resumes=True)
            except TokenExpired:
                if refreshed:
                    raise
                refreshed = True
                row, api = await _refreshed(svc, integration_id, api)
        deleted = await svc.run(sync_state.delete_unseen, log_id, integration_id, name, action.resource) if full else 0
        stats.update(providerCalls=api.calls, stoppedEarly=early)
        return await svc.run(sync_state.finish, log_id, integration_id, name, deleted=deleted, extra=stats)
    except _Cancelled:
        return await svc.run(IntegrationSyncLog.get_by_id, log_id)
    except KeyNotConfigured as exc:  # neither the run's nor the integration's failure: left for a daemon with the key
        key_usage.warn_once(exc.details["keyId"], f"sync {log_id} ({name})")
        return await svc.run(
            sync_state.defer,
            log_id,
            utcnow() + dt.timedelta(seconds=KEY_MISSING_DELAY),
            extra={"waitingForKey": exc.details["keyId"]},
        )
    except NexusError as exc:
        if api is not None:
            stats["providerCalls"] = api.calls
        log.warning("sync %s (%s) failed: %s", log_id, name, exc.message)
        return await svc.run(sync_state.fail, log_id, integration_id, exc, extra=stats)
    except Exception:  # noqa: BLE001 - a bug must not leave the log IN_PROGRESS forever
        log.exception("sync %s (%s) crashed", log_id, name)
        return await svc.run(
            sync_state.fail, log_id, integration_id, SyncFailed("unexpected error (see the log)"), extra=stats
        )
    finally:
        await svc.run(leases.release, lock, holder)


async def _snapshot(svc, log_id, integration_id, row: Integration, tokens, action, stats: dict, budget: float):
    """A snapshot action: its report read whole (a throttle waited out within the budget, a refused token
    refreshed once, what was read before either kept), then the log COMPLETED with the report's summary and one
    ``<resource>.fetched`` event, in one transaction. Nothing resumes: the next run reads afresh."""
    api, refreshed, got = _api(svc, row, tokens), False, {}
    try:
        while True:
            try:
                report = await action.report(api, got)
                break
            except RateLimited as exc:
                if _beyond_budget(exc, stats, budget):
                    stats["providerCalls"] = api.calls
                    return await svc.run(_wait_for_budget, log_id, exc, stats)
                await _wait_out(exc, stats, budget, f"sync {log_id}", resumes=False)
            except TokenExpired:
                if refreshed:
                    raise
                refreshed = True
                row, api = await _refreshed(svc, integration_id, api)
    finally:
        stats["providerCalls"] = api.calls
    return await svc.run(
        sync_state.finish_snapshot, log_id, integration_id, action.name, action.resource, report, extra=stats
    )


async def _publish(svc, log: IntegrationSyncLog, row: Integration, tokens, stats: dict, budget: float, heartbeat=None):
    """One post of the content a content.published event queued: at most one provider call that creates it
    (plus the waits and the single refresh a throttle or a refused token call for). A provider still
    processing the media (NotReady) defers the run: back to PENDING, looked at again later."""
    publisher = PUBLISHERS.get(row.provider.value)
    if publisher is None:
        raise SyncFailed(f"publishing to {row.provider.value} is not built yet")
    content = (log.metadata or {}).get("content") or {}
    # Queued before the handler skipped such content itself: skipped here, not failed (health, lastError stay).
    if not (log.metadata or {}).get("pending") and (reason := cannot_take(row.provider.value, content)):
        return await svc.run(sync_state.skip, log.id, reason)
    own = {k: v for k, v in (row.metadata or {}).items() if k != "provider"}
    api, refreshed = _api(svc, row, tokens, "publish"), False
    reconcile = RECONCILERS.get(row.provider.value)
    earlier = None
    if reconcile is not None and not (log.metadata or {}).get("pending") and content.get("contentId"):
        earlier = await svc.run(sync_state.uncertain_publish, row.id, content["contentId"], log.id)
    if earlier is not None:  # the last try may have posted: look (among posts made since it began) first
        found, _looked = await _look_up(reconcile, api, content, own, earlier)
        if found is not None:
            return await _published(svc, log, row, api, {**found, "reconciled": True}, stats)
    while True:
        api.pending, api.heartbeat = (log.metadata or {}).get("pending"), heartbeat
        api.refresh = _refresh_in_place(svc, row.id, api)
        attempt = utcnow()
        try:
            result = await publisher(api, content, own)
            break
        except NotReady as exc:
            stats["providerCalls"] = api.calls
            return await _defer(svc, log, row, exc, stats)
        except RateLimited as exc:
            if exc.details.get("mayHavePosted"):  # the last byte of an upload went: the look-up below, not a retry
                result = await _may_have_posted(reconcile, api, content, own, attempt, exc, row, stats)
                break
            if _beyond_budget(exc, stats, budget):  # nothing sent: tried again once the wait ends
                stats["providerCalls"] = api.calls
                return await svc.run(_wait_for_budget, log.id, exc, stats)
            await _wait_out(exc, stats, budget, f"publish {log.id}", resumes=False)
        except TokenExpired:
            if refreshed:
                raise
            refreshed = True
            row, api = await _refreshed(svc, row.id, api)
        except NexusError as exc:
            if not exc.details.get("mayHavePosted"):
                raise
            result = await _may_have_posted(reconcile, api, content, own, attempt, exc, row, stats)
            break
    return await _published(svc, log, row, api, result, stats)


async def _may_have_posted(reconcile, api: SyncApi, content: dict, own: dict, attempt, exc, row, stats: dict):
    """The post found among those made since ``attempt`` (the publish completes with it), else the failure
    saying the post may exist."""
    found, looked = await _look_up(reconcile, api, content, own, attempt) if reconcile else (None, False)
    if found is not None:
        return {**found, "reconciled": True}
    stats.update(providerCalls=api.calls, mayHavePosted=True)
    raise ProviderError(
        f"{exc.message}. The request reached {row.provider.value} but no clean answer came back, so the "
        f"post may have been made{': it is not among the latest posts yet' if looked else ''}; check "
        "the account before publishing this content again"
        f"{' (a re-publish looks it up first)' if reconcile else ''}",
        provider=row.provider.value,
        mayHavePosted=True,
    ) from None


def _refresh_in_place(svc, integration_id, api: SyncApi):
    """A refresh hook for a publisher that must not start over (an upload session under way): a new access token
    on this same API handle (single-flight, so concurrent expiries refresh once)."""

    async def refresh() -> None:
        _row, tokens = await _fresh_tokens(svc, integration_id, force=True)
        api.tokens = tokens

    return refresh


async def _published(svc, log: IntegrationSyncLog, row: Integration, api: SyncApi, result: dict, stats: dict):
    stats["providerCalls"] = api.calls
    await svc.run(sync_state.record_published, log.id, result)
    return await svc.run(sync_state.finish, log.id, row.id, PUBLISH, extra={**stats, "result": result})


async def _look_up(reconcile, api: SyncApi, content: dict, own: dict, since) -> tuple[dict | None, bool]:
    """(the post made since ``since`` found among the account's latest, whether the lookup worked): a failed
    lookup finds nothing."""
    try:
        return await reconcile(api, content, own, since), True
    except NexusError as exc:
        log.info("looking the post up failed: %s", exc.message)
        return None, False


async def _defer(svc, entry: IntegrationSyncLog, row: Integration, exc, stats: dict) -> IntegrationSyncLog:
    """Back to PENDING until the next look (DEFER_DELAYS), or FAILED once PUBLISH_PROCESSING_TIMEOUT has passed
    since the first deferral (the deadline itself gets one last look)."""
    now, limit = utcnow(), svc.settings.publish_processing_seconds
    previous = (entry.metadata or {}).get("pending") or {}
    since = dt.datetime.fromisoformat(previous["since"]) if previous.get("since") else now
    checks = int(previous.get("checks") or 0) + 1
    waited = (now - since).total_seconds()
    if waited >= limit:
        raise ProviderError(
            f"{row.provider.value}: {exc.message}, {waited / 60:.1f} min after the first look "
            f"(PUBLISH_PROCESSING_TIMEOUT is {limit / 60:.1f} min): gave up, nothing was published",
            provider=row.provider.value,
        )
    delay = dt.timedelta(seconds=DEFER_DELAYS[min(checks - 1, len(DEFER_DELAYS) - 1)])
    run_after = min(now + delay, since + dt.timedelta(seconds=limit))
    pending = {**exc.state, "since": since.isoformat().replace("+00:00", "Z"), "checks": checks, "reason": exc.message}
    deferred = await svc.run(sync_state.defer, entry.id, run_after, pending=pending, extra=stats)
    log.info("publish %s deferred until %s: %s", entry.id, run_after.isoformat(), exc.message)
    return deferred


def logs_of(log_ids) -> list[IntegrationSyncLog]:
    return list(IntegrationSyncLog.select().where(IntegrationSyncLog.id.in_(list(log_ids))))
