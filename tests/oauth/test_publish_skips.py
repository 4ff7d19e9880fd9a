"""content.published with text only: the video and media platforms are skipped, not failed (issue 18, item 6).

Through `nexusctl daemon` (SQLite and PostgreSQL) with the emulators: a user
connects TikTok, YouTube, Instagram and X by the browser journey, a service
ingests a content.published that has a title and a URL but no media. X posts
it; TikTok, YouTube and Instagram cannot take text alone, so their publish
logs end CANCELLED with ``skipped: <reason>``: no provider call, no
integration.error, and the daemon's health job keeps all four healthy.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from test_health_flows import _more_checks, _stored

SKIPPED = {
    "TIKTOK": "TikTok posts videos only",
    "YOUTUBE": "YouTube takes videos only",
    "INSTAGRAM": "Instagram cannot post text only",
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {"HEALTH_CHECK_INTERVAL": "1", "HEALTH_RECHECK": "1"}
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("publish-skips"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


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


def test_text_only_content_skips_the_video_platforms_and_posts_to_x(stack, fresh_emulators):
    user = uuid.uuid4()
    ids = {}
    for provider in ("TIKTOK", "YOUTUBE", "INSTAGRAM", "TWITTER"):
        result = stack.connect(provider, user)
        assert result["status"] == "success", result
        ids[provider] = result["integrationId"]
    for provider, integration in ids.items():  # the starting point: all four healthy
        live = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
        assert live["status"] == "healthy", (provider, live["reasons"])
    calls = {p: sum(stack.emulators[p].calls.values()) for p in SKIPPED}

    content_id, data = stack.ingest_content(user, "Words only")
    queued = {log["provider"]: log for log in data["syncLogs"]}
    assert set(queued) == set(ids)
    for provider, words in SKIPPED.items():
        assert words in queued[provider]["skipped"], queued[provider]
    assert "skipped" not in queued["TWITTER"]

    deadline = time.monotonic() + 30
    while _logs(stack, content_id)["TWITTER"][0] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, _logs(stack, content_id)
        time.sleep(0.1)  # polling what the daemon does on its own
    logs = _logs(stack, content_id)
    assert logs["TWITTER"][0] == "COMPLETED", logs["TWITTER"]
    assert [p["text"] for p in stack.emulators["TWITTER"].records_of("posted")] == [
        f"Words only\nhttps://nexus.test/p/{content_id}"
    ]
    for provider, words in SKIPPED.items():
        status, error, meta = logs[provider]
        assert status == "CANCELLED" and error.startswith("skipped: ") and words in error, logs[provider]
        assert meta["skipped"] is True and words in meta["skipReason"]
        assert sum(stack.emulators[provider].calls.values()) == calls[provider]  # nothing was tried there

    _more_checks(stack)  # the health job has looked at them since
    for provider, integration in ids.items():
        assert _stored(stack, integration) == "healthy", provider
        errors = stack.sql(
            "SELECT data FROM outbox_events WHERE integration_id = %s AND type = 'integration.error'", integration
        )
        assert errors == [], (provider, errors)
        shown = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
        assert shown["lastError"] is None, (provider, shown["lastError"])
