"""Instagram stories through the real daemon: content.published with ``format: "story"`` (issue 18).

Through `nexusctl daemon` (SQLite and PostgreSQL) with the emulators:
Instagram connected by the browser journey, a service ingests a
content.published asking for a story. An image story is a STORIES container
published at once; a video story's container is IN_PROGRESS until Instagram
has processed it, then published; a media_publish whose answer is lost is
settled by the container and the account's stories, never a second story.
Content a story cannot be (text only, several media) and providers without
stories are skipped with the reason, nothing tried at the provider.
"""

from __future__ import annotations

import json
import time
import uuid

IMAGE = {"type": "image", "url": "https://cdn.nexus.test/s/1/frame.jpg"}
VIDEO = {"type": "video", "url": "https://cdn.nexus.test/s/1/clip.mp4"}


def _logs(stack, content_id: str) -> dict[str, tuple]:
    rows = stack.sql(
        "SELECT i.provider, l.status, l.error, l.metadata FROM integration_sync_logs l JOIN integrations "
        "i ON i.id = l.integration_id WHERE l.resource_id = %s",
        content_id,
    )
    return {
        provider: (status, error, json.loads(meta) if isinstance(meta, str) else meta)
        for provider, status, error, meta in rows
    }


def _ingest(stack, user, content_id: str, **data):
    body = {
        "type": "content.published",
        "id": f"evt-{content_id}",
        "data": {"userId": str(user), "contentId": content_id, **data},
    }
    return stack.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)


def _story(stack, user, **data) -> tuple:
    """A story content.published for ``user``, waited for until its Instagram log is finished."""
    content_id = f"story-{uuid.uuid4().hex[:8]}"
    answer = _ingest(stack, user, content_id, format="story", title="Behind the scenes", **data)
    assert answer.status == 200, answer.text
    deadline, seen = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        seen = _logs(stack, content_id).get("INSTAGRAM")
        if seen is not None and seen[0] in ("COMPLETED", "FAILED", "CANCELLED"):
            return seen
        time.sleep(0.1)  # polling what the daemon does on its own
    raise AssertionError(f"timed out; the log is {seen}\n{stack.logs()[-3000:]}")


def _connected(stack, *providers):
    user = uuid.uuid4()
    for provider in providers:
        result = stack.connect(provider, user)
        assert result["status"] == "success", result
    return user


def test_an_image_story_is_published_as_a_story(stack, fresh_emulators):
    ig = stack.emulators["INSTAGRAM"]
    user = _connected(stack, "INSTAGRAM")
    status, error, meta = _story(stack, user, media=[IMAGE])
    assert status == "COMPLETED", error
    (story,) = ig.records_of("stories")
    assert ig.records_of("media") == []  # not a feed post
    (container,) = ig.containers.values()
    assert container["media_type"] == "STORIES" and container["url"] == IMAGE["url"] and container["caption"] == ""
    assert story["media_product_type"] == "STORY" and story["media_type"] == "IMAGE"
    assert meta["result"] == {"mediaId": story["id"], "containerId": container["id"], "story": True}
    assert ig.calls["media_publish"] == 1


def test_a_video_story_waits_for_processing_then_publishes(stack, fresh_emulators):
    ig = stack.emulators["INSTAGRAM"]
    ig.stories_processing_polls = 2  # IN_PROGRESS twice, then FINISHED: inside the first run's few seconds
    user = _connected(stack, "INSTAGRAM")
    status, error, meta = _story(stack, user, media=[VIDEO])
    assert status == "COMPLETED", error
    (story,) = ig.records_of("stories")
    assert story["media_type"] == "VIDEO" and story["media_url"] == VIDEO["url"]
    (container,) = ig.containers.values()
    assert container["media_type"] == "STORIES" and container["status_code"] == "PUBLISHED"
    assert ig.calls["container_status"] == 3 and ig.calls["media_publish"] == 1  # published once it was FINISHED
    assert meta["result"] == {"mediaId": story["id"], "containerId": container["id"], "story": True}


def test_a_story_whose_publish_answer_is_lost_is_reconciled_not_posted_twice(stack, fresh_emulators):
    ig = stack.emulators["INSTAGRAM"]
    user = _connected(stack, "INSTAGRAM")
    ig.lose_next_answer("media_publish")  # Instagram published it; the answer never came back
    status, error, meta = _story(stack, user, media=[IMAGE])
    assert status == "COMPLETED", error
    (story,) = ig.records_of("stories")  # one story, found among the account's stories
    assert meta["result"] == {
        "mediaId": story["id"],
        "containerId": story["container_id"],
        "reconciled": True,
        "story": True,
    }
    assert ig.calls["media_publish"] == 1 and ig.calls["stories"] == 1

    ig.fail_next("media_publish", 502)  # not published this time: the FINISHED container is published now, once
    status, error, meta = _story(stack, user, media=[VIDEO])
    assert status == "COMPLETED", error
    assert len(ig.records_of("stories")) == 2 and ig.calls["media_publish"] == 3
    assert meta["result"]["mediaId"] == ig.records_of("stories")[0]["id"] and meta["result"]["reconciled"] is True


def test_content_a_story_cannot_be_is_skipped_with_the_reason(stack, fresh_emulators):
    user = _connected(stack, "INSTAGRAM", "TWITTER")
    before = {p: sum(stack.emulators[p].calls.values()) for p in ("INSTAGRAM", "TWITTER")}
    text_only = f"story-{uuid.uuid4().hex[:8]}"
    answer = _ingest(stack, user, text_only, format="story", title="Words only", url="https://nexus.test/p/1")
    assert answer.status == 200, answer.text
    queued = {log["provider"]: log for log in answer.json()["data"]["syncLogs"]}
    assert "no image or video" in queued["INSTAGRAM"]["skipped"]
    assert "Twitter/X has no stories" in queued["TWITTER"]["skipped"]  # a story is not turned into a tweet

    several = f"story-{uuid.uuid4().hex[:8]}"
    answer = _ingest(stack, user, several, format="story", media=[IMAGE, VIDEO])
    assert answer.status == 200, answer.text
    queued = {log["provider"]: log for log in answer.json()["data"]["syncLogs"]}
    assert "has 2 in its media" in queued["INSTAGRAM"]["skipped"], queued

    for content_id in (text_only, several):
        for provider, (status, error, meta) in _logs(stack, content_id).items():
            assert status == "CANCELLED" and error.startswith("skipped: "), (provider, status, error)
            assert meta["skipped"] is True
    assert {p: sum(stack.emulators[p].calls.values()) for p in before} == before  # nothing tried there


def test_an_unknown_format_is_refused_naming_it(stack, fresh_emulators):
    user = _connected(stack, "INSTAGRAM")
    answer = _ingest(stack, user, f"c-{uuid.uuid4().hex[:8]}", format="reel", media=[VIDEO])
    assert answer.status == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "format" in error["message"], error
