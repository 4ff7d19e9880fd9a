"""Publishing content.published to LinkedIn (a member post) and Facebook (a page feed post).

On real SQLite and PostgreSQL against the emulators: each post is made once
with the provider's body, its id lands in the log's result; a missing scope
fails with the provider's words; a refused token is refreshed once; the
Facebook page is the one named by metadata.publishPageId or the only one; the
page token never reaches the database, the outbox or the log output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aiohttp
import pytest

from nexusctl import config
from nexusctl.core import inbound, sync_runs
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import keyring_from_settings
from nexusctl.db.models import Integration, IntegrationSyncLog, OutboxEvent
from nexusctl.enums import Provider, SyncStatus

CONTENT = {
    "contentId": "post-9",
    "title": "Our launch (beta) #1",
    "url": "https://nexus.test/p/9_a",
    "description": "What is new",
}
FB_SCOPES = ["public_profile", "pages_show_list", "pages_read_engagement", "pages_manage_posts"]


@pytest.fixture
def env(database, fresh_emulators, monkeypatch):
    for name, value in fresh_emulators.env().items():
        monkeypatch.setenv(name, value)
    settings = config.load()
    return settings, keyring_from_settings(settings), fresh_emulators


def _publish(env, user, content=None, *, budget=None) -> dict:
    """content.published for this user, then every publish log it queued run; {integration id: log}."""
    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            outcome = await inbound.handle(
                svc, inbound.make("content.published", {**(content or CONTENT), "userId": str(user)})
            )
            return [await sync_runs.run(svc, log["syncLogId"], budget=budget) for log in outcome["syncLogs"]]

    return {row.integration_id: row for row in asyncio.run(main())}


# --- LinkedIn ---------------------------------------------------------------------------------------------


def _linkedin(env, make_integration, scope=("openid", "profile", "w_member_social")):
    li = env[2]["LINKEDIN"]
    grant = li.new_grant(list(scope))
    access, refresh = li.issue(grant, "access", li.ACCESS_TTL), li.issue(grant, "refresh", li.REFRESH_TTL)
    user = uuid.uuid4()
    row = make_integration(
        user_id=user, provider=Provider.LINKEDIN, access_token=access.value, refresh_token=refresh.value
    )
    return li, user, row, access


def test_a_linkedin_post_is_made_once_as_the_member_with_an_article(env, make_integration):
    li, user, row, _ = _linkedin(env, make_integration)
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (post,) = li.records_of("posts")
    assert log.metadata["result"] == {"postUrn": post["id"]} and post["id"].startswith("urn:li:share:")
    assert post["author"] == "urn:li:person:782bbtaQ" and post["visibility"] == "PUBLIC"
    assert post["distribution"] == {
        "feedDistribution": "MAIN_FEED",
        "targetEntities": [],
        "thirdPartyDistributionChannels": [],
    }
    assert post["lifecycleState"] == "PUBLISHED" and post["isReshareDisabledByAuthor"] is False
    # The little text format: reserved characters escaped, so LinkedIn shows the whole text (and the URL whole).
    assert post["commentary"] == "Our launch \\(beta\\) \\#1\nhttps://nexus.test/p/9_a"
    assert post["text"] == "Our launch (beta) #1\nhttps://nexus.test/p/9_a"
    assert post["content"] == {
        "article": {"source": "https://nexus.test/p/9_a", "title": "Our launch (beta) #1", "description": "What is new"}
    }
    assert li.calls["create_post"] == 1 and log.items_processed == 1

    # Without a URL it is a text-only post.
    log = _publish(env, user, {"contentId": "post-10", "title": "Just words"})[row.id]
    assert log.status == SyncStatus.COMPLETED and li.records_of("posts")[0]["content"] is None
    assert li.records_of("posts")[0]["commentary"] == "Just words"


def test_a_linkedin_post_without_w_member_social_fails_with_linkedins_message(env, make_integration):
    li, user, row, _ = _linkedin(env, make_integration, scope=("openid", "profile"))
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: LINKEDIN")
    assert "Not enough permissions to access: partnerApiPostsExternal.CREATE" in log.error
    assert "w_member_social" in log.error
    assert li.records_of("posts") == [] and li.calls["create_post"] == 1 and li.calls["refresh"] == 0


def test_a_refused_linkedin_token_is_refreshed_once_and_the_post_made_once(env, make_integration):
    li, user, row, access = _linkedin(env, make_integration)
    with li.lock:
        li.tokens[access.value].alive = False  # revoked at LinkedIn while the grant lives on
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert li.calls["refresh"] == 1 and li.calls["create_post"] == 1 and len(li.records_of("posts")) == 1

    # Refused again after the refresh: the run fails as TOKEN_EXPIRED, no second refresh.
    li.fail_next("create_post", 401, {"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401})
    li.fail_next("create_post", 401, {"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401})
    log = _publish(env, user, {**CONTENT, "contentId": "post-11", "title": "Second"})[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("TOKEN_EXPIRED"), log.error
    assert li.calls["refresh"] == 2 and li.calls["create_post"] == 3


# --- Facebook ---------------------------------------------------------------------------------------------


def _pages(n):
    return [{"id": str(104000000000000 + i), "name": f"Page {i}"} for i in range(n)]


def _facebook(env, make_integration, pages=1, scope=FB_SCOPES, metadata=None):
    fb = env[2]["FACEBOOK"]
    fb.set_records("pages", _pages(pages))
    user_token = fb.issue(fb.new_grant(list(scope)), "access", 5184000, value="EAAB" + uuid.uuid4().hex, long=True)
    user = uuid.uuid4()
    row = make_integration(
        user_id=user,
        provider=Provider.FACEBOOK,
        access_token=user_token.value,
        refresh_token=None,
        metadata=metadata or {},
    )
    return fb, user, row, user_token


def _nowhere(token: str, *rows) -> None:
    """The token is in none of these rows' text nor in any outbox event."""
    for row in rows:
        fresh = type(row).get_by_id(row.id)
        assert token not in json.dumps({k: str(v) for k, v in fresh.__data__.items()}, default=str)
    for event in OutboxEvent.select():
        assert token not in json.dumps(event.data, default=str)


def test_a_facebook_post_goes_to_the_only_page_with_its_page_token(env, make_integration, caplog):
    caplog.set_level(logging.DEBUG)
    fb, user, row, user_token = _facebook(env, make_integration)
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (post,) = fb.records_of("posts")
    assert log.metadata["result"] == {"postId": post["id"]} and post["id"].startswith("104000000000000_")
    assert (post["page_id"], post["message"], post["link"]) == (
        "104000000000000",
        "Our launch (beta) #1",
        "https://nexus.test/p/9_a",
    )
    assert fb.calls["feed"] == 1 and fb.calls["accounts"] == 1
    page_token = fb.page_token(user_token, "104000000000000")  # the one /me/accounts gave
    assert page_token != user_token.value
    _nowhere(page_token, log, Integration.get_by_id(row.id))
    assert page_token not in caplog.text


def test_facebook_with_two_pages_needs_publish_page_id(env, make_integration):
    fb, user, row, _ = _facebook(env, make_integration, pages=2)
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("VALIDATION_ERROR")
    assert "manages 2 pages" in log.error and "metadata.publishPageId" in log.error
    assert "104000000000000" in log.error and "104000000000001" in log.error
    assert fb.calls["feed"] == 0 and fb.records_of("posts") == []

    Integration.update(metadata={"publishPageId": "104000000000001"}).where(Integration.id == row.id).execute()
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (post,) = fb.records_of("posts")
    assert post["page_id"] == "104000000000001" and log.metadata["result"] == {"postId": post["id"]}

    Integration.update(metadata={"publishPageId": "999"}).where(Integration.id == row.id).execute()
    log = _publish(env, user, {**CONTENT, "contentId": "post-12"})[row.id]
    assert log.status == SyncStatus.FAILED and "publishPageId 999 is not a page" in log.error
    assert fb.calls["feed"] == 1


def test_facebook_without_pages_manage_posts_fails_with_graphs_message(env, make_integration, caplog):
    caplog.set_level(logging.DEBUG)
    fb, user, row, user_token = _facebook(
        env, make_integration, scope=["public_profile", "pages_show_list", "pages_read_engagement"]
    )
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: FACEBOOK")
    assert "(#200) If posting to a group" in log.error and "pages_manage_posts" in log.error
    assert fb.calls["feed"] == 1 and fb.records_of("posts") == []
    page_token = fb.page_token(user_token, "104000000000000")
    _nowhere(page_token, log, Integration.get_by_id(row.id))
    assert page_token not in caplog.text


def test_a_graph_error_echoing_the_page_token_is_scrubbed(env, make_integration, caplog):
    caplog.set_level(logging.DEBUG)
    fb, user, row, user_token = _facebook(env, make_integration)
    page_token = fb.page_token(user_token, "104000000000000")
    fb.fail_next(
        "feed",
        403,
        {"error": {"message": f"(#10) Token {page_token} cannot post here", "code": 10, "type": "OAuthException"}},
    )
    log = _publish(env, user)[row.id]
    assert log.status == SyncStatus.FAILED and "(#10) Token *** cannot post here" in log.error
    _nowhere(page_token, log, Integration.get_by_id(row.id))
    assert page_token not in caplog.text


def test_facebook_dead_page_token_refreshes_once_and_throttling_waits(env, make_integration):
    fb, user, row, _ = _facebook(env, make_integration)
    fb.fail_next(
        "feed",
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
    assert fb.calls["exchange"] == 1 and fb.calls["feed"] == 2 and len(fb.records_of("posts")) == 1

    # Code 4 (app throttling) is RATE_LIMITED; beyond the run's budget the log says so and nothing is posted.
    fb.rate_limit_next("feed", 60)
    log = _publish(env, user, {**CONTENT, "contentId": "post-13"}, budget=0)[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("RATE_LIMITED"), log.error
    assert len(fb.records_of("posts")) == 1


def test_linkedin_and_facebook_are_both_queued_for_one_user(env, make_integration):
    li, user, on_li, _ = _linkedin(env, make_integration)
    fb = env[2]["FACEBOOK"]
    fb.set_records("pages", _pages(1))
    on_fb = make_integration(
        user_id=user,
        provider=Provider.FACEBOOK,
        refresh_token=None,
        access_token=fb.issue(fb.new_grant(FB_SCOPES), "access", None, long=True).value,
    )
    runs = _publish(env, user)
    assert {runs[on_li.id].status, runs[on_fb.id].status} == {SyncStatus.COMPLETED}
    assert IntegrationSyncLog.select().where(IntegrationSyncLog.action == "publish").count() == 2
    assert len(li.records_of("posts")) == 1 and len(fb.records_of("posts")) == 1
