"""The delivery worker's HTTP client (nexusctl/daemon/sender.py) against real receivers: kept-alive connections,
answers it must not trust for the next request, bounded previews, the SSRF guard at connect, timeouts.

What a receiver notices: how many connections it is sent on, that each request arrives exactly once, and that a
connection it closed is never written to again."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl

import pytest
from aiohttp import web
from support.certs import certificate

from nexusctl import http1, ssrf
from nexusctl.daemon import delivery, sender

HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


class Receiver:
    """POST /hook (200 "ok"), /close (answers, then closes the connection), /big (a 1 MB answer), /gzip,
    /trickle (4 KiB of a longer answer, then nothing), /slow (5 s).
    Counts requests and the connections they came on."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.peers: set = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.read())
        self.peers.add(request.transport.get_extra_info("peername"))
        kind = request.match_info["kind"]
        if kind == "close":
            return web.Response(text="bye", headers={"Connection": "close"})
        if kind == "big":
            return web.Response(body=b"x" * 1_000_000)
        if kind == "gzip":
            return web.Response(body=gzip.compress(b'{"ok":true}'), headers={"Content-Encoding": "gzip"})
        if kind == "trickle":  # the preview's worth at once, the rest never
            answer = web.StreamResponse(headers={"Content-Length": "100000"})
            await answer.prepare(request)
            await answer.write(b"y" * sender.BODY_PREVIEW)
            await asyncio.sleep(5)
            return answer
        if kind == "slow":
            await asyncio.sleep(5)
        return web.Response(text="ok", headers={"Retry-After": "7"})


@pytest.fixture
async def receiver(aiohttp_server):
    app = web.Application()
    found = Receiver()
    app.router.add_post("/{kind}", found.handle)
    server = await aiohttp_server(app, keepalive_timeout=0.3)  # the receiver drops idle connections quickly
    found.base = f"http://127.0.0.1:{server.port}"
    return found


@pytest.fixture
async def client():
    made = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=1.0, per_endpoint=5)
    yield made
    await made.close()


async def test_deliveries_share_kept_alive_connections(receiver, client):
    answers = []
    for round_ in range(4):
        answers += await asyncio.gather(
            *(client.post(f"{receiver.base}/hook", HEADERS, b'{"n":%d}' % (round_ * 5 + i)) for i in range(5))
        )
    assert [(a.status, a.retry_after, a.preview) for a in answers] == [(200, "7", b"ok")] * 20
    assert sorted(receiver.requests) == sorted(b'{"n":%d}' % n for n in range(20))  # each exactly once
    assert len(receiver.peers) <= 5  # at most the per-endpoint cap, however many were sent


async def test_a_connection_the_receiver_closed_is_never_written_to_again(receiver, client):
    assert (await client.post(f"{receiver.base}/close", HEADERS, b"1")).status == 200
    assert (await client.post(f"{receiver.base}/hook", HEADERS, b"2")).status == 200
    await client.post(f"{receiver.base}/hook", HEADERS, b"3")
    await asyncio.sleep(0.6)  # the receiver's keep-alive (0.3 s) ends: it closes the idle connection
    assert (await client.post(f"{receiver.base}/hook", HEADERS, b"4")).status == 200
    assert receiver.requests == [b"1", b"2", b"3", b"4"]
    assert len(receiver.peers) == 3  # a new connection after each close, none before


async def test_a_large_answer_is_previewed_and_its_connection_not_reused(receiver, client):
    big = await client.post(f"{receiver.base}/big", HEADERS, b"1")
    assert big.status == 200 and big.preview == b"x" * sender.BODY_PREVIEW
    after = await client.post(f"{receiver.base}/hook", HEADERS, b"2")
    assert after.preview == b"ok" and len(receiver.peers) == 2


async def test_an_answer_that_stalls_after_the_preview_is_not_waited_for(receiver, client):
    stalled = await client.post(f"{receiver.base}/trickle", HEADERS, b"1")  # the timeout is 1 s, the stall 5 s
    assert stalled.status == 200 and stalled.preview == b"y" * sender.BODY_PREVIEW


async def test_a_compressed_answer_is_previewed_decoded(receiver, client):
    assert (await client.post(f"{receiver.base}/gzip", HEADERS, b"1")).preview == b'{"ok":true}'


async def test_a_receiver_slower_than_the_timeout_times_out_and_the_next_send_works(receiver, client):
    with pytest.raises(TimeoutError):
        await client.post(f"{receiver.base}/slow", HEADERS, b"1")
    assert (await client.post(f"{receiver.base}/hook", HEADERS, b"2")).status == 200


async def test_refused_addresses_are_never_connected_to(receiver):
    guarded = sender.Sender(allowed_networks=[], timeout=1.0, per_endpoint=5)
    try:
        with pytest.raises(ssrf.BlockedAddress, match="127.0.0.1 is a loopback address"):
            await guarded.post(f"{receiver.base}/hook", HEADERS, b"1")
        with pytest.raises(ssrf.BlockedAddress, match="resolves to an address that is not allowed"):
            await guarded.post(receiver.base.replace("127.0.0.1", "localhost") + "/hook", HEADERS, b"2")
    finally:
        await guarded.close()
    assert receiver.requests == []


async def test_a_closed_port_is_an_error_in_words(client):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(sender.SendError, match=f"^cannot connect to 127.0.0.1:{port}: Connection refused$"):
        await client.post(f"http://127.0.0.1:{port}/hook", HEADERS, b"1")


async def test_https_sends_the_urls_host_as_sni_and_host_and_verifies_thecertificate(tmp_path, aiohttp_server):
    ca, cert, key = certificate(tmp_path, "localhost")
    names, hosts = [], []
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    served.sni_callback = lambda sock, name, context: names.append(name)

    async def hook(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app, ssl=served)
    url = f"https://localhost:{server.port}/hook"  # resolves to 127.0.0.1 (allowed) and perhaps ::1 (refused)
    trusting = ssl.create_default_context(cafile=str(ca))
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5, tls=trusting)
    default = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        assert (await client.post(url, HEADERS, b"1")).preview == b"ok"
        assert names == ["localhost"] and hosts == [f"localhost:{server.port}"]
        # With the system's CAs (the worker's own context) the test CA's certificate is refused: verified.
        with pytest.raises(sender.SendError, match="^TLS with localhost failed: .*certificate"):
            await default.post(url, HEADERS, b"2")
        assert len(hosts) == 1
    finally:
        await client.close()
        await default.close()


class RawReceiver:
    """A receiver on asyncio streams, for answers aiohttp's server would never send: each request is read whole
    and kept, then ``answer(writer, receiver)`` (or the bytes ``answer``) is its answer. Counts connections; ``closed``
    is set when a connection ends (the client closed it, or the answer raised)."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = asyncio.Event()
        self.release = asyncio.Event()  # what stalling answers wait for: set at the test's end

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.requests.append(await reader.readexactly(length))
                if callable(self.answer):
                    await self.answer(writer, self)
                else:
                    writer.write(self.answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed.set()


async def _closed(found: RawReceiver) -> None:
    """Until the receiver has seen a connection closed (a failing test stops after 5 s instead of hanging)."""
    async with asyncio.timeout(5):
        await found.closed.wait()


@pytest.fixture
async def raw():
    """``await raw(answer, tls=None)``: a RawReceiver listening, its URL as ``.url`` (https://localhost with a
    server TLS context)."""
    servers, receivers = [], []

    async def serve(answer, tls: ssl.SSLContext | None = None) -> RawReceiver:
        found = RawReceiver(answer)
        server = await asyncio.start_server(found.handle, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        found.url = f"https://localhost:{port}/hook" if tls else f"http://127.0.0.1:{port}/hook"
        servers.append(server)
        receivers.append(found)
        return found

    yield serve
    for found in receivers:
        found.release.set()
    for server in servers:
        server.close()


async def test_an_endless_header_fails_the_attempt_once_past_the_bound(raw):
    written = []

    async def endless(writer, _):
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: ")
        while True:  # until the client closes the connection
            writer.write(b"a" * 65536)
            await writer.drain()
            written.append(65536)

    found = await raw(endless)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=10.0, per_endpoint=5)
    try:
        with pytest.raises(sender.SendError, match=r"^the receiver's answer headers were too large \(over 64 KiB\)$"):
            await client.post(found.url, HEADERS, b"1")
        await _closed(found)  # and the connection is closed: the receiver stops writing
    finally:
        await client.close()
    assert sum(written) < 64 * 1024 * 1024  # what the kernel's buffers took, not what a 10 s timeout lets in


async def test_too_many_headers_fail_the_attempt(raw):
    headers = b"".join(b"X-%d: 1\r\n" % n for n in range(sender.MAX_HEADERS + 1))
    found = await raw(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\nok")
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        with pytest.raises(sender.SendError, match=r"headers were too large \(more than 100 headers\)$"):
            await client.post(found.url, HEADERS, b"1")
        # A hundred headers are fine (Content-Length among them), on a new connection after the failed one.
        found.answer = b"HTTP/1.1 200 OK\r\n" + headers.split(b"\r\n", 2)[2] + b"Content-Length: 2\r\n\r\nok"
        assert (await client.post(found.url, HEADERS, b"2")).preview == b"ok"
    finally:
        await client.close()
    assert found.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 202 Accepted\nContent-Length: 2\n\nok", id="bare LF"),
        pytest.param(b"HTTP/1.1 202 Accepted\r\nContent-Length : 2\r\n\r\nok", id="space before the colon"),
        pytest.param(b"HTTP/1.1 202 Accepted\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok", id="control character"),
        pytest.param(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n", id="chunk size space"
        ),
    ],
)
async def test_sloppy_answers_aiohttp_accepted_are_read_for_their_status(raw, answer):
    found = await raw(answer)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        got = await client.post(found.url, HEADERS, b"1")
        again = await client.post(found.url, HEADERS, b"2")
    finally:
        await client.close()
    assert (got.status, got.preview) == (again.status, again.preview) == (202, b"ok")
    assert found.requests == [b"1", b"2"] and found.connections == 1  # each once, the connection kept


def _stalling(*parts: bytes):
    """An answer: ``parts`` written, then nothing more while the connection stays open (the receiver reads on,
    and sees the client close it)."""

    async def answer(writer, _):
        writer.write(b"".join(parts))
        await writer.drain()

    return answer


STALLED_BODIES = [
    pytest.param(_stalling(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"), b"ok", id="chunked"),
    pytest.param(_stalling(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"), b"partial", id="short"),
    pytest.param(_stalling(b"HTTP/1.0 200 OK\r\n\r\nbody"), b"body", id="HTTP/1.0 no length"),
    pytest.param(_stalling(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n"), b"", id="no body yet"),
]


@pytest.mark.parametrize("answer, preview", STALLED_BODIES)
@pytest.mark.parametrize("timeout, wait", [(0.3, 5.0), (10.0, 0.2)], ids=["timeout first", "preview wait first"])
async def test_a_final_answer_whose_body_stalls_is_the_receivers_answer(
    raw, monkeypatch, answer, preview, timeout, wait
):
    monkeypatch.setattr(sender, "PREVIEW_WAIT", wait)
    found = await raw(answer)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=timeout, per_endpoint=5)
    try:
        got = await client.post(found.url, HEADERS, b"1")
        assert (got.status // 100, got.preview) == (2, preview)  # answered (delivered), not a timeout to send again
        await _closed(found)  # the connection was closed: its answer's rest is never read as the next one's
        found.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert (await client.post(found.url, HEADERS, b"2")).preview == b"ok"
    finally:
        await client.close()
    assert found.requests == [b"1", b"2"] and found.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nhalf", id="cut short"),
        pytest.param(b"HTTP/1.0 202 Accepted\r\n\r\nhalf", id="HTTP/1.0 no length"),
    ],
)
async def test_an_answer_ended_by_the_connections_end_is_taken_at_once(raw, monkeypatch, answer):
    monkeypatch.setattr(sender, "PREVIEW_WAIT", 30.0)  # only the connection's end can end these sends in time

    async def then_close(writer, _):
        writer.write(answer)
        await writer.drain()
        writer.close()

    found = await raw(then_close)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=10.0, per_endpoint=5)
    try:
        async with asyncio.timeout(5):
            got = await client.post(found.url, HEADERS, b"1")
    finally:
        await client.close()
    assert (got.status, got.preview) == (202, b"half")


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    "answer, status",
    [
        pytest.param(b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno" + OK, 500, id="a second answer"),
        pytest.param(OK + b"HTTP/1.1 2", 200, id="the start of another"),
        pytest.param(OK + b"HTTP/1.1 100 Continue\r\n\r\n", 200, id="an interim answer after"),
        pytest.param(OK + b"\x00garbage", 200, id="no HTTP after"),
    ],
)
async def test_what_follows_an_answer_is_not_read_as_it_nor_as_the_next(raw, answer, status):
    found = await raw(answer)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        first = await client.post(found.url, HEADERS, b"1")
        assert first.status == status  # the first final answer
        await _closed(found)  # its connection closed, not handed to the next delivery
        found.answer = OK
        second = await client.post(found.url, HEADERS, b"2")
    finally:
        await client.close()
    assert second.status == 200
    assert found.requests == [b"1", b"2"] and found.connections == 2  # each once: none written to a spoilt stream


async def _until(condition, what: str) -> None:
    """Until ``condition()`` holds (the client's view of a connection the receiver closed arrives a few loop
    turns later); a failing test stops after 5 s instead of hanging."""
    try:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within 5 s: {what}") from None


async def test_idle_connections_are_closed_when_idle_too_long_without_another_send(raw, monkeypatch):
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.2)
    found = await raw(OK)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        await client.post(found.url, HEADERS, b"1")
        await _closed(found)  # by the client, nothing sent after: the timer's sweep
        assert client.pool.idle == {} and client.pool.count == 0
    finally:
        await client.close()


async def test_idle_connections_in_all_are_capped_the_longest_idle_closed_first(raw):
    receivers = [await raw(OK) for _ in range(3)]
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5, max_idle=2)
    try:
        for found in receivers:
            await client.post(found.url, HEADERS, b"1")
        await _closed(receivers[0])
        assert client.pool.count == 2 and sum(map(len, client.pool.idle.values())) == 2
        assert not receivers[1].closed.is_set() and not receivers[2].closed.is_set()
    finally:
        await client.close()


async def test_a_released_connection_takes_the_place_of_one_the_receiver_closed(raw):
    let_b_answer, close_a = asyncio.Event(), asyncio.Event()

    async def answer(writer, receiver):
        body = receiver.requests[-1]
        if body == b"b":
            await let_b_answer.wait()
        writer.write(OK)
        await writer.drain()
        if body == b"a":  # then it closes that connection, idle in the client's pool
            await close_a.wait()
            writer.close()

    found = await raw(answer)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=5.0, per_endpoint=1)
    try:
        a = asyncio.create_task(client.post(found.url, HEADERS, b"a"))
        b = asyncio.create_task(client.post(found.url, HEADERS, b"b"))
        assert (await a).status == 200
        close_a.set()
        await _until(lambda: all(c.closed for idle in client.pool.idle.values() for c in idle), "a closed")
        let_b_answer.set()
        assert (await b).status == 200
        assert (await client.post(found.url, HEADERS, b"c")).status == 200  # on b's connection, kept
    finally:
        await client.close()
    assert found.requests == [b"a", b"b", b"c"] and found.connections == 2


async def test_over_tls_a_connection_whose_receiver_closed_it_is_never_handed_out(raw, tmp_path, monkeypatch):
    ca, cert, key = certificate(tmp_path, "localhost")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def answer_then_close(writer, _):
        writer.write(OK)
        await writer.drain()
        writer.close()  # close_notify, then the TCP close

    found = await raw(answer_then_close, tls=served)
    # The connection as the client's pool sees it the moment the receiver's end arrives, before connection_lost.
    at_eof = []
    real_eof_received = sender._Connection.eof_received

    def eof_received(conn):
        kept_open = real_eof_received(conn)
        at_eof.append(conn.closed)
        return kept_open

    monkeypatch.setattr(sender._Connection, "eof_received", eof_received)
    trusting = ssl.create_default_context(cafile=str(ca))
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5, tls=trusting)
    try:
        assert (await client.post(found.url, HEADERS, b"1")).status == 200
        await _until(lambda: at_eof, "the receiver's end arrived")
        assert at_eof == [True]
        assert (await client.post(found.url, HEADERS, b"2")).status == 200
    finally:
        await client.close()
    assert found.requests == [b"1", b"2"] and found.connections == 2


async def test_a_send_cut_off_by_shutting_down_says_so(raw):
    arrived, never = asyncio.Event(), asyncio.Event()

    async def no_answer(writer, receiver):
        arrived.set()
        await never.wait()  # until the client closes the connection (then the test's end)

    found = await raw(no_answer)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=10.0, per_endpoint=5)
    cut = asyncio.create_task(client.post(found.url, HEADERS, b"1"))
    async with asyncio.timeout(5):
        await arrived.wait()
    await client.close()
    with pytest.raises(sender.SendError, match="^not answered: the daemon is shutting down$"):
        await cut
    never.set()


async def test_a_connection_opened_while_shutting_down_is_not_kept(raw):
    found = await raw(OK)
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    await client.close()  # a send that began as the daemon stopped, still sent (its lease is held)
    assert (await client.post(found.url, HEADERS, b"1")).status == 200
    assert client.pool.idle == {} and client.pool.count == 0  # closed at once, not kept for the idle sweep
    await _closed(found)


async def test_of_two_retry_after_headers_the_first_counts(raw):
    found = await raw(b"HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nRetry-After: 60\r\nContent-Length: 0\r\n\r\n")
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=2.0, per_endpoint=5)
    try:
        got = await client.post(found.url, HEADERS, b"1")
    finally:
        await client.close()
    assert (got.status, got.retry_after) == (503, "5")


@pytest.mark.parametrize("status", [b"000", b"099", b"600", b"999"])
async def test_a_status_outside_100_to_599_is_an_invalid_answer(raw, status):
    """httptools reads any three digits: "HTTP/1.1 000" was an answer with statusCode 0 recorded."""
    found = await raw(b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 2\r\n\r\nok")
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=5.0, per_endpoint=5)
    try:
        expected = rf"^the receiver's answer is not valid HTTP \(status {status.decode()}\)$"
        with pytest.raises(sender.SendError, match=expected):
            await client.post(found.url, HEADERS, b"1")
        await _closed(found)  # and its connection is not kept
        found.answer = b"HTTP/1.1 204 No Content\r\n\r\n"
        assert (await client.post(found.url, HEADERS, b"2")).status == 204
    finally:
        await client.close()


@pytest.mark.parametrize("value", [b"\xb2", b"\xb3", b"\xb9", "١٠".encode(), b"1e3", b"-5", b""])
async def test_a_retry_after_that_is_not_ascii_digits_is_no_wait_and_the_attempt_is_recorded(raw, value):
    """A receiver's ``Retry-After: ²`` (byte 0xB2, read as Latin-1) passed str.isdigit() and then failed int():
    the send raised, no attempt was recorded and the delivery was sent again every lease. It is no wait at all."""
    found = await raw(b"HTTP/1.1 503 X\r\nRetry-After: " + value + b"\r\nContent-Length: 0\r\n\r\n")
    client = sender.Sender(allowed_networks=["127.0.0.1/32"], timeout=5.0, per_endpoint=5)
    try:
        answer = await client.post(found.url, HEADERS, b"1")
    finally:
        await client.close()
    assert answer.status == 503
    assert delivery._retry_after(answer.retry_after) is None
    assert delivery._retry_after(" 120 ") == 120
