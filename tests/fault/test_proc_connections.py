"""Half-sent requests and idle sockets cannot take the daemon down.

A real `nexusctl daemon` process each time:

- with HTTP_HEADER_TIMEOUT=1, connections that send half a request line and
  headers (on connect, or as the next request of a kept-alive connection) are
  closed after about a second, while /health answers throughout; a client
  that sends its headers in pieces within the timeout is served;
- with HTTP_BODY_TIMEOUT=1, a request whose body trickles in is answered 408
  REQUEST_TIMEOUT and its connection closed, while /health answers throughout;
- under RLIMIT_NOFILE=256 (set in the child before exec, as systemd's
  LimitNOFILE does) with 400 idle half-sent connections, more than the daemon
  has files, /health still answers, and the log has at most one line about a
  failed accept, without a traceback.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time

import pytest
from procs import daemon_env
from support import daemons
from support.daemons import stop as stop_daemon

PARTIAL = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "  # never finished
WHOLE = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
CLOSE_DEADLINE = 30  # seconds a close (after a 1 s timeout) may take on a loaded machine before the test fails
HEALTH_DEADLINE = 10  # seconds /health may take to answer, however loaded the machine: a deadline, not a latency


def _start(env: dict, work, limit: int | None = None) -> tuple[int, subprocess.Popen, object]:
    def lower_file_limit():  # in the child, before exec: the daemon starts with this limit
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    # A port found free may be taken before the daemon binds it: then it starts again on another one.
    port, process = daemons.start_on_free_port(
        lambda port: {**env, "PORT": str(port)},
        lambda port: work / f"daemon-{port}.log",
        probe="/health",
        preexec_fn=lower_file_limit if limit else None,
    )
    return port, process, work / f"daemon-{port}.log"


def _health(port: int, timeout: float) -> bool:
    """GET /health on a new connection answers 200 within ``timeout`` seconds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(WHOLE)
            return _read_response(conn).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += conn.recv(4096)
    return data


def _closed_within(conn: socket.socket, deadline: float) -> bool:
    """Whether the daemon closes ``conn`` (EOF or reset) within ``deadline`` seconds: a wait on that condition,
    returning as soon as it happens."""
    conn.settimeout(deadline)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_sent_requests_are_dropped_after_the_header_timeout(db_url, database, tmp_path):
    port, daemon, _log = _start(daemon_env(HTTP_HEADER_TIMEOUT="1"), tmp_path)
    try:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        for conn in idle:
            conn.sendall(PARTIAL)
        sent = time.monotonic()
        kept_alive = socket.create_connection(("127.0.0.1", port), timeout=10)
        kept_alive.sendall(WHOLE)
        assert _read_response(kept_alive).startswith(b"HTTP/1.1 200")
        kept_alive.sendall(PARTIAL)  # the next request on the kept-alive connection, never finished
        next_sent = time.monotonic()
        assert _health(port, HEALTH_DEADLINE)  # served meanwhile

        # A slow but honest client: its headers in pieces, all within the timeout.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            for piece in (WHOLE[:10], WHOLE[10:25], WHOLE[25:]):
                slow.sendall(piece)
                time.sleep(0.2)  # pacing the client, within the 1 s it has
            assert _read_response(slow).startswith(b"HTTP/1.1 200")

        # Closed by the daemon, and not before the client's second was up. The deadline only bounds the wait: far
        # from the 1 s timeout on any machine, and far below aiohttp's own 75 s idle close, which would pass too.
        for conn in [*idle, kept_alive]:
            assert _closed_within(conn, CLOSE_DEADLINE), f"a half-sent request still open after {CLOSE_DEADLINE} s"
        assert time.monotonic() - sent >= 0.9 and time.monotonic() - next_sent >= 0.9
        for conn in idle + [kept_alive]:
            conn.close()
        assert _health(port, HEALTH_DEADLINE)
    finally:
        stop_daemon(daemon)


def test_a_trickled_body_is_answered_408_and_its_connection_closed(db_url, database, tmp_path):
    port, daemon, _log = _start(daemon_env(HTTP_BODY_TIMEOUT="1"), tmp_path)
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        # Whole headers (the header deadline is met), then 10 of the 1,000 body bytes announced, then nothing.
        conn.sendall(
            b"POST /integrations/inbound/slack/commands HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n" + b"text=hello"
        )
        sent = time.monotonic()
        assert _health(port, HEALTH_DEADLINE)  # served meanwhile
        conn.settimeout(CLOSE_DEADLINE)  # a deadline for the answer, not a bound on its latency
        answer = _read_response(conn)
        assert time.monotonic() - sent >= 0.9  # not before the body's second was up
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"REQUEST_TIMEOUT"' in answer and b"HTTP_BODY_TIMEOUT" in answer, answer
        assert _closed_within(conn, CLOSE_DEADLINE), "the connection of a timed-out body was kept open"
        conn.close()
        assert _health(port, HEALTH_DEADLINE)
    finally:
        stop_daemon(daemon)


def test_more_idle_sockets_than_the_file_limit_leave_health_answering(db_url, database, tmp_path):
    limit, sockets = 256, 400
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < sockets + 100:
        if hard != resource.RLIM_INFINITY and hard < sockets + 100:
            pytest.skip(f"this test process may open only {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (sockets + 100, hard))
    # A long header timeout: what keeps /health answering here is the cap, not the timeout.
    port, daemon, log_path = _start(daemon_env(HTTP_HEADER_TIMEOUT="60"), tmp_path, limit=limit)
    idle = []
    try:
        for _ in range(sockets):
            conn = socket.socket()
            conn.settimeout(1)  # all 400 within seconds: well before aiohttp's own 75 s idle timeout frees files
            try:
                conn.connect(("127.0.0.1", port))
                conn.sendall(PARTIAL)
            except OSError:  # the listen queue is full: the kernel drops the handshake
                conn.close()
                continue
            idle.append(conn)
        assert len(idle) > limit, f"only {len(idle)} connections opened"
        answered = [_health(port, HEALTH_DEADLINE) for _ in range(5)]
        assert all(answered), answered
        assert daemon.poll() is None
    finally:
        for conn in idle:
            conn.close()
        stop_daemon(daemon)
    log = log_path.read_text()
    assert log.count("cannot accept connections") <= 1, log[-3000:]
    assert "out of system resource" not in log and "Traceback" not in log, log[-3000:]
    assert log.count("closing the longest-idle ones") == 1, log[-3000:]  # the cap did it, said once a minute
