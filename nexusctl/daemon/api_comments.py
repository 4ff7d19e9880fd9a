"""`POST /integrations/{id}/comments/{commentId}/replies`: reply to a comment at the provider (201 with its id)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints, with_config
from typing_extensions import Required, TypedDict

from nexusctl.core import comments
from nexusctl.daemon import responses as out
from nexusctl.daemon.fields import BODY, Matching, Text
from nexusctl.daemon.keys import SERVICES
from nexusctl.daemon.routing import Route, ok, owner_filter, read_body


@with_config(BODY)
class Reply(TypedDict, total=False):
    text: Required[
        Text(
            max_length=10000,
            min_length=1,
            description="The reply (TikTok takes 150 characters, Instagram 2,200, Facebook 8,000, YouTube 10,000)",
        )
    ]
    videoId: Annotated[
        Matching(r"[0-9A-Za-z_-]+", "a TikTok video id", max_length=64, min_length=1),
        Field(
            description="TikTok only: the video the comment is on (the comment event's "
            "item.postId); else looked up among the latest videos"
        ),
    ]


CommentId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[0-9A-Za-z_.:-]+$"),
    Field(description="the provider's comment id"),
]


async def reply_to_comment(request: web.Request) -> web.Response:

    body = await read_body(request, Reply)
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
        body=Reply,
        path_params={"commentId": CommentId},
        data=out.Replied,
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
