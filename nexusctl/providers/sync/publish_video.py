"""Publishing a video to YouTube: a resumable upload of the content's first video. See publish.py.

The bytes come from the video's URL and go to YouTube a chunk at a time, never
whole in memory:

1. The media URL is checked by the SSRF guard (nexusctl.ssrf, the
   webhook worker's; WEBHOOK_ALLOWED_NETWORKS exempts the same networks) and
   opened through its guarded connector, so a URL (or a redirect) aimed at
   loopback, the LAN or the metadata service is refused before any byte moves.
   Its Content-Length is the upload's size (an answer without one is refused).
2. ``POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status``
   with the video resource (title and description from the content, privacy
   ``metadata.publishPrivacyStatus`` or ``private``: an API project that has
   not passed YouTube's audit has its uploads locked private anyway) and
   ``X-Upload-Content-Length`` / ``X-Upload-Content-Type``; the answer's
   ``Location`` is the upload session.
3. ``PUT`` chunks of CHUNK_BYTES (a multiple of 256 KiB, as YouTube requires
   for all but the last) with ``Content-Range: bytes a-b/total``; 308 Resume
   Incomplete with ``Range: bytes=0-n`` says what arrived. A chunk that fails
   (5xx, a dropped connection, a timeout) is followed by a status query,
   ``Content-Range: bytes */total``, and the upload resumes from what YouTube
   has, up to CHUNK_RETRIES times in a row (a 429 waits its Retry-After). A lost answer to the last chunk is found
   the same way: the status query answers with the video, so nothing is
   uploaded twice. A 401 mid-upload renews the token in place (the engine's
   ``api.refresh``, once per expiry) and resumes the same session after a
   status query: a new session could make a second video.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import aiohttp

from nexusctl import clock, ssrf
from nexusctl.errors import NexusError, ProviderError, RateLimited, SyncFailed, TokenExpired, UsageProblem
from nexusctl.providers.http import describe
from nexusctl.providers.sync.publish_common import _header
from nexusctl.providers.sync.publish_media import media_of

QUANTUM = 256 * 1024  # YouTube's chunk unit
CHUNK_BYTES = 32 * QUANTUM  # 8 MiB per PUT: one such buffer per upload in memory
CHUNK_RETRIES = 5  # interruptions in a row (no chunk through in between) before giving up
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_VIDEO_BYTES = 256 * 1024**3  # YouTube's limit (256 GB)
CHUNK_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=10)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
TITLE_MAX, DESCRIPTION_MAX = 100, 5000  # characters; YouTube refuses < and > in both
PRIVACY = ("private", "unlisted", "public")
UPLOAD_PATH = "upload/youtube/v3/videos"
_RANGE = re.compile(r"bytes=(\d+)-(\d+)", re.ASCII)


class Window:
    """The part of a byte stream an upload needs next: ``take(offset, n)`` returns bytes [offset, offset+n),
    dropping what lies before ``offset`` and reading more as needed, so at most one chunk is held (``peak``
    is the most it ever held). The stream cannot go back: an offset before what was dropped is an error."""

    def __init__(self, stream: aiohttp.StreamReader) -> None:
        self.stream, self.start, self.buffer, self.peak = stream, 0, bytearray(), 0

    async def take(self, offset: int, size: int) -> bytes:
        if offset < self.start:
            raise SyncFailed(
                f"YouTube asked to resume the upload at byte {offset}, before what was already "
                f"streamed ({self.start}); the upload cannot go back"
            )
        if offset - self.start > len(self.buffer):  # YouTube has more than was sent: skip it in the stream
            await self._skip(offset - self.start - len(self.buffer))
            self.start, self.buffer = offset, bytearray()
        del self.buffer[: offset - self.start]
        self.start = offset
        while len(self.buffer) < size:
            piece = await self._read(size - len(self.buffer))
            if not piece:
                raise UsageProblem(
                    f"the video's URL ended after {self.start + len(self.buffer)} bytes, before its Content-Length",
                    field="media",
                )
            self.buffer += piece
            self.peak = max(self.peak, len(self.buffer))
        with memoryview(self.buffer) as view:  # one copy: the chunk that is sent
            return bytes(view[:size])

    async def _read(self, most: int) -> bytes:
        try:
            return await self.stream.read(min(most, QUANTUM))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise SyncFailed(
                f"reading the video from its URL failed ({type(exc).__name__}); nothing was published"
            ) from None

    async def _skip(self, count: int) -> None:
        while count > 0:
            piece = await self._read(count)
            if not piece:
                raise UsageProblem("the video's URL ended before its Content-Length", field="media")
            count -= len(piece)


def _resource(content: dict, metadata: dict) -> dict:
    def clean(text: str, limit: int) -> str:
        return re.sub(r"[<>]", "", text or "").strip()[:limit]

    title = clean(content.get("title") or "", TITLE_MAX) or clean(content.get("contentId") or "", TITLE_MAX)
    description = "\n\n".join(
        p for p in (clean(content.get("description") or "", DESCRIPTION_MAX), (content.get("url") or "").strip()) if p
    )[:DESCRIPTION_MAX]
    privacy = str(metadata.get("publishPrivacyStatus") or "private").strip().lower()
    if privacy not in PRIVACY:
        raise UsageProblem(
            f"metadata.publishPrivacyStatus must be one of {', '.join(PRIVACY)} (got {privacy!r})",
            field="metadata.publishPrivacyStatus",
        )
    return {
        "snippet": {"title": title, "description": description},
        "status": {"privacyStatus": privacy, "selfDeclaredMadeForKids": False},
    }


def _youtube_check(reply) -> None:
    reasons = {e.get("reason") for e in reply.get("error", "errors") or [] if isinstance(e, dict)}
    if reply.status == 403 and reasons & {"insufficientPermissions", "forbidden"}:
        raise ProviderError(
            f"YOUTUBE: the upload was refused{describe(reply, (), ': ')}; uploading needs the "
            "https://www.googleapis.com/auth/youtube.upload scope: reconnect YouTube",
            provider="YOUTUBE",
            status=403,
        )


def _media_problem(message: str) -> UsageProblem:
    return UsageProblem(f"the video's media URL is refused: {message}", field="media")


async def _open_media(session: aiohttp.ClientSession, url: str, allowed: tuple):
    """(response, size, content type) of the video, through the SSRF guard (a redirect's target too: every
    connection goes through the guarded connector)."""
    try:
        ssrf.check_url(url, production=False, allowed_networks=allowed)
    except UsageProblem as exc:
        raise _media_problem(exc.message.removeprefix("Webhook URL refused: ")) from None
    try:
        response = await session.get(url, max_redirects=5)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, ssrf.BlockedAddress):
            raise _media_problem(str(exc.os_error)) from None
        raise ProviderError(
            f"YOUTUBE: could not fetch the video from {urlsplit(url).hostname} ({type(exc).__name__})",
            provider="YOUTUBE",
        ) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ProviderError(
            f"YOUTUBE: could not fetch the video from {urlsplit(url).hostname} ({type(exc).__name__})",
            provider="YOUTUBE",
        ) from None
    if response.status != 200:
        response.close()
        raise ProviderError(f"YOUTUBE: the video's URL answered HTTP {response.status}", provider="YOUTUBE")
    size = response.content_length
    if not size or size > MAX_VIDEO_BYTES:
        response.close()
        raise _media_problem(
            "its answer has no Content-Length (the upload must know the size)"
            if not size
            else f"the video is {size} bytes, more than YouTube takes ({MAX_VIDEO_BYTES})"
        )
    kind = (response.content_type or "").lower()
    return response, size, kind if kind.startswith("video/") else "application/octet-stream"


async def _put(api, session_uri: str, body: bytes, content_range: str):
    """One chunk (or a status query), under the integration's rate budget: a wait someone was told is a
    RateLimited here before anything is sent, which ``_upload`` waits out and resumes like a throttled chunk."""
    headers = api._auth({"Content-Range": content_range, "Content-Type": "application/octet-stream"})
    reply = await api.raw("PUT", session_uri, data=body, headers=headers, secrets=api._secrets(), timeout=CHUNK_TIMEOUT)
    if reply.status == 401:
        raise TokenExpired("YOUTUBE: the access token was refused during the upload", provider="YOUTUBE")
    return reply


def _received(reply) -> int:
    """Bytes YouTube has, from a 308's Range header (none: nothing yet)."""
    found = _RANGE.fullmatch((_header(reply, "range") or "").strip())
    return int(found.group(2)) + 1 if found else 0


async def _beat(api, final: bool) -> None:
    """The engine's heartbeat (lease, cancel); a stop after the last byte went says the video may exist."""
    if api.heartbeat is None:
        return
    try:
        await api.heartbeat(final)
    except NexusError as exc:
        if final:
            exc.details["mayHavePosted"] = True
        raise


async def _refresh(api, exc: TokenExpired, sent_last: bool) -> None:
    """A refused token mid-upload: a new one in place (the session URI stays, so nothing is sent twice). Never
    raises TokenExpired: the engine would start a new upload session and could make a second video."""
    try:
        if api.refresh is None:
            raise exc
        await api.refresh()
    except NexusError as again:
        raise _abandoned(f"was refused during the upload and could not be renewed ({again.code})", sent_last) from None


def _abandoned(why: str, sent_last: bool) -> ProviderError:
    """The upload given up over its token; once the last byte went, the video may exist."""
    return ProviderError(
        f"YOUTUBE: the access token {why}; the upload was abandoned",
        provider="YOUTUBE",
        status=401,
        **({"mayHavePosted": True} if sent_last else {}),
    )


async def _upload(api, session_uri: str, window: Window, total: int, stats: dict):
    """Chunks until YouTube answers with the video; after a failed chunk, a status query says where to resume.
    A refused token is renewed once per expiry and the same session resumed after a status query."""
    offset, failures, ask, sent_last, refreshed = 0, 0, False, False, False
    while True:
        size = min(CHUNK_BYTES, total - offset)
        try:
            if ask or size <= 0:  # after a failure, or everything sent and the answer lost: what arrived?
                reply = await _put(api, session_uri, b"", f"bytes */{total}")
            else:
                await _beat(api, False)  # the run's lease outlives a long upload; a cancel stops it here
                body = await window.take(offset, size)
                sent_last = sent_last or offset + size == total
                reply = await _put(api, session_uri, body, f"bytes {offset}-{offset + size - 1}/{total}")
                stats["chunks"] += 1
        except TokenExpired as exc:
            if refreshed:  # refused again right after a refresh: give up without starting over
                raise _abandoned("was refused again right after it was renewed", sent_last) from None
            await _refresh(api, exc, sent_last)
            refreshed, ask = True, True
            stats["refreshes"] = stats.get("refreshes", 0) + 1
            continue
        except (ProviderError, RateLimited) as exc:
            status = exc.details.get("status")
            if (status is not None and status < 500) or failures >= CHUNK_RETRIES:
                if sent_last and (status is None or status >= 500):  # the last byte went: YouTube may have it all
                    exc.details["mayHavePosted"] = True
                raise  # answered 4xx, or too many interruptions in a row
            wait = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
            throttled = isinstance(exc, RateLimited)
            if throttled:  # throttled mid-upload: wait as told (within reason), then resume
                wait = min(float(exc.retry_after or wait), 60.0)
            await _beat(api, sent_last)  # a retry can take a while too: the lease, a cancel, a lost run
            # The provider's window follows the product clock (a test moves it); our own backoff is real time.
            await (clock.wait(wait) if throttled else asyncio.sleep(wait))
            failures, ask = failures + 1, True
            stats["resumes"] += 1
            continue
        refreshed = False  # an answer came with this token: a later expiry may refresh again
        if not ask and reply.status == 308:
            failures = 0  # a chunk went through: the budget of CHUNK_RETRIES is per run of interruptions
        ask = False
        if reply.status in (200, 201):
            return reply
        if reply.status == 404:
            raise ProviderError(
                "YOUTUBE: the upload session expired (HTTP 404) before the video was complete; nothing was published",
                provider="YOUTUBE",
                status=404,
            )
        if reply.status != 308:
            raise ProviderError(
                f"YOUTUBE: the upload session answered HTTP {reply.status}{describe(reply, api._secrets(), ': ')}",
                provider="YOUTUBE",
                status=reply.status,
            )
        offset = _received(reply)


async def youtube(api, content: dict, metadata: dict) -> dict:
    video = next((m for m in media_of(content) if m["kind"] == "video"), None)
    if video is None:
        raise UsageProblem(
            "YouTube takes a video: the content has no video in its media (an item with a url and "
            "type video, or a video file URL)",
            field="media",
        )
    resource = _resource(content, metadata)
    allowed = api.allowed_networks
    stats = {"chunks": 0, "resumes": 0}
    connector = ssrf.guarded_connector(allowed)
    async with aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        timeout=MEDIA_TIMEOUT,
        headers={"User-Agent": "nexusctl-publish"},
        cookie_jar=aiohttp.DummyCookieJar(),  # a media host's cookies are nobody's business on the next fetch
    ) as media:
        response, total, kind = await _open_media(media, video["url"], allowed)
        try:
            start = await api.request(
                "POST",
                UPLOAD_PATH,
                params={"uploadType": "resumable", "part": "snippet,status"},
                json_body=resource,
                check=_youtube_check,
                headers={"X-Upload-Content-Length": str(total), "X-Upload-Content-Type": kind},
            )
            session_uri = _header(start, "location") or ""
            own, given = urlsplit(api.url(UPLOAD_PATH)), urlsplit(session_uri)
            if (given.scheme, given.netloc) != (own.scheme, own.netloc):  # the token goes there: same origin only
                raise ProviderError(
                    "YOUTUBE: the upload was not started (no upload session URI on YouTube's host in the answer)",
                    provider="YOUTUBE",
                )
            window = Window(response.content)
            reply = await _upload(api, session_uri, window, total, stats)
        finally:
            response.close()
    video_id = reply.get("id") if isinstance(reply.body, dict) else None
    if not video_id:
        raise ProviderError("YOUTUBE: the upload ended without a video id in the answer", provider="YOUTUBE")
    return {
        "videoId": str(video_id),
        "privacyStatus": reply.get("status", "privacyStatus"),
        "uploadStatus": reply.get("status", "uploadStatus"),
        "bytes": total,
        **stats,
        "peakBufferedBytes": window.peak,
    }
