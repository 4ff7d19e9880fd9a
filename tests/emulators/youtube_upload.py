"""YouTube Data API v3 resumable uploads (``videos.insert``), as the YouTube emulator serves them.

The documented protocol (developers.google.com/youtube/v3/guides/using_resumable_upload_protocol):

- ``POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status``
  (``calls["upload_start"]``) with the video resource as JSON and
  ``X-Upload-Content-Length`` (bytes, required here) and
  ``X-Upload-Content-Type`` (``video/*`` or ``application/octet-stream``).
  Needs a token with youtube, youtube.upload, youtube.force-ssl or
  youtubepartner (else 403 ``insufficientPermissions``); ``snippet.title``
  1-100 characters without ``<``/``>`` (400 ``invalidTitle``),
  ``snippet.description`` <= 5000 bytes (400 ``invalidDescription``),
  ``status.privacyStatus`` private|unlisted|public (400
  ``invalidVideoMetadata``). Answers 200 with ``Location``: the session URI
  (this URL with ``upload_id``).
- ``PUT`` the session URI (``calls["upload_chunk"]``): ``Content-Range: bytes
  a-b/total`` with exactly b-a+1 body bytes; ``a`` may not leave a gap after
  what the session has (else 400; bytes it already has are ignored, e.g. a
  client re-sending a chunk whose answer was lost), ``total`` is its declared
  size, and every chunk but the last a multiple of 256 KiB (else 400). ``Content-Range: bytes */total`` with an
  empty body is a status query. Incomplete: 308 with ``Range: bytes=0-n``
  (no Range when nothing arrived); complete: 201 (200 for a status query
  afterwards) with the video resource. An unknown session is 404.
- An unaudited API project's uploads are locked private: the resource's
  ``status.privacyStatus`` is ``private`` whatever was asked unless
  ``audited``.

Test controls: ``interrupt_next_chunk(keep, mode)``: the next chunk keeps only
its first ``keep`` bytes (None: all of it) and then answers 503 (``mode="5xx"``)
or drops the connection without an answer (``mode="drop"``). Uploaded videos
are ``records_of("videos")`` (with ``bytes`` and ``sha256`` of what arrived;
the bytes themselves are not kept, so memory stays flat); ``upload_sessions``
keeps each session; ``max_chunk`` is the largest chunk body received. Every PUT (a status query too) needs a
live access token, as at YouTube: an expired one is answered 401 and the session stays as it was.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import secrets
import time

from aiohttp import web

from .oauth2 import json_response

QUANTUM = 256 * 1024
UPLOAD_SCOPES = {
    f"https://www.googleapis.com/auth/{s}" for s in ("youtube", "youtube.upload", "youtube.force-ssl", "youtubepartner")
}
PRIVACY = {"private", "unlisted", "public"}
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class ResumableUploads:
    """Mixed into the YouTube emulator (``api_error``, ``bearer_status``, ``gate`` come from there)."""

    UPLOAD_ROUTES = (
        ("POST", r"www\.googleapis\.com/upload/youtube/v3/videos", "upload_start"),
        ("PUT", r"www\.googleapis\.com/upload/youtube/v3/videos", "upload_chunk"),
    )

    def reset_uploads(self) -> None:
        self.upload_sessions: dict[str, dict] = {}
        self.audited = False
        self.max_chunk = 0
        self._interrupts: collections.deque = collections.deque()

    def interrupt_next_chunk(self, keep: int | None = None, mode: str = "5xx") -> None:
        with self.lock:
            self._interrupts.append((keep, mode))

    def _error(self, status, message, reason, domain="youtube.video"):
        from .google import api_error

        return api_error(status, message, reason, domain=domain)

    async def upload_start(self, request):
        body = await request.read()
        token, refusal = await self.api_token(request, "upload_start", UPLOAD_SCOPES)
        if refusal is not None:
            return refusal
        q = request.query
        if q.get("uploadType") != "resumable":
            return self._error(
                400, "The emulator serves resumable uploads only (uploadType=resumable)", "invalidParameter", "global"
            )
        parts = {p for p in q.get("part", "").split(",") if p}
        try:
            resource = json.loads(body) if body else {}
            size = int(request.headers.get("X-Upload-Content-Length", ""))
        except ValueError:
            return self._error(400, "Invalid JSON body or X-Upload-Content-Length", "parseError", "global")
        kind = request.headers.get("X-Upload-Content-Type", "")
        if size <= 0 or not (kind.startswith("video/") or kind == "application/octet-stream"):
            return self._error(
                400,
                "X-Upload-Content-Length and a video X-Upload-Content-Type are required",
                "invalidParameter",
                "global",
            )
        if not isinstance(resource, dict) or not {"snippet", "status"} <= parts or not set(resource) <= parts:
            return self._error(
                400, "'part' must name every part the resource sets (snippet,status)", "invalidPart", "youtube.part"
            )
        title = str((resource.get("snippet") or {}).get("title") or "")
        description = str((resource.get("snippet") or {}).get("description") or "")
        if not title.strip() or len(title) > 100 or re.search(r"[<>]", title):
            return self._error(400, "The request metadata specifies an invalid video title.", "invalidTitle")
        if len(description.encode()) > 5000 or re.search(r"[<>]", description):
            return self._error(
                400, "The request metadata specifies an invalid video description.", "invalidDescription"
            )
        privacy = (resource.get("status") or {}).get("privacyStatus", "public")
        if privacy not in PRIVACY:
            return self._error(400, "The request metadata is invalid.", "invalidVideoMetadata")
        upload_id = "AEnB2U" + secrets.token_urlsafe(24)
        with self.lock:
            self.upload_sessions[upload_id] = {
                "id": upload_id,
                "total": size,
                "received": 0,
                "digest": hashlib.sha256(),
                "video": None,
                "snippet": {"title": title, "description": description},
                "asked": privacy,
                "privacy": privacy if self.audited else "private",
                "chunks": 0,
            }
        location = request.url.with_query({"uploadType": "resumable", "upload_id": upload_id})
        return web.Response(status=200, headers={"Location": str(location)})

    def _video(self, box) -> dict:
        return {
            "kind": "youtube#video",
            "etag": secrets.token_urlsafe(12),
            "id": box["video"],
            "snippet": {**box["snippet"], "channelId": self.account["id"]},
            "status": {"uploadStatus": "uploaded", "privacyStatus": box["privacy"]},
        }

    def _incomplete(self, box):
        headers = {"Range": f"bytes=0-{box['received'] - 1}"} if box["received"] else {}
        return web.Response(status=308, headers=headers)

    async def upload_chunk(self, request):
        fault = await self.gate("upload_chunk")
        if fault is not None:
            await request.read()
            return fault
        with self.lock:
            box = self.upload_sessions.get(request.query.get("upload_id", ""))
        if box is None:
            return self._error(404, "The upload session was not found or has expired.", "notFound", "global")
        _token, status = self.bearer_status(request)  # every PUT carries the token; one expired mid-upload: 401
        if status != "ok":
            await request.read()
            return self._error(401, "Request had invalid authentication credentials.", "authError", "global")
        header = request.headers.get("Content-Range", "")
        body = await request.read()
        with self.lock:
            self.max_chunk = max(self.max_chunk, len(body))
            if header == f"bytes */{box['total']}" and not body:  # status query
                return json_response(self._video(box), 200) if box["video"] else self._incomplete(box)
            found = _RANGE.fullmatch(header)
            if found is None or int(found[3]) != box["total"]:
                return self._error(
                    400,
                    f"Invalid Content-Range {header!r} for an upload of {box['total']} bytes",
                    "badContent",
                    "global",
                )
            first, last = int(found[1]), int(found[2])
            if last < first or last >= box["total"] or len(body) != last - first + 1:
                return self._error(
                    400, f"Content-Range {header!r} does not match the {len(body)}-byte body", "badContent", "global"
                )
            if box["video"]:  # a repeated last chunk (a client retrying a lost answer): the video again
                return json_response(self._video(box), 200)
            if first > box["received"]:
                return self._error(
                    400,
                    f"Content-Range {header!r} leaves a gap after the {box['received']} bytes received",
                    "badContent",
                    "global",
                )
            if last + 1 < box["total"] and len(body) % QUANTUM:
                return self._error(
                    400, "Every chunk but the last must be a multiple of 256 KiB", "badContent", "global"
                )
            body = memoryview(body)[box["received"] - first :]  # bytes it already has are ignored
            box["overlap"] = box.get("overlap", 0) + (box["received"] - first)
            keep, mode = self._interrupts.popleft() if self._interrupts else (None, None)
            kept = body if keep is None else body[:keep]
            box["digest"].update(kept)
            box["received"] += len(kept)
            box["chunks"] += 1
            if box["received"] == box["total"]:
                box["video"] = secrets.token_urlsafe(8).replace("-", "x").replace("_", "y")[:11]
                rows = self.records.setdefault("videos", [])
                rows.insert(
                    0,
                    {
                        "id": box["video"],
                        "bytes": box["total"],
                        "sha256": box["digest"].hexdigest(),
                        "title": box["snippet"]["title"],
                        "description": box["snippet"]["description"],
                        "privacyStatus": box["privacy"],
                        "askedPrivacy": box["asked"],
                        "session": box["id"],
                        "publishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now())),
                    },
                )
            answer = json_response(self._video(box), 201) if box["video"] else self._incomplete(box)
        if mode == "drop":  # the bytes are kept, the answer never comes: the connection is cut
            request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if mode == "5xx":
            return self._error(503, "Backend Error", "backendError", "global")
        return answer
