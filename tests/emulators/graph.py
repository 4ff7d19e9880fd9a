"""Graph API errors, as Instagram's and Facebook's emulators (meta.py) and their comments (comments.py) answer."""

from __future__ import annotations

import secrets

from aiohttp import web

from .oauth2 import json_response


def graph_error(
    message: str,
    code: int,
    status: int = 400,
    subcode: int | None = None,
    type_: str = "OAuthException",
    headers: dict | None = None,
    **extra,
) -> web.Response:
    error = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    if code == 190:
        headers = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"', **(headers or {})}
    return json_response({"error": error}, status, headers)


def missing_object(object_id: str) -> web.Response:
    """Graph's answer for an id that is not there, or not for this token (code 100, subcode 33)."""
    return graph_error(
        f"(#100) Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation",
        100,
        subcode=33,
        type_="GraphMethodException",
    )
