"""The outbound provider sessions keep no cookies.

The sessions are shared by every integration's calls (syncs, refreshes, the API proxy): a cookie a provider
sets in its answer to one user's call would otherwise go out with the next call to that host, whoever's
integration it is for. Providers authenticate by header, so nothing needs a jar.
"""

from __future__ import annotations

from aiohttp import web

from nexusctl.providers.http import provider_sessions


async def test_a_providers_set_cookie_never_rides_along_on_the_next_call(aiohttp_server):
    async def set_cookie(request):
        response = web.json_response({"ok": True})
        response.set_cookie("session", "alice-session", path="/")
        return response

    async def echo(request):
        return web.json_response({"cookie": request.headers.get("Cookie")})

    app = web.Application()
    app.router.add_get("/login", set_cookie)
    app.router.add_get("/me", echo)
    server = await aiohttp_server(app)
    base = f"http://localhost:{server.port}"  # a host name: a jar keeps no cookie of a bare IP address
    async with provider_sessions(allowed_networks=("127.0.0.1/32",)) as (session, guarded, _poster):
        for client in (session, guarded):
            async with client.get(base + "/login") as first:
                assert first.cookies["session"].value == "alice-session"  # the provider did set one
            async with client.get(base + "/me") as second:
                assert (await second.json())["cookie"] is None
