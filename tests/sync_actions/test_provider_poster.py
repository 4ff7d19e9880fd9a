"""Form POSTs to the operator's provider hosts (token requests, revocations) go through the lean poster
(nexusctl/providers/poster.py), through ``providers.http.call`` as the adapters call it, against real servers.

What a provider notices: each request arrives once and whole, on a kept-alive connection; what the caller notices:
the answer's status, headers and body as aiohttp gave them (gzip and chunks decoded), a too-long answer refused,
and a failure that says whether the request may have reached the provider."""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import ssl

import aiohttp
import pytest
from aiohttp import web
from support.certs import certificate

from nexusctl import http1
from nexusctl.errors import ProviderError, RateLimited
from nexusctl.providers import http, poster
from nexusctl.providers.http import call, may_have_sent, provider_sessions

FORM = {"grant_type": "refresh_token", "refresh_token": "1//0g+a/b=c&d é", "client_secret": "s p a c e"}


class Provider:
    """POST /token (the form back as JSON), /gzip, /chunked, /big (one byte past the bound), /slow (5 s),
    /limited (429, Retry-After 7), /close (answers, then closes). Counts requests and their connections."""

    def __init__(self) -> None:
        self.forms: list[dict] = []
        self.peers: list = []
        self.headers: list[dict] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.forms.append(dict(await request.post()))
        self.peers.append(request.transport.get_extra_info("peername"))
        self.headers.append(dict(request.headers))
        kind = request.match_info["kind"]
        if kind == "gzip":
            return web.Response(
                body=gzip.compress(b'{"access_token":"z"}'),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if kind == "chunked":
            answer = web.StreamResponse(headers={"Content-Type": "application/json"})
            answer.enable_chunked_encoding()
            await answer.prepare(request)
            for part in (b'{"access_', b'token":', b'"c"}'):
                await answer.write(part)
            await answer.write_eof()
            return answer
        if kind == "big":
            return web.Response(body=b"x" * (http.MAX_REPLY_BYTES + 1))
        if kind == "slow":
            await asyncio.sleep(5)
        if kind == "limited":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "7"})
        if kind == "close":
            return web.json_response({"access_token": "bye"}, headers={"Connection": "close"})
        return web.json_response({"form": self.forms[-1]}, headers={"X-Request-Id": "r1"})


@pytest.fixture
async def provider(aiohttp_server):
    app = web.Application()
    state = Provider()
    app.router.add_post("/{kind}", state.handle)
    server = await aiohttp_server(app)
    state.base = f"http://127.0.0.1:{server.port}"
    return state


async def _post(client, url, **kwargs):
    async with aiohttp.ClientSession() as session:  # never used for a form POST when a poster is given
        return await call(session, "YOUTUBE", "POST", url, data=dict(FORM), poster=client, **kwargs)


async def test_a_form_arrives_whole_and_the_answer_comes_back_on_one_kept_connection(provider):
    async with provider_sessions() as (_session, _guarded, client):
        first = await _post(client, provider.base + "/token", headers={"Authorization": "Basic abc"})
        second = await _post(client, provider.base + "/token")
    assert first.status == 200 and first.body == {"form": FORM} and second.body == {"form": FORM}
    assert first.headers["X-Request-Id"] == "r1" and first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert provider.forms == [FORM, FORM]  # each request once
    assert len(set(provider.peers)) == 1  # the second on the first's connection
    sent = provider.headers[0]
    assert sent["Content-Type"] == "application/x-www-form-urlencoded" and sent["Authorization"] == "Basic abc"
    assert sent["User-Agent"] == "nexusctl" and sent["Accept-Encoding"] == "gzip, deflate"


async def test_gzip_and_chunked_answers_are_decoded(provider):
    async with provider_sessions() as (_session, _guarded, client):
        zipped = await _post(client, provider.base + "/gzip")
        chunked = await _post(client, provider.base + "/chunked")
    assert zipped.body == {"access_token": "z"} and chunked.body == {"access_token": "c"}


async def test_an_answer_past_the_bound_is_refused(provider):
    async with provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"answered more than \d+ bytes"):
            await _post(client, provider.base + "/big")
        assert (await _post(client, provider.base + "/token")).status == 200  # a fresh connection after it


async def test_a_429_is_rate_limited_with_its_retry_after(provider):
    async with provider_sessions() as (_session, _guarded, client):
        with pytest.raises(RateLimited) as caught:
            await _post(client, provider.base + "/limited")
    assert caught.value.retry_after == 7


async def test_a_connection_the_provider_closed_while_idle_is_never_written_to(provider):
    async with provider_sessions() as (_session, _guarded, client):
        assert (await _post(client, provider.base + "/close")).body == {"access_token": "bye"}
        assert (await _post(client, provider.base + "/token")).status == 200
    assert len(provider.forms) == 2 and len(set(provider.peers)) == 2  # a new connection, each request once


async def test_a_refused_connection_was_not_sent_and_a_timeout_after_the_write_may_have_been(provider):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    async with provider_sessions() as (_session, _guarded, client):
        with pytest.raises(
            ProviderError, match=r"^YOUTUBE: could not reach 127\.0\.0\.1 \(ConnectionRefusedError\)$"
        ) as refused:
            await _post(client, f"http://127.0.0.1:{port}/token")
        with pytest.raises(ProviderError, match=r"could not reach 127\.0\.0\.1 \(TimeoutError\)$") as timed_out:
            await _post(client, provider.base + "/slow", timeout=aiohttp.ClientTimeout(total=0.5, connect=0.5))
    assert not may_have_sent(refused.value) and may_have_sent(timed_out.value)
    assert len(provider.forms) == 1  # the slow one arrived once


async def test_a_provider_that_drops_the_connection_before_answering_may_have_acted():
    requests = []

    async def drop(reader, writer):
        requests.append(await reader.read(65536))
        writer.close()  # read the request, answer nothing

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"\(ServerDisconnectedError\)$") as dropped:
            await _post(client, f"http://127.0.0.1:{port}/token")
    assert may_have_sent(dropped.value) and len(requests) == 1 and requests[0].startswith(b"POST /token HTTP/1.1")


async def test_a_body_cut_short_by_the_connections_end_is_a_failure_not_an_answer():
    async def cut(reader, writer):
        await reader.read(65536)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"access')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"\(ServerDisconnectedError\)$") as failed:
            await _post(client, f"http://127.0.0.1:{port}/token")
    assert may_have_sent(failed.value)


async def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(provider):
    async with provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"\(InvalidHeader\)$") as refused:
            await _post(client, provider.base + "/token", headers={"Authorization": "Basic a\r\nX-Evil: 1"})
    assert not may_have_sent(refused.value) and provider.forms == []


async def test_https_sends_the_urls_host_as_sni_and_host_and_verifies_the_certificate(tmp_path, aiohttp_server):
    ca, cert, key = certificate(tmp_path, "localhost")
    names, hosts = [], []
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    served.sni_callback = lambda sock, name, context: names.append(name)

    async def token(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.json_response({"access_token": "t"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app, ssl=served)
    url = f"https://localhost:{server.port}/token"
    trusting = poster.Poster(limit=http.MAX_REPLY_BYTES + 1, tls=ssl.create_default_context(cafile=str(ca)))
    try:
        assert (await _post(trusting, url)).body == {"access_token": "t"}
        assert names == ["localhost"] and hosts == [f"localhost:{server.port}"]
    finally:
        await trusting.close()
    # With the system's CAs (the process's own poster) the test CA's certificate is refused, before anything is sent.
    async with provider_sessions() as (_session, _guarded, default):
        with pytest.raises(ProviderError, match=r"could not reach localhost \(SSLError\)$") as refused:
            await _post(default, url)
    assert not may_have_sent(refused.value) and len(hosts) == 1


class RawProvider:
    """A provider written byte by byte: answers every request with ``answer`` on a kept-alive connection and says
    when the connection was closed (by us)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.closed = asyncio.Event()

    async def serve(self, reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # the request's head
                await reader.readexactly(len(_FORM_BYTES))  # and its form
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()  # the client closed the connection

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/token"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


_FORM_BYTES = http.form_body(FORM)


def _answer(status_line: bytes, headers: list[bytes], body: bytes) -> bytes:
    return status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


async def test_a_chunked_answers_trailers_are_not_its_headers():
    """A trailer is no header of the answer (aiohttp dropped them): a trailing Content-Encoding does not spoil it."""
    body = b'{"access_token":"t"}'
    answer = _answer(
        b"HTTP/1.1 200 OK",
        [b"Content-Type: application/json", b"Transfer-Encoding: chunked", b"Trailer: Content-Encoding"],
        b"%x\r\n%s\r\n0\r\nContent-Encoding: gzip\r\n\r\n" % (len(body), body),
    )
    async with RawProvider(answer) as provider, provider_sessions() as (_session, _guarded, client):
        reply = await _post(client, provider.url)
    assert reply.body == {"access_token": "t"} and "Content-Encoding" not in reply.headers


async def test_a_compressed_answer_past_the_bound_is_refused_not_cut():
    """Cut at the bound in its compressed form, its decoded part could pass for a whole answer shorter than it."""
    zipped = gzip.compress(os.urandom(http.MAX_REPLY_BYTES + 4096))  # random bytes: gzip makes them no shorter
    answer = _answer(b"HTTP/1.1 200 OK", [b"Content-Encoding: gzip", b"Content-Length: %d" % len(zipped)], zipped)
    async with RawProvider(answer) as provider, provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"answered more than \d+ bytes"):
            await _post(client, provider.url)


async def test_a_connection_whose_answer_fails_to_decode_is_closed_not_leaked():
    answer = _answer(b"HTTP/1.1 200 OK", [b"Content-Encoding: gzip", b"Content-Length: 9"], b"not gzip!")
    async with RawProvider(answer) as provider, provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"\(ContentEncodingError\)$") as failed:
            await _post(client, provider.url)
        assert may_have_sent(failed.value)
        await asyncio.wait_for(provider.closed.wait(), 5)  # closed by us at once, not left open until the end


async def test_an_idle_connection_is_closed_once_idle_too_long_even_with_no_next_call(monkeypatch):
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.2)
    answer = _answer(b"HTTP/1.1 200 OK", [b"Content-Type: application/json", b"Content-Length: 2"], b"{}")
    async with RawProvider(answer) as provider, provider_sessions() as (_session, _guarded, client):
        assert (await _post(client, provider.url)).body == {}
        await asyncio.wait_for(provider.closed.wait(), 5)
        assert client.pool.idle == {} and client.pool.count == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/token", "http://127.0.0.1:abc/token", "http://a..b/token"])
async def test_a_url_that_cannot_be_dialled_is_a_provider_error_not_a_traceback(url):
    async with provider_sessions() as (_session, _guarded, client):
        with pytest.raises(ProviderError, match=r"could not reach .* \(InvalidURL\)$") as refused:
            await _post(client, url)
    assert not may_have_sent(refused.value)
