"""A form posted to a provider (a token request, a revocation) is sent urlencoded, as aiohttp's FormData sent it.

The form is encoded by providers.http itself (FormData built a multipart writer per call): the provider must read back
the values we sent, with the form's content type.
"""

from __future__ import annotations

import itertools
from urllib.parse import urlencode

import pytest
from aiohttp import web

from nexusctl.providers.http import call, form_body, provider_sessions


async def test_the_provider_reads_back_the_form_we_sent(aiohttp_server):
    seen = []

    async def token(request):
        seen.append((request.content_type, dict(await request.post())))
        return web.json_response({"access_token": "new"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    form = {"grant_type": "refresh_token", "refresh_token": "1//0g+a/b=c&d é", "client_secret": "s p a c e"}
    async with provider_sessions() as (session, _guarded, _poster):
        reply = await call(session, "YOUTUBE", "POST", f"http://127.0.0.1:{server.port}/token", data=form)
        assert reply.status == 200 and reply.body == {"access_token": "new"}
        # A Content-Type the caller gave is kept (the body is still the urlencoded form).
        await call(
            session,
            "YOUTUBE",
            "POST",
            f"http://127.0.0.1:{server.port}/token",
            data={"a": "b"},
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
    assert seen == [("application/x-www-form-urlencoded", form), ("application/x-www-form-urlencoded", {"a": "b"})]


# Characters quoting treats apart: the safe ones, the space (a "+"), the separators, "%", non-ASCII of 2, 3 and 4
# UTF-8 bytes, controls.
AWKWARD = ["", "a", "Z9", "_.-~", " ", "+", "&", "=", "%", "/", "1//0g", "é", "€", "\U0001f600", "\n\x00", "a b+c"]


def test_a_form_is_encoded_to_the_bytes_urlencode_gives():
    for key, value in itertools.product(AWKWARD, repeat=2):
        form = {key or "k": value, "grant_type": "refresh_token", "x" + key: value + key}
        assert form_body(form) == urlencode(form, doseq=True).encode(), form
    # What is not text (a list, a number) is encoded by urlencode itself, as before.
    for form in ({"scope": ["a", "b c"]}, {"n": 1}, {}):
        assert form_body(form) == urlencode(form, doseq=True).encode()
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be sent, as with urlencode
        form_body({"a": "\ud800"})


async def test_a_providers_json_is_read_as_the_standard_library_reads_it(aiohttp_server):
    """An id beyond 64 bits stays whole (orjson alone would read a rounded float), NaN is read, and what is no JSON
    is kept as text."""
    answers = {
        "big": b'{"id": 12345678901234567890123, "small": 5}',
        "nan": b'{"x": NaN}',
        "text": b"not json {",
        "utf16": '{"a": 1}'.encode("utf-16"),
    }

    async def answer(request):
        return web.Response(body=answers[request.match_info["kind"]], content_type="application/json")

    app = web.Application()
    app.router.add_get("/{kind}", answer)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    async with provider_sessions() as (session, _guarded, _poster):
        big = (await call(session, "YOUTUBE", "GET", base + "/big")).body
        assert big == {"id": 12345678901234567890123, "small": 5} and isinstance(big["id"], int)
        nan = (await call(session, "YOUTUBE", "GET", base + "/nan")).body["x"]
        assert nan != nan  # NaN
        assert (await call(session, "YOUTUBE", "GET", base + "/text")).body == "not json {"
        assert (await call(session, "YOUTUBE", "GET", base + "/utf16")).body == {"a": 1}
