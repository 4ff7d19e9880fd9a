"""JSON read as the standard library's ``json.loads`` reads it, at a fifth of its CPU (orjson).

Where the two differ, the standard library's reading wins: orjson reads an integer beyond 64 bits as a float
(a rounded id), so a text holding a run of 19 digits or more goes to ``json`` (a false alarm, digits in a
string or a long fraction, costs only that); what orjson refuses and ``json`` takes (a lone surrogate escape,
NaN, a UTF-16 text) goes to ``json`` too. A text neither reads raises ValueError, as ``json.loads`` does.
"""

from __future__ import annotations

import json
import re

import orjson

_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def loads(text: str | bytes | bytearray):
    pattern = _LONG_NUMBER if isinstance(text, str) else _LONG_NUMBER_BYTES
    if pattern.search(text) is not None:
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
