"""Publishing content.published to Instagram (an image or a reel) and TikTok (a direct post pulled from a URL).

On real SQLite and PostgreSQL against the emulators: Instagram makes a
container, polls a reel's until FINISHED (a few reads, no minutes), then
publishes it once; a container in ERROR or still processing publishes
nothing; text-only content is refused before any call. TikTok reads the
creator's privacy options, posts with SELF_ONLY unless metadata names another
allowed level, and records the publish id. A missing scope fails with the
scope named; a refused token is refreshed once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import aiohttp
import pytest
from support import clock as shared_clock

from nexusctl import config
from nexusctl.core import connections, inbound, sync_runs
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import keyring_from_settings
from nexusctl.db.fields import utcnow
from nexusctl.db.models import Integration
from nexusctl.enums import Provider, SyncStatus
from nexusctl.providers.sync import publish_media as publish  # IG_POLL_DELAYS lives there

IMAGE = {"type": "image", "url": "https://cdn.nexus.test/p/9/cover.jpg"}
VIDEO = {"type": "video", "url": "https://cdn.nexus.test/p/9/clip.mp4"}
CONTENT = {
    "contentId": "post-9",
    "title": "Our launch (beta) #1",
    "url": "https://nexus.test/p/9_a",
    "description": "What is new",
    "media": [IMAGE],
}
IG_SCOPES = ["instagram_business_basic", "instagram_business_content_publish"]
IG_USER = "17841405793187218"
TT_SCOPES = ["user.info.basic", "video.list", "video.publish"]


@pytest.fixture
def env(database, fresh_emulators, monkeypatch):
    for name, value in fresh_emulators.env().items():
        monkeypatch.setenv(name, value)
    shared_clock.use_file(monkeypatch, fresh_emulators.clock_file)  # this process's product clock is theirs too
    monkeypatch.setattr(publish, "IG_POLL_DELAYS", (0.01,) * 4)  # same number of reads, no waiting
    settings = config.load()
    return settings, keyring_from_settings(settings), fresh_emulators


def _publish(env, user, content=None) -> dict:
    """content.published for this user, then every publish log it queued run; {integration id: log}."""
    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            outcome = await inbound.handle(
                svc, inbound.make("content.published", {**(content or CONTENT), "userId": str(user)})
            )
            return [await sync_runs.run(svc, log["syncLogId"]) for log in outcome["syncLogs"]]

    return {row.integration_id: row for row in asyncio.run(main())}


# --- Instagram --------------------------------------------------------------------------------------------


def _instagram(env, make_integration, scope=IG_SCOPES, *, account_id=True, aged=False):
    ig = env[2]["INSTAGRAM"]
    token = ig.issue(ig.new_grant(list(scope)), "access", 5184000, value="IGAA" + uuid.uuid4().hex, long=True)
    facts = {"userId": ig.account["id"]}
    if account_id:
        facts["accountId"] = IG_USER  # what whoami stored: /me's user_id
    if aged:
        facts["tokenIssuedAt"] = utcnow().isoformat()  # what a connect stores: issued now
    user = uuid.uuid4()
    row = make_integration(
        user_id=user,
        provider=Provider.INSTAGRAM,
        access_token=token.value,
        refresh_token=None,
        metadata={"provider": facts},
    )
    if aged:  # a day passes (the clock the product and the emulators share): old enough for ig_refresh_token
        env[2].advance_clock(25 * 3600)
    return ig, user, row, token


def test_an_instagram_image_post_is_a_container_then_media_publish(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (media,) = ig.records_of("media")
    assert log.metadata["result"] == {"mediaId": media["id"], "containerId": media["container_id"]}
    assert media["media_type"] == "IMAGE" and media["media_url"] == IMAGE["url"]
    assert media["caption"] == "Our launch (beta) #1\nhttps://nexus.test/p/9_a"
    assert ig.calls["create_media"] == 1 and ig.calls["media_publish"] == 1
    assert ig.calls["container_status"] == 0 and ig.calls["whoami"] == 0  # an image is ready; the id was known
    assert log.items_processed == 1

    # No title nor URL: the image goes without a caption. A bare image URL is an image too.
    log = _publish(env, user, {"contentId": "post-10", "media": ["https://cdn.nexus.test/x.JPEG?sig=1"]})[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert ig.records_of("media")[0]["caption"] is None


def test_an_instagram_video_is_a_reel_polled_until_finished(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration, account_id=False)
    ig.reels_processing_polls = 2
    long_title = "x" * 3000
    log = _publish(
        env, user, {**CONTENT, "title": long_title, "media": [{"type": "text", "url": "https://a.b/c"}, VIDEO, IMAGE]}
    )[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (media,) = ig.records_of("media")
    assert media["media_type"] == "VIDEO" and media["media_product_type"] == "REELS"
    assert media["media_url"] == VIDEO["url"] and len(media["caption"]) == 2200
    assert media["caption"].endswith("…\nhttps://nexus.test/p/9_a")
    assert log.metadata["result"] == {"mediaId": media["id"], "containerId": media["container_id"]}
    assert ig.calls["whoami"] == 1  # GET /me?fields=user_id: no account id stored
    assert ig.calls["container_status"] == 3 and ig.calls["media_publish"] == 1


def test_an_instagram_reel_in_error_publishes_nothing(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.reels_outcome = "ERROR"
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: INSTAGRAM"), log.error
    assert "could not process the video" in log.error and "ERROR" in log.error and "2207026" in log.error
    assert "nothing was published" in log.error
    assert ig.calls["media_publish"] == 0 and ig.records_of("media") == []


def _assert_deferred(log, seconds: float, before) -> None:
    """``log`` waits ``seconds`` from when the run deferred it: a moment between ``before`` (taken just before the
    run) and now, whatever the machine's speed (no absolute window around "now")."""
    delay = dt.timedelta(seconds=seconds)
    assert log.run_after is not None and before + delay <= log.run_after <= utcnow() + delay, (log.run_after, before)


def _run_again(env, log_id, settings=None):
    """The daemon's next look at a deferred publish log (its run_after is the runner's business)."""

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings or env[0], env[1], session, direct, None)
            return await sync_runs.run(svc, log_id)

    return asyncio.run(main())


def test_a_reel_still_processing_is_deferred_then_published_once(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.reels_processing_polls = 50  # longer than the first run looks
    before = utcnow()
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING and log.error is None, log.error  # deferred, not failed
    (container,) = ig.containers
    pending = log.metadata["pending"]
    assert pending["containerId"] == container and pending["checks"] == 1 and "still IN_PROGRESS" in pending["reason"]
    _assert_deferred(log, 5, before)
    assert ig.calls["container_status"] == len(publish.IG_POLL_DELAYS) and ig.calls["media_publish"] == 0

    before = utcnow()
    log = _run_again(env, log.id)  # still processing: one status read, deferred a little longer
    assert log.status == SyncStatus.PENDING and log.metadata["pending"]["checks"] == 2
    _assert_deferred(log, 10, before)
    assert log.metadata["pending"]["since"] == pending["since"]  # the deadline counts from the first look
    assert ig.calls["container_status"] == len(publish.IG_POLL_DELAYS) + 1

    ig.containers[container]["polls_left"] = 0  # Instagram is done
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.COMPLETED, log.error
    (media,) = ig.records_of("media")
    assert log.metadata["result"] == {"mediaId": media["id"], "containerId": container}
    assert ig.calls["create_media"] == 1 and ig.calls["media_publish"] == 1  # the same container, published once
    assert log.items_processed == 1


def test_a_reel_is_given_up_after_the_processing_timeout_or_on_error(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.reels_processing_polls = 50
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING
    impatient = env[0]._replace(publish_processing_seconds=0.0)
    log = _run_again(env, log.id, impatient)
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: INSTAGRAM"), log.error
    assert "still IN_PROGRESS" in log.error and "PUBLISH_PROCESSING_TIMEOUT" in log.error
    assert "nothing was published" in log.error and ig.calls["media_publish"] == 0

    log = _publish(env, user, {**CONTENT, "contentId": "post-11", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING
    box = ig.containers[log.metadata["pending"]["containerId"]]
    box["polls_left"], box["outcome"] = 0, "ERROR"
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.FAILED and "could not process the video" in log.error, log.error
    assert ig.calls["media_publish"] == 0 and ig.records_of("media") == []


def test_a_deferred_reel_whose_container_is_already_published_completes_without_posting_again(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.reels_processing_polls = 50
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING, log.error
    container = log.metadata["pending"]["containerId"]
    box = ig.containers[container]
    # Meanwhile the container got published (an earlier media_publish whose answer never came back): the post
    # exists at Instagram, first among the account's media, as the emulator's media_publish would put it.
    box["status_code"] = "PUBLISHED"
    ig.records.setdefault("media", []).insert(
        0,
        {
            "id": "18000000000000077",
            "caption": box["caption"] or None,
            "media_type": "VIDEO",
            "media_product_type": "REELS",
            "media_url": box["url"],
            "container_id": container,
            "permalink": "https://www.instagram.com/p/x/",
            "timestamp": "2026-01-01T00:00:00+0000",
        },
    )
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.COMPLETED, log.error  # not FAILED: the post is there
    assert log.metadata["result"] == {"mediaId": "18000000000000077", "containerId": container, "reconciled": True}
    assert ig.calls["media_publish"] == 0 and len(ig.records_of("media")) == 1  # never published again
    assert "mayHavePosted" not in log.metadata


def test_a_video_story_still_processing_is_deferred_then_published_once_as_a_story(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.stories_processing_polls = 50  # longer than the first run looks
    story = {**CONTENT, "format": "story", "media": [VIDEO]}
    log = _publish(env, user, story)[row.id]
    assert log.status == SyncStatus.PENDING and log.error is None, log.error
    (container,) = ig.containers
    assert ig.containers[container]["media_type"] == "STORIES" and ig.containers[container]["caption"] == ""
    assert log.metadata["pending"]["containerId"] == container and ig.calls["media_publish"] == 0

    ig.containers[container]["polls_left"] = 0  # Instagram is done
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.COMPLETED, log.error
    (published,) = ig.records_of("stories")
    assert log.metadata["result"] == {"mediaId": published["id"], "containerId": container, "story": True}
    assert ig.records_of("media") == [] and ig.calls["create_media"] == 1 and ig.calls["media_publish"] == 1


def test_a_deferred_story_already_published_is_told_from_older_stories_by_its_time(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    ig.stories_processing_polls = 50
    log = _publish(env, user, {**CONTENT, "format": "story", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING, log.error
    container = log.metadata["pending"]["containerId"]
    # Meanwhile an earlier media_publish (its answer lost) published the container: the story is the newest of
    # the account's stories; yesterday's story is older than the container and is not taken for it.
    ig.containers[container]["status_code"] = "PUBLISHED"
    ig.records.setdefault("stories", []).append(
        {"id": "18100000000000001", "media_type": "IMAGE", "timestamp": "2020-01-01T00:00:00+0000"}
    )
    with ig.lock:
        story_id = ig._publish_story(ig.containers[container], container)
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.COMPLETED, log.error
    assert log.metadata["result"] == {"mediaId": story_id, "containerId": container, "reconciled": True, "story": True}
    assert ig.calls["media_publish"] == 0 and len(ig.records_of("stories")) == 2  # never published again


def test_a_story_instagram_cannot_take_is_skipped_before_any_call(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    for media, words in ((None, "has no image or video"), ([IMAGE, VIDEO], "has 2 in its media")):
        content = {"contentId": f"story-{len(words)}", "title": "A story", "format": "story"}
        log = _publish(env, user, {**content, "media": media} if media is not None else content)[row.id]
        assert log.status == SyncStatus.CANCELLED and log.error.startswith("skipped: "), log.error
        assert "An Instagram story is one image or one video" in log.error and words in log.error
    assert sum(ig.calls.values()) == 0


def test_a_deferred_reel_restarting_is_not_taken_for_an_interrupted_run(env, make_integration, monkeypatch):
    """Between a restarted run's start (IN_PROGRESS) and its taking the lease, another daemon's recovery pass
    must not mark it interrupted, however long ago the publish first started."""
    from nexusctl.core import leases
    from nexusctl.core.sync_queue import mark_interrupted, stale_work

    ig, user, row, _ = _instagram(env, make_integration)
    ig.reels_processing_polls = 50
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.PENDING, log.error
    first_start = log.started_at
    env[2].advance_clock(10 * 60)  # the reel has been processing for ten minutes (the shared clock)
    ig.containers[log.metadata["pending"]["containerId"]]["polls_left"] = 0
    seen, real_acquire = [], leases.acquire

    def recovery_pass_then_acquire(name, holder, ttl):
        if not seen:  # another daemon's recovery runs right in the gap
            _pending, orphans = stale_work()
            seen.append([o.id for o in orphans])
            mark_interrupted(orphans)
        return real_acquire(name, holder, ttl)

    monkeypatch.setattr(leases, "acquire", recovery_pass_then_acquire)
    log = _run_again(env, log.id)
    assert seen == [[]]  # not an orphan: it has just (re)started
    assert log.status == SyncStatus.COMPLETED, log.error
    assert ig.calls["media_publish"] == 1 and len(ig.records_of("media")) == 1
    assert log.started_at == first_start  # durationMs spans the whole publish, deferral included
    assert log.metadata["durationMs"] >= 10 * 60 * 1000


def test_instagram_refuses_text_only_content_before_any_call(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration)
    for media in (None, [], [{"type": "document", "url": "https://nexus.test/a.pdf"}]):
        content = {"contentId": "post-12", "title": "Just words", "url": "https://nexus.test/p/12"}
        log = _publish(env, user, {**content, "media": media} if media is not None else content)[row.id]
        assert log.status == SyncStatus.CANCELLED and log.error.startswith("skipped: "), log.error  # not a failure
        assert "Instagram cannot post text only" in log.error and log.metadata["skipped"] is True
    assert sum(ig.calls.values()) == 0


def test_a_text_only_publish_queued_before_this_release_is_skipped_when_it_runs(env, make_integration):
    """Logs a content.published queued PENDING for text only (as earlier releases did) end skipped too."""
    from nexusctl.db.models import IntegrationSyncLog

    ig, _user, row, _ = _instagram(env, make_integration)
    content = {"contentId": "post-13", "title": "Just words"}
    log = IntegrationSyncLog.create(
        integration=row.id,
        action="publish",
        resource_type="content",
        resource_id="post-13",
        status=SyncStatus.PENDING,
        metadata={"trigger": "content.published", "content": content},
    )
    done = _run_again(env, log.id)
    assert done.status == SyncStatus.CANCELLED and done.error.startswith("skipped: Instagram cannot post text only")
    assert sum(ig.calls.values()) == 0 and Integration.get_by_id(row.id).last_error is None


def test_instagram_without_the_publish_permission_fails_naming_it(env, make_integration):
    ig, user, row, _ = _instagram(env, make_integration, scope=["instagram_business_basic"])
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: INSTAGRAM"), log.error
    assert "(#10) Application does not have permission for this action" in log.error
    assert "instagram_business_content_publish" in log.error
    assert ig.calls["create_media"] == 1 and ig.calls["refresh"] == 0 and ig.records_of("media") == []


def test_a_refused_instagram_token_is_refreshed_once_and_the_post_made_once(env, make_integration):
    ig, user, row, token = _instagram(env, make_integration, aged=True)
    ig.fail_next(
        "create_media",
        400,
        {
            "error": {
                "message": "Error validating access token: Session has expired.",
                "code": 190,
                "error_subcode": 463,
                "type": "OAuthException",
            }
        },
    )
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert ig.calls["refresh"] == 1 and ig.calls["create_media"] == 2 and ig.calls["media_publish"] == 1
    assert len(ig.records_of("media")) == 1 and len(ig.containers) == 1  # the refused call made none
    stored = connections.tokens_of(env[1], Integration.get_by_id(row.id)).access_token
    assert stored != token.value and ig.valid_access(stored)  # the renewed 60-day token was kept


# --- TikTok -----------------------------------------------------------------------------------------------


def _tiktok(env, make_integration, scope=TT_SCOPES, metadata=None):
    tt = env[2]["TIKTOK"]
    grant = tt.new_grant(list(scope), open_id=tt.account["open_id"])
    access = tt.issue(grant, "access", 86400, value="act." + uuid.uuid4().hex)
    refresh = tt.issue(grant, "refresh", 31536000, value="rft." + uuid.uuid4().hex)
    user = uuid.uuid4()
    row = make_integration(
        user_id=user,
        provider=Provider.TIKTOK,
        access_token=access.value,
        refresh_token=refresh.value,
        metadata=metadata or {},
    )
    return tt, user, row, access


def test_a_tiktok_direct_post_pulls_the_video_as_self_only_by_default(env, make_integration):
    tt, user, row, _ = _tiktok(env, make_integration)
    log = _publish(env, user, {**CONTENT, "media": [IMAGE, VIDEO]})[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (post,) = tt.records_of("publishes")
    assert log.metadata["result"] == {
        "publishId": post["publish_id"],
        "privacyLevel": "SELF_ONLY",
        "status": "PROCESSING_DOWNLOAD",
    }
    assert post["source_info"] == {"source": "PULL_FROM_URL", "video_url": VIDEO["url"]}
    assert post["post_info"] == {
        "title": "Our launch (beta) #1\nhttps://nexus.test/p/9_a",
        "privacy_level": "SELF_ONLY",
        "disable_comment": False,
        "disable_duet": False,
        "disable_stitch": True,
    }  # the creator's own stitch setting
    assert tt.calls["creator_info"] == 1 and tt.calls["publish_init"] == 1 and tt.calls["publish_status"] == 1


def test_tiktok_uses_the_privacy_level_the_metadata_names_when_the_creator_allows_it(env, make_integration):
    tt, user, row, _ = _tiktok(env, make_integration, metadata={"publishPrivacyLevel": "PUBLIC_TO_EVERYONE"})
    # An unaudited app may only post SELF_ONLY: TikTok's refusal is the log's error.
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.FAILED and "unaudited_client_can_only_post_to_private_accounts" in log.error
    assert tt.records_of("publishes") == []

    tt.audited = True
    log = _publish(env, user, {**CONTENT, "contentId": "post-13", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert tt.records_of("publishes")[0]["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"

    # A level the creator does not offer is refused before any post is attempted.
    tt.creator["privacy_level_options"] = ["MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    calls = tt.calls["publish_init"]
    log = _publish(env, user, {**CONTENT, "contentId": "post-14", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("VALIDATION_ERROR"), log.error
    assert "PUBLIC_TO_EVERYONE" in log.error and "MUTUAL_FOLLOW_FRIENDS, SELF_ONLY" in log.error
    assert tt.calls["publish_init"] == calls


def test_tiktok_needs_a_video_and_reports_a_failed_pull(env, make_integration):
    tt, user, row, _ = _tiktok(env, make_integration)
    log = _publish(env, user)[row.id]  # an image only: TikTok cannot take it, skipped (not a failure)
    assert log.status == SyncStatus.CANCELLED and log.error.startswith("skipped: "), log.error
    assert "no video" in log.error and sum(tt.calls.values()) == 0

    tt.publish_status_after_init = "FAILED"
    log = _publish(env, user, {**CONTENT, "contentId": "post-15", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.FAILED and "failed at TikTok: file_format_check_failed" in log.error
    assert tt.calls["publish_init"] == 1


def test_tiktok_without_video_publish_fails_naming_the_scope(env, make_integration):
    tt, user, row, _ = _tiktok(env, make_integration, scope=["user.info.basic", "video.list"])
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: TIKTOK"), log.error
    assert "video.publish" in log.error
    assert tt.calls["refresh"] == 0 and tt.calls["publish_init"] == 0 and tt.records_of("publishes") == []


def test_a_refused_tiktok_token_is_refreshed_once_and_the_video_posted_once(env, make_integration):
    tt, user, row, access = _tiktok(env, make_integration)
    refused = {
        "data": {},
        "error": {
            "code": "access_token_invalid",
            "message": "The access token is invalid or not found in the request.",
            "log_id": "2024",
        },
    }
    tt.fail_next("publish_init", 401, refused)
    log = _publish(env, user, {**CONTENT, "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert tt.calls["refresh"] == 1 and tt.calls["publish_init"] == 2 and len(tt.records_of("publishes")) == 1

    # A refused status fetch after the post was accepted is not a failure (and no second post).
    tt.fail_next("publish_status", 401, refused)
    log = _publish(env, user, {**CONTENT, "contentId": "post-16", "media": [VIDEO]})[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert log.metadata["result"]["status"] is None and len(tt.records_of("publishes")) == 2
    assert tt.calls["refresh"] == 1


def test_a_publish_meeting_another_publish_of_its_integration_waits_its_turn(env, make_integration):
    from nexusctl.core import leases

    ig, user, row, _ = _instagram(env, make_integration)
    assert leases.acquire(f"sync:{row.id}:publish", "another-run", 60)  # a post to this integration is being made
    before = utcnow()
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.PENDING and log.error is None, log.error  # not FAILED: it goes next
    _assert_deferred(log, 5, before)
    assert sum(ig.calls.values()) == 0
    leases.release(f"sync:{row.id}:publish", "another-run")
    log = _run_again(env, log.id)
    assert log.status == SyncStatus.COMPLETED, log.error
    assert ig.calls["create_media"] == 1 and ig.calls["media_publish"] == 1
