"""A post whose creating call got no clean answer: looked up, never blindly made twice.

On real SQLite and PostgreSQL against the emulators (``lose_next_answer``: the
provider makes the post, the answer is lost as a 502; ``fail_next``: a 502
before anything is made). X and Facebook pages: the account's latest posts
are read and a post found there completes the run (``reconciled``); not found,
the run fails saying the post may exist (``metadata.mayHavePosted``), and a
re-publish of that content looks it up first. Instagram asks the container
(published at most once). LinkedIn has no cheap lookup: the log says so. A
clean refusal is not "may have posted".
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from nexusctl import config
from nexusctl.core import inbound, sync_runs
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import keyring_from_settings
from nexusctl.enums import Provider, SyncStatus
from nexusctl.providers.sync import publish_media

CONTENT = {"contentId": "post-9", "title": "Our launch", "url": "https://nexus.test/p/9"}
X_SCOPES = ["tweet.read", "users.read", "tweet.write"]


@pytest.fixture
def env(database, fresh_emulators, monkeypatch):
    for name, value in fresh_emulators.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(publish_media, "IG_POLL_DELAYS", (0.01,) * 4)
    settings = config.load()
    return settings, keyring_from_settings(settings), fresh_emulators


def _publish(env, user, content=None, event_id=None):
    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            event = inbound.make(
                "content.published",
                {**(content or CONTENT), "userId": str(user)},
                event_id=event_id or uuid.uuid4().hex,
            )
            outcome = await inbound.handle(svc, event)
            return [await sync_runs.run(svc, log["syncLogId"]) for log in outcome["syncLogs"]]

    (log,) = asyncio.run(main())
    return log


def _x(env, make_integration):
    x = env[2]["TWITTER"]
    token = x.issue(x.new_grant(X_SCOPES), "access", 7200).value
    user = uuid.uuid4()
    make_integration(user_id=user, provider=Provider.TWITTER, access_token=token, refresh_token=None)
    return x, user


def test_an_x_post_whose_answer_was_lost_is_found_and_not_made_again(env, make_integration):
    x, user = _x(env, make_integration)
    x.lose_next_answer("create_tweet")
    log = _publish(env, user)
    assert log.status == SyncStatus.COMPLETED, log.error
    (tweet,) = x.records_of("posted")
    assert log.metadata["result"] == {"postId": tweet["id"], "reconciled": True}
    assert x.calls["create_tweet"] == 1 and x.calls["tweets"] == 1 and "mayHavePosted" not in log.metadata


def test_an_x_post_not_found_fails_as_may_have_posted_and_a_re_publish_looks_first(env, make_integration):
    x, user = _x(env, make_integration)
    x.fail_next("create_tweet", 502)  # a gateway error: nothing made (X's timeline says so)
    log = _publish(env, user)
    assert log.status == SyncStatus.FAILED and log.metadata["mayHavePosted"] is True, log.error
    assert "the post may have been made: it is not among the latest posts yet" in log.error
    assert "check the account before publishing this content again (a re-publish looks it up first)" in log.error
    assert x.records_of("posted") == []

    again = _publish(env, user)  # the operator publishes the content again: looked up (nothing), then posted
    assert again.status == SyncStatus.COMPLETED, again.error
    assert again.metadata["result"] == {"postId": x.records_of("posted")[0]["id"]}
    assert x.calls["tweets"] == 2 and x.calls["create_tweet"] == 2 and len(x.records_of("posted")) == 1


def test_an_older_post_of_the_same_link_is_not_taken_for_the_lost_one(env, make_integration):
    x, user = _x(env, make_integration)
    week_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 7 * 86400))
    x.set_records(
        "tweets",
        [
            {
                "id": "1700000000000000001",
                "text": "Shared last week https://t.co/abc",
                "edit_history_tweet_ids": ["1700000000000000001"],
                "created_at": week_ago,
                "entities": {"urls": [{"expanded_url": CONTENT["url"]}]},
            }
        ],
    )
    x.fail_next("create_tweet", 502)  # nothing made this time
    log = _publish(env, user)
    # The week-old tweet with the same link is not this post: the run says the post may exist, not "found".
    assert log.status == SyncStatus.FAILED and log.metadata["mayHavePosted"] is True, log.error
    assert "reconciled" not in (log.metadata.get("result") or {})

    again = _publish(env, user)  # the re-publish looks (nothing new since the failed try), then posts
    assert again.status == SyncStatus.COMPLETED, again.error
    assert again.metadata["result"] == {"postId": x.records_of("posted")[0]["id"]}


def test_a_re_publish_after_an_unverified_post_finds_it_instead_of_posting_twice(env, make_integration):
    x, user = _x(env, make_integration)
    x.lose_next_answer("create_tweet")
    x.fail_next("tweets", 503)  # and the lookup fails too: nobody knows
    log = _publish(env, user)
    assert log.status == SyncStatus.FAILED and log.metadata["mayHavePosted"] is True
    assert "the post may have been made; check the account" in log.error

    again = _publish(env, user)
    assert again.status == SyncStatus.COMPLETED, again.error
    (tweet,) = x.records_of("posted")
    assert again.metadata["result"] == {"postId": tweet["id"], "reconciled": True}
    assert x.calls["create_tweet"] == 1  # found, not made twice

    third = _publish(env, user)  # that publish completed: a new one is a new post (X refuses the same text)
    assert third.status == SyncStatus.FAILED and "duplicate content" in third.error
    assert "mayHavePosted" not in third.metadata and x.calls["create_tweet"] == 2


def test_a_facebook_page_post_whose_answer_was_lost_is_found_on_the_page(env, make_integration):
    fb = env[2]["FACEBOOK"]
    fb.set_records("pages", [{"id": "104000000000001", "name": "Page"}])
    token = fb.issue(
        fb.new_grant(["public_profile", "pages_show_list", "pages_read_engagement", "pages_manage_posts"]),
        "access",
        5184000,
        value="EAAB" + uuid.uuid4().hex,
    )
    user = uuid.uuid4()
    make_integration(user_id=user, provider=Provider.FACEBOOK, access_token=token.value, refresh_token=None)
    fb.lose_next_answer("feed")
    log = _publish(env, user)
    assert log.status == SyncStatus.COMPLETED, log.error
    (post,) = fb.records_of("posts")
    assert log.metadata["result"] == {"postId": post["id"], "reconciled": True} and fb.calls["feed"] == 1


def test_instagram_asks_the_container_whether_it_was_published(env, make_integration):
    ig = env[2]["INSTAGRAM"]
    token = ig.issue(
        ig.new_grant(["instagram_business_basic", "instagram_business_content_publish"]),
        "access",
        5184000,
        value="IGAA" + uuid.uuid4().hex,
        long=True,
    )
    user = uuid.uuid4()
    make_integration(
        user_id=user,
        provider=Provider.INSTAGRAM,
        access_token=token.value,
        refresh_token=None,
        metadata={"provider": {"userId": ig.account["id"], "accountId": "17841405793187218"}},
    )
    content = {**CONTENT, "media": [{"type": "image", "url": "https://cdn.nexus.test/9.jpg"}]}
    ig.lose_next_answer("media_publish")  # published, answer lost: the container says PUBLISHED
    log = _publish(env, user, content)
    assert log.status == SyncStatus.COMPLETED, log.error
    (media,) = ig.records_of("media")
    assert log.metadata["result"] == {"mediaId": media["id"], "containerId": media["container_id"], "reconciled": True}
    assert ig.calls["media_publish"] == 1

    ig.fail_next("media_publish", 502)  # nothing published: the container is FINISHED, published now, once
    log = _publish(env, user, {**content, "contentId": "post-10"})
    assert log.status == SyncStatus.COMPLETED, log.error
    assert len(ig.records_of("media")) == 2 and ig.calls["media_publish"] == 3
    assert log.metadata["result"]["reconciled"] is True and len(ig.containers) == 2


def test_linkedin_without_a_lookup_says_the_post_may_exist_and_a_clean_refusal_does_not(env, make_integration):
    li = env[2]["LINKEDIN"]
    grant = li.new_grant(["openid", "profile", "w_member_social"])
    user = uuid.uuid4()
    make_integration(
        user_id=user,
        provider=Provider.LINKEDIN,
        access_token=li.issue(grant, "access", 3600).value,
        refresh_token=li.issue(grant, "refresh", 86400).value,
    )
    li.fail_next("create_post", 504)
    log = _publish(env, user)
    assert log.status == SyncStatus.FAILED and log.metadata["mayHavePosted"] is True, log.error
    assert "the post may have been made; check the account before publishing this content again" in log.error
    assert "re-publish looks" not in log.error  # LinkedIn: nothing to look in

    li.fail_next("create_post", 422, {"message": "Invalid commentary", "status": 422})
    log = _publish(env, user, {**CONTENT, "contentId": "post-11"})
    assert log.status == SyncStatus.FAILED and "mayHavePosted" not in log.metadata
    assert "may have been made" not in log.error


def test_a_publish_whose_process_died_may_have_posted_and_a_re_publish_looks_first(env, make_integration):
    import datetime as dt

    from nexusctl.core.sync_queue import mark_interrupted, stale_work
    from nexusctl.db.fields import utcnow
    from nexusctl.db.models import IntegrationSyncLog

    x, user = _x(env, make_integration)
    _publish(env, user)  # posted once
    (log,) = IntegrationSyncLog.select()
    long_ago = utcnow() - dt.timedelta(minutes=3)
    IntegrationSyncLog.update(status=SyncStatus.IN_PROGRESS, started_at=long_ago, updated_at=long_ago).where(
        IntegrationSyncLog.id == log.id
    ).execute()  # as if its process died before recording the post
    _pending, orphans = stale_work()
    assert [o.id for o in orphans] == [log.id]
    mark_interrupted(orphans)
    dead = IntegrationSyncLog.get_by_id(log.id)
    assert dead.status == SyncStatus.FAILED and dead.metadata["mayHavePosted"] is True
    assert "the post may have been made" in dead.error

    again = _publish(env, user)  # looked up and found: not posted twice
    assert again.status == SyncStatus.COMPLETED and again.metadata["result"]["reconciled"] is True, again.error
    assert x.calls["create_tweet"] == 1
