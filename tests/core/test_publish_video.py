"""Publishing content.published to YouTube: a resumable upload streamed from the video's URL.

On real SQLite and PostgreSQL against the YouTube emulator's strict resumable
upload endpoint and a media host at 127.0.0.2 (the only address exempt from
the SSRF guard here): a multi-chunk upload ends COMPLETED with the video id
and the bytes YouTube got are the bytes served; a chunk cut short (503, or the
connection dropped) resumes from the Range YouTube reports, and the video is
whole and made once; a lost answer to the last chunk is recovered by a status
query, not a second upload; a token without youtube.upload fails naming the
scope; loopback and metadata URLs are refused before any byte moves; memory
stays flat (the process's traced peak stays a few chunks for a 16 MiB video).
"""

from __future__ import annotations

import asyncio
import tracemalloc
import uuid

import aiohttp
import pytest
from emulators.media import MediaServer, expected

from nexusctl import config
from nexusctl.core import inbound, sync_runs
from nexusctl.core.runtime import Runtime, direct
from nexusctl.crypto import keyring_from_settings
from nexusctl.enums import Provider, SyncStatus
from nexusctl.errors import UsageProblem
from nexusctl.providers.sync import publish_video

UPLOAD = "https://www.googleapis.com/auth/youtube.upload"
READ = "https://www.googleapis.com/auth/youtube.readonly"
CHUNK = 2 * publish_video.QUANTUM  # 512 KiB in these tests


@pytest.fixture(scope="module")
def media():
    server = MediaServer("127.0.0.2").start()
    yield server
    server.stop()


@pytest.fixture
def env(database, fresh_emulators, media, monkeypatch):
    for name, value in fresh_emulators.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.2/32")  # the media host only, not the emulators
    monkeypatch.setattr(publish_video, "CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(publish_video, "RETRY_DELAYS", (0.01,))
    media.served.clear()
    settings = config.load()
    return settings, keyring_from_settings(settings), fresh_emulators


def _publish(env, user, content) -> dict:
    settings, keyring, _ = env

    async def main():
        async with aiohttp.ClientSession(trust_env=False) as session:
            svc = Runtime(settings, keyring, session, direct, None)
            outcome = await inbound.handle(svc, inbound.make("content.published", {**content, "userId": str(user)}))
            return [await sync_runs.run(svc, log["syncLogId"]) for log in outcome["syncLogs"]]

    return {row.integration_id: row for row in asyncio.run(main())}


def _youtube(env, make_integration, scope=(READ, UPLOAD), metadata=None):
    yt = env[2]["YOUTUBE"]
    grant = yt.new_grant(list(scope))
    access = yt.issue(grant, "access", 3599, value="ya29." + uuid.uuid4().hex)
    refresh = yt.issue(grant, "refresh", None, value="1//0" + uuid.uuid4().hex)
    user = uuid.uuid4()
    row = make_integration(
        user_id=user,
        provider=Provider.YOUTUBE,
        access_token=access.value,
        refresh_token=refresh.value,
        metadata=metadata or {},
    )
    return yt, user, row


def _content(url, **extra):
    return {
        "contentId": f"post-{uuid.uuid4().hex[:6]}",
        "title": "Our <launch> film",
        "url": "https://nexus.test/p/9",
        "description": "What is new",
        "media": [{"type": "image", "url": "https://cdn.nexus.test/a.jpg"}, {"type": "video", "url": url}],
        **extra,
    }


def test_a_multi_chunk_upload_completes_with_the_video_id(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration)
    size = 5 * CHUNK + 12345  # six PUTs, the last one short
    log = _publish(env, user, _content(media.url("launch", size)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (video,) = yt.records_of("videos")
    result = log.metadata["result"]
    assert result["videoId"] == video["id"] and result["bytes"] == size and result["chunks"] == 6
    assert result["privacyStatus"] == "private" and result["uploadStatus"] == "uploaded"
    assert video["bytes"] == size and video["sha256"] == expected(size)  # the very bytes the URL served
    assert video["title"] == "Our launch film" and video["description"] == "What is new\n\nhttps://nexus.test/p/9"
    assert video["askedPrivacy"] == "private"
    assert yt.calls["upload_start"] == 1 and yt.calls["upload_chunk"] == 6 and len(yt.upload_sessions) == 1
    assert yt.max_chunk == CHUNK and sum(media.served.values()) == 1


def test_an_unaudited_project_asking_public_gets_a_private_video(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration, metadata={"publishPrivacyStatus": "public"})
    log = _publish(env, user, _content(media.url("pub", CHUNK)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert (
        yt.records_of("videos")[0]["askedPrivacy"] == "public" and log.metadata["result"]["privacyStatus"] == "private"
    )
    yt.audited = True
    log = _publish(env, user, _content(media.url("pub2", CHUNK)))[row.id]
    assert log.metadata["result"]["privacyStatus"] == "public"

    yt2, user2, row2 = _youtube(env, make_integration, metadata={"publishPrivacyStatus": "everyone"})
    log = _publish(env, user2, _content(media.url("pub3", CHUNK)))[row2.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("VALIDATION_ERROR"), log.error
    assert "publishPrivacyStatus" in log.error and yt.calls["upload_start"] == 2


@pytest.mark.parametrize("mode", ["5xx", "drop"])
def test_an_interrupted_chunk_resumes_from_what_youtube_has(env, make_integration, media, mode):
    yt, user, row = _youtube(env, make_integration)
    size = 4 * CHUNK + 777
    yt.interrupt_next_chunk(keep=None if mode == "drop" else 0)  # the first chunk arrives whole / not at all
    yt.interrupt_next_chunk(keep=100_000, mode=mode)  # the second: a part of it arrives (not a 256 KiB multiple)
    log = _publish(env, user, _content(media.url("cut", size)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (video,) = yt.records_of("videos")
    assert video["bytes"] == size and video["sha256"] == expected(size)  # whole, in order, nothing twice
    assert len(yt.upload_sessions) == 1 and sum(media.served.values()) == 1  # one session, the URL read once
    result = log.metadata["result"]
    assert result["videoId"] == video["id"]
    # A 503 is followed by a status query; a dropped connection too, unless aiohttp re-sent the PUT itself
    # (it retries an idempotent request once on a reused connection): either way YouTube stores nothing twice.
    assert result["resumes"] == 2 if mode == "5xx" else result["resumes"] >= 1
    assert result["peakBufferedBytes"] <= CHUNK


def test_interruptions_in_a_row_give_up_and_a_429_waits_then_resumes(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration)
    yt.rate_limit_next("upload_chunk", 1)  # throttled once: waits Retry-After, asks what arrived, goes on
    for _ in range(3):  # three failures, then a chunk through: the count starts again
        yt.interrupt_next_chunk(keep=0)
    log = _publish(env, user, _content(media.url("bumpy", 3 * CHUNK)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert log.metadata["result"]["resumes"] == 4 and yt.records_of("videos")[0]["sha256"] == expected(3 * CHUNK)

    for _ in range(publish_video.CHUNK_RETRIES + 1):
        yt.interrupt_next_chunk(keep=0)
    log = _publish(env, user, _content(media.url("broken", 3 * CHUNK)))[row.id]
    assert log.status == SyncStatus.FAILED and "HTTP 503" in log.error, log.error
    assert "mayHavePosted" not in log.metadata  # the last byte never went: no video can exist
    assert len(yt.records_of("videos")) == 1


def test_a_lost_answer_to_the_last_chunk_is_found_by_a_status_query(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration)
    yt.interrupt_next_chunk(mode="drop")  # one chunk: it arrives, YouTube makes the video, the answer is lost
    log = _publish(env, user, _content(media.url("last", CHUNK - 5)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (video,) = yt.records_of("videos")
    assert log.metadata["result"]["videoId"] == video["id"] and log.metadata["result"]["chunks"] == 1
    assert yt.calls["upload_chunk"] == 2  # the chunk, then one status query; no second upload


def test_a_token_without_youtube_upload_fails_naming_the_scope(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration, scope=(READ,))
    log = _publish(env, user, _content(media.url("scope", CHUNK)))[row.id]
    assert log.status == SyncStatus.FAILED and log.error.startswith("PROVIDER_ERROR: YOUTUBE"), log.error
    assert "insufficient authentication scopes" in log.error and "youtube.upload" in log.error
    assert "reconnect YouTube" in log.error
    assert yt.calls["upload_chunk"] == 0 and yt.records_of("videos") == [] and yt.calls["refresh"] == 0


def test_hostile_media_urls_are_refused_before_any_byte_moves(env, make_integration, media, fresh_emulators):
    yt, user, row = _youtube(env, make_integration)
    port = fresh_emulators.base_url.rsplit(":", 1)[1]
    for url, why in [
        (f"http://127.0.0.1:{port}/youtube/x.mp4", "loopback"),
        ("http://169.254.169.254/latest/meta-data/x.mp4", "metadata"),
        ("http://localhost/x.mp4", "loopback"),
        ("http://10.0.0.7/x.mp4", "private"),
        ("http://2130706433/x.mp4", "non-canonical"),
    ]:
        # Refused when given (the content.published event), so no publish run is even queued.
        with pytest.raises(UsageProblem) as refused:
            _publish(env, user, _content(url))
        assert refused.value.details == {"field": "media"} and why in refused.value.message, (url, refused.value)
    # A media URL that is fine but redirects to loopback: the redirect's target is refused too.
    hop = f"{media.base_url}/r?to=http://127.0.0.1:{port}/youtube/x.mp4"
    log = _publish(env, user, _content(hop))[row.id]
    assert log.status == SyncStatus.FAILED and "media URL is refused" in log.error, log.error
    assert "127.0.0.1" in log.error and "loopback" in log.error and media.served["/r"] == 1
    assert yt.calls["upload_start"] == 0 and yt.calls["upload_chunk"] == 0


def test_a_media_url_without_a_size_or_a_video_is_refused(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration)
    log = _publish(env, user, _content(media.url("nolength", CHUNK, chunked=1)))[row.id]
    assert log.status == SyncStatus.FAILED and "no Content-Length" in log.error, log.error
    log = _publish(env, user, {"contentId": "text-only", "title": "Words", "url": "https://nexus.test/w"})[row.id]
    # Text only: YouTube cannot take it at all, so the log is skipped (not a failure of the integration).
    assert log.status == SyncStatus.CANCELLED and log.error.startswith("skipped: ") and "no video" in log.error
    assert yt.calls["upload_start"] == 0


def _traced_peak(env, user, url) -> tuple[int, object]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        log = _publish(env, user, _content(url))
        return tracemalloc.get_traced_memory()[1] - before, log
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_whatever_the_video_size(env, make_integration, media):
    yt, user, row = _youtube(env, make_integration)
    small, big = 8 * 1024 * 1024, 32 * 1024 * 1024  # 16 and 64 chunks of 512 KiB
    small_peak, _ = _traced_peak(env, user, media.url("small", small))
    big_peak, logs = _traced_peak(env, user, media.url("big", big))
    log = logs[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert yt.records_of("videos")[0]["sha256"] == expected(big)
    assert log.metadata["result"]["peakBufferedBytes"] <= CHUNK  # the reader held one chunk at most
    # The whole process (publisher, emulator, media host): 4 times the video, about the same peak.
    print(f"traced peak {small_peak} bytes for {small} bytes, {big_peak} for {big} ({CHUNK}-byte chunks)")
    assert big_peak < small_peak + 2 * CHUNK and big_peak < big // 4, (small_peak, big_peak)


def test_a_cancel_during_the_upload_stops_it_and_no_video_is_made(env, make_integration, media, monkeypatch):
    from nexusctl.core import sync_state
    from nexusctl.db.models import IntegrationSyncLog

    yt, user, row = _youtube(env, make_integration)
    sent = []
    real_put = publish_video._put

    async def put_then_operator_cancels(api, session_uri, body, content_range):
        reply = await real_put(api, session_uri, body, content_range)
        sent.append(content_range)
        if len(sent) == 2:  # the operator runs `nexusctl sync cancel LOG_ID` while the upload is under way
            running = IntegrationSyncLog.get(
                (IntegrationSyncLog.integration == row.id) & (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS)
            )
            sync_state.cancel(running.id)
        return reply

    monkeypatch.setattr(publish_video, "_put", put_then_operator_cancels)
    log = _publish(env, user, _content(media.url("cancelled", 5 * CHUNK)))[row.id]
    assert log.status == SyncStatus.CANCELLED and log.error == "cancelled by an operator"
    assert len(sent) == 2 and yt.calls["upload_chunk"] == 2  # nothing sent after the cancel
    assert yt.records_of("videos") == []  # the abandoned session never became a video


# --- a refused token and the run lease during an upload ------------------------------------------------------


def _lock(row) -> str:
    return f"sync:{row.id}:publish"


def test_a_token_expiring_mid_upload_is_refreshed_and_the_same_session_resumed(
    env, make_integration, media, monkeypatch
):
    yt, user, row = _youtube(env, make_integration)
    sent, real_put = [], publish_video._put

    async def put_then_token_expires(api, session_uri, body, content_range):
        reply = await real_put(api, session_uri, body, content_range)
        sent.append(content_range)
        if len(sent) == 2:  # the hour is up: YouTube refuses the access token from the next chunk on
            env[2].advance_clock(3600)
        return reply

    monkeypatch.setattr(publish_video, "_put", put_then_token_expires)
    size = 4 * CHUNK + 99
    log = _publish(env, user, _content(media.url("expiring", size)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (video,) = yt.records_of("videos")
    assert video["bytes"] == size and video["sha256"] == expected(size)
    assert len(yt.upload_sessions) == 1 and yt.calls["upload_start"] == 1  # one session, never restarted
    assert sum(media.served.values()) == 1 and yt.calls["refresh"] == 1
    assert log.metadata["result"]["videoId"] == video["id"] and log.metadata["result"]["refreshes"] == 1
    # (the refused third chunk is not in ``sent``) a status query with the new token, then on from what YouTube has
    assert sent[2] == f"bytes */{size}" and sent[3].startswith(f"bytes {2 * CHUNK}-")


def test_a_lost_last_answer_then_a_refused_status_query_makes_one_video(env, make_integration, media, monkeypatch):
    yt, user, row = _youtube(env, make_integration)
    real_put = publish_video._put
    asked = []

    async def expire_before_the_status_query(api, session_uri, body, content_range):
        if content_range.startswith("bytes */") and not any(a.startswith("bytes */") for a in asked):
            env[2].advance_clock(3600)  # the answer to the last chunk was lost and meanwhile the token expired
        asked.append(content_range)
        return await real_put(api, session_uri, body, content_range)

    monkeypatch.setattr(publish_video, "_put", expire_before_the_status_query)
    # The one chunk arrives whole and YouTube makes the video, but the answer is a 503 (no clean answer; a dropped
    # connection may be re-sent by aiohttp itself, which would skip the status query this is about).
    yt.interrupt_next_chunk(keep=None, mode="5xx")
    log = _publish(env, user, _content(media.url("lastlost", CHUNK - 5)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    (video,) = yt.records_of("videos")  # not a second upload
    assert log.metadata["result"]["videoId"] == video["id"]
    assert len(yt.upload_sessions) == 1 and yt.calls["refresh"] == 1 and sum(media.served.values()) == 1
    assert asked[-2:] == [f"bytes */{CHUNK - 5}"] * 2  # refused, then asked again with the new token


def test_the_run_lease_is_kept_through_a_slow_retry(env, make_integration, media, monkeypatch):
    from nexusctl.core import leases

    yt, user, row = _youtube(env, make_integration)
    monkeypatch.setattr(sync_runs, "LEASE_SECONDS", 0.6)
    monkeypatch.setattr(publish_video, "RETRY_DELAYS", (1.5,))  # a retry waits longer than the lease lasts
    held, real_put = [], publish_video._put

    async def put_noting_the_lease(api, session_uri, body, content_range):
        if content_range.startswith("bytes */"):  # after the retry's wait: would recovery find the lease?
            held.append(leases.holder_of(_lock(row)))
        return await real_put(api, session_uri, body, content_range)

    monkeypatch.setattr(publish_video, "_put", put_noting_the_lease)
    yt.interrupt_next_chunk(keep=0)
    log = _publish(env, user, _content(media.url("slow", 2 * CHUNK)))[row.id]
    assert log.status == SyncStatus.COMPLETED, log.error
    assert len(held) == 1 and held[0] is not None and held[0][0] == str(log.id)


def test_sync_lease_outlasts_one_chunk():
    assert sync_runs.LEASE_SECONDS >= 2 * publish_video.CHUNK_TIMEOUT.total


@pytest.mark.parametrize("when", ["mid-upload", "after the last chunk"])
def test_a_run_recovery_marked_interrupted_stops_and_stays_failed(env, make_integration, media, monkeypatch, when):
    from nexusctl.core.sync_queue import mark_interrupted
    from nexusctl.db.models import IntegrationSyncLog

    yt, user, row = _youtube(env, make_integration)
    sent, real_put = [], publish_video._put
    chunks = 4 if when == "mid-upload" else 1

    async def put_then_recovery_strikes(api, session_uri, body, content_range):
        reply = await real_put(api, session_uri, body, content_range)
        sent.append(content_range)
        if len(sent) == (2 if when == "mid-upload" else 1):  # the lease lapsed; another daemon's recovery pass:
            mark_interrupted(
                list(
                    IntegrationSyncLog.select().where(
                        (IntegrationSyncLog.integration == row.id)
                        & (IntegrationSyncLog.status == SyncStatus.IN_PROGRESS)
                    )
                )
            )
        return reply

    monkeypatch.setattr(publish_video, "_put", put_then_recovery_strikes)
    log = _publish(env, user, _content(media.url(f"lapsed{chunks}", chunks * CHUNK)))[row.id]
    assert log.status == SyncStatus.FAILED and "interrupted" in log.error, log.error  # never overwritten COMPLETED
    assert log.metadata["mayHavePosted"] is True
    if when == "mid-upload":
        assert len(sent) == 2 and yt.records_of("videos") == []  # it stopped: the abandoned session is no video
    else:
        assert len(yt.records_of("videos")) == 1


def test_a_run_whose_lease_another_process_took_stops_uploading(env, make_integration, media, monkeypatch):
    import datetime as dt

    from nexusctl.db.fields import utcnow
    from nexusctl.db.models import Lease

    yt, user, row = _youtube(env, make_integration)
    sent, real_put = [], publish_video._put

    async def put_then_lease_taken(api, session_uri, body, content_range):
        reply = await real_put(api, session_uri, body, content_range)
        sent.append(content_range)
        if len(sent) == 2:
            Lease.update(holder="another-run", until=utcnow() + dt.timedelta(minutes=5)).where(
                Lease.name == _lock(row)
            ).execute()
        return reply

    monkeypatch.setattr(publish_video, "_put", put_then_lease_taken)
    log = _publish(env, user, _content(media.url("taken", 4 * CHUNK)))[row.id]
    assert log.status == SyncStatus.FAILED and "lost its run lease" in log.error, log.error
    assert len(sent) == 2 and yt.records_of("videos") == [] and "mayHavePosted" not in log.metadata
