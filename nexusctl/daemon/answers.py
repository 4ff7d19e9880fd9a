"""How the daemon writes a JSON answer: the success envelope's sibling, the error envelope, one line each.

orjson encodes them (about six times faster than the standard library's ``json`` for a page of 20
integrations: docs/benchmarks.md). Its text is compact (no space after ``,`` or ``:``) and UTF-8 rather
than ``\\uXXXX`` escapes, both plain JSON to any client; what orjson refuses (a lone surrogate, an integer
beyond 64 bits) is written by the standard library as before.
"""

from __future__ import annotations

import json

import orjson
from aiohttp import web

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS  # non-str keys as json.dumps writes them


def json_line(value) -> bytes:
    """``value`` as one line of JSON (UTF-8, ending with a newline)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return (json.dumps(value) + "\n").encode()


def json_response(body, *, status: int = 200, headers=None) -> web.Response:
    """Every JSON answer of the API (data, errors, /health, /ready): one JSON document ending with a newline,
    as text on a terminal does (`curl localhost:3008/ready` leaves the shell prompt on a line of its own)."""
    return web.Response(
        body=json_line(body), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


def error_body(code: str, message: str, **extra) -> dict:
    return {"success": False, "error": {"code": code, "message": message}, **extra}
