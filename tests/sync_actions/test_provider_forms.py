"""A form posted to a provider (a token request, a revocation) is sent urlencoded, as aiohttp's FormData sent it.

The form is encoded by providers.http itself (FormData built a multipart writer per call): the provider must read back
the values we sent, with the form's content type.
"""

from __future__ import annotations

from aiohttp import web

from nexusctl.providers.http import call, provider_sessions


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
