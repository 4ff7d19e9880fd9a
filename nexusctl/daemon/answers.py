"""How the daemon writes a JSON answer: the success envelope's sibling, the error envelope, one line each."""

from __future__ import annotations

import json

from aiohttp import web


def _json_line(value) -> str:
    return json.dumps(value) + "\n"


def json_response(body, *, status: int = 200, headers=None) -> web.Response:
    """Every JSON answer of the API (data, errors, /health, /ready): one JSON document ending with a newline,
    as text on a terminal does (`curl localhost:3008/ready` leaves the shell prompt on a line of its own)."""
    return web.json_response(body, status=status, headers=headers, dumps=_json_line)


def error_body(code: str, message: str, **extra) -> dict:
    return {"success": False, "error": {"code": code, "message": message}, **extra}
