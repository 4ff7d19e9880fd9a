"""`POST /integrations/{id}/comments/{commentId}/replies`: reply to a comment at the provider (201 with its id)."""

from __future__ import annotations

from aiohttp import web

from nexusctl.core import comments
from nexusctl.daemon.keys import SERVICES
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body
from nexusctl.daemon.schema import Body, Str

REPLY = Body(
    {
        "text": Str(
            max_length=10000,
            min_length=1,
            description="The reply (TikTok takes 150 characters, Instagram 2,200, Facebook 8,000, YouTube 10,000)",
        ),
        "videoId": Str(
            max_length=64,
            min_length=1,
            pattern=r"[0-9A-Za-z_-]+",
            hint="a TikTok video id",
            description="TikTok only: the video the comment is on (the comment event's "
            "item.postId); else looked up among the latest videos",
        ),
    },
    required=("text",),
)
REPLIED = {
    "type": "object",
    "properties": {
        "integrationId": {"type": "string", "format": "uuid"},
        "provider": {"type": "string"},
        "commentId": {"type": "string"},
        "replyId": {"type": "string", "description": "the provider's id of the reply"},
        "pageId": {"type": "string"},
        "videoId": {"type": "string"},
    },
    "required": ["integrationId", "provider", "commentId", "replyId"],
}


async def reply_to_comment(request: web.Request) -> web.Response:

    body = await read_body(request, REPLY)
    result = await comments.reply(
        request.app[SERVICES],
        request.match_info["id"],
        request.match_info["commentId"],
        body["text"],
        owner_id=owner_filter(request),
        video_id=body.get("videoId"),
    )
    return ok(result, status=201)


ROUTES = [
    Route(
        "POST",
        "/integrations/{id}/comments/{commentId}/replies",
        reply_to_comment,
        "Reply to a comment (one fetch_comments delivered) at the provider: TikTok, YouTube, Instagram, Facebook; "
        "201 with the provider's reply id",
        "comments",
        body=REPLY,
        path_schemas={
            "commentId": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": r"^[0-9A-Za-z_.:-]+$",
                "description": "the provider's comment id",
            }
        },
        data=REPLIED,
        status=201,
        errors=(
            "VALIDATION_ERROR",
            "INTEGRATION_NOT_FOUND",
            "NOT_FOUND",
            "MISSING_SCOPES",
            "SYNC_NOT_STARTED",
            "TOKEN_EXPIRED",
            "RATE_LIMITED",
            "PROVIDER_ERROR",
            "ENCRYPTION_KEY_MISSING",
        ),
    ),
]
