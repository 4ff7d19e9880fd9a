"""A form posted to a provider (a token request, a revocation) is sent urlencoded, as aiohttp's FormData sent it.

The form is encoded by providers.http itself (FormData built a multipart writer per call): the bytes must be those of
``urlencode(form, doseq=True)``, whatever the values hold, and the provider must read back the values we sent.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from nexusctl.providers.http import call, form_body, provider_sessions

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # no lone surrogates: not UTF-8


@given(st.dictionaries(text, text, max_size=6))
def test_a_form_is_encoded_as_urlencode_encodes_it(form):
    assert form_body(form) == urlencode(form, doseq=True).encode()


def test_values_that_are_not_text_are_encoded_as_urlencode_encodes_them():
    form = {"scope": ["a b", "c/d"], "n": 3, "raw": b"x y"}
    assert form_body(form) == urlencode(form, doseq=True).encode()


async def test_the_provider_reads_back_the_form_we_sent(aiohttp_server):
    seen = []

    async def token(request):
        seen.append((request.content_type, dict(await request.post())))
        return web.json_response({"access_token": "new"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    form = {"grant_type": "refresh_token", "refresh_token": "1//0g+a/b=c&d é", "client_secret": "s p a c e"}
    async with provider_sessions() as (session, _guarded):
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
