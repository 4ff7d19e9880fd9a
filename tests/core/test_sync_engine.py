"""The sync engine on real SQLite and PostgreSQL against the provider emulators.

A run reads every page, records the log, turns changes into events (new,
changed, and after a full run gone), emits nothing for data it has seen,
waits out a rate limit within its budget or stops and resumes, refreshes a
refused token once, never overlaps itself, and can be cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import aiohttp
import pytest
from support.clock import pass_until, use_file

from nexusctl import config
from nexusctl.core import integrations, rate_budget, sync_runs, sync_state
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import keyring_from_settings
from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent, SyncCursor, Webhook, WebhookDelivery
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import SyncFailed, SyncNotStarted
from nexusctl.providers.scopes import requested


@pytest.fixture
def env(database, fresh_emulators, monkeypatch):
    for name, value in fresh_emulators.env().items():
        monkeypatch.setenv(name, value)
    use_file(monkeypatch, fresh_emulators.clock_file)  # the product's clock here reads the shared one (read again)
    settings = config.load()
    return settings, keyring_from_settings(settings), fresh_emulators


def _channels(n, start=0):
    return [{"id": f"C{i:08d}", "name": f"chan-{i}", "num_members": i} for i in range(start, start + n)]


def _slack(env, make_integration):
    _settings, _keyring, emu = env
    slack = emu["SLACK"]
    token = slack.issue(slack.new_grant(list(requested(Provider.SLACK))), "access", None).value  # what is asked for
    return make_integration(provider=Provider.SLACK, access_token=token, refresh_token=None), slack


def _run(env, integration, action=None, *, full=False, progress=None, budget=None):
    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            (log,) = sync_runs.plan(integration.id, action, full=full)
            return await sync_runs.run(svc, log.id, progress=progress, budget=budget)

    return asyncio.run(main())


class _MoveTimePastWaits(logging.Handler):
    """Moves the shared clock past a wait a run says it starts ("rate limited; waiting N s"): the run counts its
    wait from before that line (nexusctl.clock.wait's ``since``), so it ends at its first look at the clock."""

    def __init__(self, emulators):
        super().__init__(logging.INFO)
        self.emulators = emulators

    def emit(self, record: logging.LogRecord) -> None:
        said = re.search(r"rate limited; waiting (\d+) s", record.getMessage())
        if said:
            self.emulators.advance_clock(float(said.group(1)) + 1)


@contextlib.contextmanager
def _time_passes_the_waits(emulators):
    logger, handler = logging.getLogger(sync_runs.__name__), _MoveTimePastWaits(emulators)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _events(integration, event_type) -> int:
    return (
        OutboxEvent.select()
        .where((OutboxEvent.integration_id == integration.id) & (OutboxEvent.type == event_type))
        .count()
    )


def test_a_run_records_changes_once_and_a_full_run_finds_what_is_gone(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))
    hook = Webhook.create(integration=integration.id, url="https://hooks.example.com/nexus", events=["channel.*"])

    first = _run(env, integration)
    assert (first.status, first.items_processed, first.metadata["pages"], first.metadata["created"]) == (
        SyncStatus.COMPLETED,
        450,
        3,
        450,
    )
    assert _events(integration, "channel.created") == 450 and _events(integration, "integration.synced") == 1
    assert Integration.get_by_id(integration.id).last_sync_at is not None

    again = _run(env, integration)  # the same data: nothing new to say
    assert (again.status, again.metadata["created"], again.metadata["updated"]) == (SyncStatus.COMPLETED, 0, 0)
    assert _events(integration, "channel.created") == 450 and _events(integration, "channel.updated") == 0

    rows = _channels(450)
    rows[10]["name"] = "renamed"
    rows += _channels(1, start=450)
    del rows[20:22]
    slack.set_records("channels", rows)
    changed = _run(env, integration)
    assert (changed.metadata["created"], changed.metadata["updated"], changed.metadata["deleted"]) == (1, 1, 0)
    full = _run(env, integration, full=True)
    assert (full.metadata["created"], full.metadata["updated"], full.metadata["deleted"]) == (0, 0, 2)
    gone = [e.data["externalId"] for e in OutboxEvent.select().where(OutboxEvent.type == "channel.deleted")]
    assert sorted(gone) == ["C00000020", "C00000021"]
    updated = OutboxEvent.get(OutboxEvent.type == "channel.updated")
    assert updated.data["item"]["name"] == "renamed" and updated.data["provider"] == "SLACK"
    # Each change is queued to the webhook that subscribed to channel.*, in the page's transaction.
    queued = {
        event: WebhookDelivery.select()
        .where((WebhookDelivery.webhook == hook.id) & (WebhookDelivery.event == event))
        .count()
        for event in ("channel.created", "channel.updated", "channel.deleted", "integration.synced")
    }
    assert queued == {"channel.created": 451, "channel.updated": 1, "channel.deleted": 2, "integration.synced": 0}
    payload = WebhookDelivery.get(WebhookDelivery.event == "channel.deleted").payload
    assert payload["type"] == "channel.deleted" and payload["data"]["externalId"] in ("C00000020", "C00000021")


def test_a_rate_limit_midway_is_waited_out(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))
    pages = []

    def progress(items, counts):
        pages.append(items)
        if len(pages) == 1:
            slack.rate_limit_next("conversations.list", retry_after=1)

    with _time_passes_the_waits(env[2]):
        done = _run(env, integration, progress=progress)
    assert (done.status, done.items_processed) == (SyncStatus.COMPLETED, 450)
    assert done.metadata["rateLimitWaits"] == 1 and done.metadata["rateLimitWaitedSeconds"] == 1.0
    assert slack.calls["conversations.list"] == 4  # three pages and the throttled retry


def test_a_rate_limit_beyond_the_budget_fails_and_the_next_run_resumes(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))

    def progress(items, counts):
        # 6 s: beyond the run's budget of 5, and the integration's shared budget keeps it, so the resumed run
        # (default budget) waits out what is left of it first: time passes it once the run says it waits.
        slack.rate_limit_next("conversations.list", retry_after=6)

    failed = _run(env, integration, progress=progress, budget=5)
    assert (failed.status, failed.items_processed) == (SyncStatus.FAILED, 200)
    assert failed.error.startswith("RATE_LIMITED:") and "resumes from here" in failed.error
    assert Integration.get_by_id(integration.id).last_error == failed.error
    assert SyncCursor.select().count() == 1

    before = slack.calls["conversations.list"]
    with _time_passes_the_waits(env[2]):
        resumed = _run(env, integration)
    assert resumed.status == SyncStatus.COMPLETED and resumed.items_processed == 250
    assert slack.calls["conversations.list"] - before == 2  # pages two and three, not the first again
    assert _events(integration, "channel.created") == 450 and SyncCursor.select().count() == 0


def test_a_wait_the_budget_holds_defers_the_run_and_the_next_sync_run_takes_it_when_it_ends(env, make_integration):
    """Another process (the daemon's proxy) was told to wait 10 minutes: the run calls nothing and goes back to
    PENDING until then, a `sync run` before then says until when, and one after it runs that same log."""
    settings, keyring, emu = env
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))
    svc = Runtime(settings, keyring, None, direct, None)
    asyncio.run(rate_budget.note(svc, integration.id, 600, reason="proxy"))
    rate_budget._local.clear()  # what this process knows comes from the table, as for another process
    rate_budget._checked.clear()

    deferred = _run(env, integration)
    assert (deferred.status, deferred.error, deferred.items_processed) == (SyncStatus.PENDING, None, 0)
    assert deferred.metadata["errorCode"] == "RATE_LIMITED" and deferred.metadata["rateLimitedUntil"]
    assert slack.calls["conversations.list"] == 0
    assert Integration.get_by_id(integration.id).last_error is None  # not a failure
    with pytest.raises(SyncNotStarted, match="deferred until"):
        sync_runs.plan(integration.id, "fetch_channels")

    pass_until(emu, deferred.run_after)
    (again,) = sync_runs.plan(integration.id, "fetch_channels")
    assert again.id == deferred.id  # the deferred run itself, not a second one

    async def run_it():
        async with aiohttp.ClientSession(trust_env=False) as session:
            return await sync_runs.run(Runtime(settings, keyring, session, direct, None), again.id)

    done = asyncio.run(run_it())
    assert (done.status, done.items_processed) == (SyncStatus.COMPLETED, 450)


def test_a_token_refused_midway_is_refreshed_once_and_the_page_retried(env, make_integration):
    _settings, _keyring, emu = env
    discord = emu["DISCORD"]
    grant = discord.new_grant(["identify", "guilds"])
    access = discord.issue(grant, "access", 3600)
    refresh = discord.issue(grant, "refresh", None)
    integration = make_integration(provider=Provider.DISCORD, access_token=access.value, refresh_token=refresh.value)
    discord.set_records("guilds", [{"id": str(1000 + i), "name": f"g{i}"} for i in range(450)])

    def progress(items, counts):
        if discord.calls["refresh"] == 0:
            with discord.lock:
                discord.tokens[access.value].alive = False  # the user's token dies mid-run

    done = _run(env, integration, progress=progress)
    assert (done.status, done.items_processed) == (SyncStatus.COMPLETED, 450)
    assert discord.calls["refresh"] == 1


def test_two_runs_of_one_action_never_overlap(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(50))
    (pending,) = sync_runs.plan(integration.id, "fetch_channels")
    with pytest.raises(SyncFailed, match="already running"):
        sync_runs.plan(integration.id, "fetch_channels")
    # Two logs anyway (two processes racing past the check): the run lease lets one through.
    other = IntegrationSyncLog.create(integration=integration.id, action="fetch_channels", status=SyncStatus.PENDING)
    slack.hold("conversations.list")  # the first run's first page is held at Slack: it holds the run lease
    settings, keyring, _ = env

    async def both():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            first = asyncio.create_task(sync_runs.run(svc, pending.id))
            while not slack.calls["conversations.list"]:  # the first run is at Slack (it took the lease before)
                await asyncio.sleep(0.01)
            try:
                second = await sync_runs.run(svc, other.id)  # meanwhile: refused by the lease, not run
            finally:
                slack.release("conversations.list")
            return [await first, second]

    results = sorted(r.status.value for r in asyncio.run(both()))
    assert results == ["COMPLETED", "FAILED"]
    assert "another fetch_channels sync of this integration is running" in IntegrationSyncLog.get_by_id(other.id).error


def test_a_cancelled_run_stops_after_its_page_and_resumes_next_time(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))
    holder = {}

    def progress(items, counts):
        log = IntegrationSyncLog.select().where(IntegrationSyncLog.status == SyncStatus.IN_PROGRESS).get()
        holder["log"] = sync_state.cancel(log.id)

    stopped = _run(env, integration, progress=progress)
    assert (stopped.status, stopped.items_processed) == (SyncStatus.CANCELLED, 200)
    with pytest.raises(Exception, match="only PENDING or IN_PROGRESS"):
        sync_state.cancel(stopped.id)
    resumed = _run(env, integration)
    assert resumed.items_processed == 250 and _events(integration, "channel.created") == 450


def test_a_run_cancelled_during_its_last_page_stays_cancelled(env, make_integration):
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(450))
    pages = []

    def progress(items, counts):
        pages.append(items)
        if len(pages) == 3:  # the operator's cancel lands while the last page is applied
            log = IntegrationSyncLog.select().where(IntegrationSyncLog.status == SyncStatus.IN_PROGRESS).get()
            sync_state.cancel(log.id)

    stopped = _run(env, integration, progress=progress)
    assert pages == [200, 200, 50]
    assert (stopped.status, stopped.items_processed) == (SyncStatus.CANCELLED, 450)  # not overwritten COMPLETED
    assert stopped.error == "cancelled by an operator"
    assert IntegrationSyncLog.get_by_id(stopped.id).status == SyncStatus.CANCELLED
    assert _events(integration, "integration.synced") == 0 and _events(integration, "channel.created") == 450
    assert Integration.get_by_id(integration.id).last_sync_at is None


def test_an_inactive_integration_or_unknown_action_is_refused(env, make_integration):
    integration, _ = _slack(env, make_integration)
    with pytest.raises(Exception, match="has no action 'fetch_posts'; it has: fetch_channels"):
        sync_runs.plan(integration.id, "fetch_posts")
    integrations.update(integration.id, is_active=False)  # as PATCH isActive: false does
    with pytest.raises(SyncFailed, match="is inactive"):
        sync_runs.plan(integration.id, None)


# --- publishing (content.published) ----------------------------------------------------------


def _ingest_and_run(env, payload):
    from nexusctl.core import inbound

    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            outcome = await inbound.handle(svc, inbound.make("content.published", payload))
            return [await sync_runs.run(svc, log["syncLogId"]) for log in outcome["syncLogs"]]

    return {row.integration_id: row for row in asyncio.run(main())}


def test_published_content_is_posted_once_to_each_capable_integration(env, make_integration):
    import uuid

    _settings, _keyring, emu = env
    user = uuid.uuid4()
    slack, x = emu["SLACK"], emu["TWITTER"]
    slack.set_records("channels", _channels(3))
    on_slack = make_integration(
        user_id=user,
        provider=Provider.SLACK,
        refresh_token=None,
        access_token=slack.issue(slack.new_grant(["chat:write"]), "access", None).value,
        metadata={"publishChannel": "chan-2"},
    )
    on_x = make_integration(
        user_id=user,
        provider=Provider.TWITTER,
        refresh_token=None,
        access_token=x.issue(x.new_grant(["tweet.write"]), "access", 3600).value,
    )
    no_channel = make_integration(user_id=user, provider=Provider.SLACK, refresh_token=None, access_token="unused")
    video_only = make_integration(user_id=user, provider=Provider.YOUTUBE)
    content = {"userId": str(user), "contentId": "post-9", "title": "Our launch", "url": "https://nexus.test/p/9"}

    runs = _ingest_and_run(env, content)
    assert runs[on_slack.id].status == SyncStatus.COMPLETED and runs[on_x.id].status == SyncStatus.COMPLETED
    assert slack.records_of("messages") == [
        {
            "channel": "C00000002",
            "text": "Our launch\nhttps://nexus.test/p/9",
            "ts": runs[on_slack.id].metadata["result"]["ts"],
        }
    ]
    assert [p["text"] for p in x.records_of("posted")] == ["Our launch\nhttps://nexus.test/p/9"]
    assert runs[on_x.id].metadata["result"]["postId"] == x.records_of("posted")[0]["id"]
    assert "publishChannel" in runs[no_channel.id].error and runs[no_channel.id].status == SyncStatus.FAILED
    # Text only to YouTube: skipped with the reason, not a failure of that integration.
    assert runs[video_only.id].status == SyncStatus.CANCELLED, runs[video_only.id].error
    assert runs[video_only.id].error == "skipped: YouTube takes videos only: the content has no video in its media"

    # X refuses the same text twice: the run fails with the provider's own words, nothing is retried.
    again = _ingest_and_run(env, {**content, "contentId": "post-10"})
    assert again[on_x.id].status == SyncStatus.FAILED and "duplicate content" in again[on_x.id].error
    assert len(x.records_of("posted")) == 1 and x.calls["create_tweet"] == 2


def test_discord_posts_as_the_bot_and_says_what_is_missing(env, make_integration, monkeypatch):
    import uuid

    _settings, keyring, emu = env
    discord = emu["DISCORD"]
    me = discord.account["id"]
    discord.set_records("guilds", [{"id": "555000000", "name": "Ours", "owner_id": me, "members": {me: "0"}}])
    discord.set_records(
        "channels",
        [
            {"id": "555000111", "name": "announcements", "guild_id": "555000000"},
            {"id": "555000222", "name": "locked", "guild_id": "555000000", "botCanPost": False},
        ],
    )
    user = uuid.uuid4()

    def connected(channel):
        token = discord.issue(discord.new_grant(["identify", "guilds"]), "access", 3600).value
        return make_integration(
            user_id=user, provider=Provider.DISCORD, access_token=token, metadata={"publishChannel": channel}
        )

    posting, locked = connected("555000111"), connected("555000222")
    content = {"userId": str(user), "contentId": "post-3", "title": "Hello Discord", "url": "https://nexus.test/3"}

    without_bot = _ingest_and_run(env, content)
    assert without_bot[posting.id].error.startswith("PROVIDER_NOT_CONFIGURED: DISCORD_BOT_TOKEN: not set")

    monkeypatch.setenv("DISCORD_BOT_TOKEN", discord.bot_token)
    with_bot = (config.load(), keyring, emu)
    runs = _ingest_and_run(with_bot, {**content, "contentId": "post-4"})
    assert runs[posting.id].status == SyncStatus.COMPLETED
    (message,) = discord.records_of("messages")
    assert message == {
        "id": runs[posting.id].metadata["result"]["messageId"],
        "channel_id": "555000111",
        "content": "Hello Discord\nhttps://nexus.test/3",
    }
    assert runs[locked.id].status == SyncStatus.FAILED and "may not post in that channel" in runs[locked.id].error
    stored = " ".join(str(r.error) + str(r.metadata) for r in IntegrationSyncLog.select())
    assert discord.bot_token not in stored


def test_a_run_that_meets_a_key_this_process_lacks_waits_for_one_that_has_it(env, make_integration):
    """A daemon left on the old key by a rotation: the run goes back to PENDING for another daemon, not FAILED,
    and the integration's health is not touched; a runner with the key then completes it."""
    import datetime as dt

    from nexusctl.crypto import Keyring, key_id
    from nexusctl.db.fields import utcnow
    from nexusctl.db.secrets import seal
    from nexusctl.errors import KeyNotConfigured

    settings, keyring, _ = env
    integration, slack = _slack(env, make_integration)
    slack.set_records("channels", _channels(3))
    new = bytes(range(50, 82))
    rotated = Keyring(new, [bytes(range(32))])  # what `keys rotate` ran with: the new key, the old one kept
    row = Integration.get_by_id(integration.id)
    seal(
        rotated,
        row,
        "access_token",
        slack.issue(slack.new_grant(list(requested(Provider.SLACK))), "access", None).value,
    )
    row.save()

    async def main(with_keyring):
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, with_keyring, session, direct, None)
            (log,) = sync_runs.plan(integration.id, None)
            return await sync_runs.run(svc, log.id)

    waiting = asyncio.run(main(keyring))  # this process has only the old key
    assert waiting.status == SyncStatus.PENDING and waiting.error is None
    assert waiting.metadata["waitingForKey"] == key_id(new) and waiting.run_after > utcnow() + dt.timedelta(seconds=5)
    assert Integration.get_by_id(integration.id).last_error is None
    with pytest.raises(KeyNotConfigured) as refused:  # the API's check before planning
        sync_runs.plan(integration.id, None, keyring=keyring)
    assert refused.value.code == "ENCRYPTION_KEY_MISSING" and refused.value.http_status == 503

    async def resume():
        async with aiohttp.ClientSession(trust_env=False) as session:
            return await sync_runs.run(Runtime(settings, rotated, session, direct, None), waiting.id)

    done = asyncio.run(resume())
    assert (done.status, done.items_processed) == (SyncStatus.COMPLETED, 3)
