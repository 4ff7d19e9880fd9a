"""SIGTERM with requests in flight, through a real daemon and the emulators (README, the systemd unit: "finish
requests (up to 10 s)").

The provider stand-in holds its answer (``hold``) for as long as the test needs, so a request is in flight for
sure when the signal comes; the test then waits on what the caller is answered and on the process's exit.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import signal
import socket
import time
import urllib.parse

import pytest
from support.callers import bearer, connected, download, raw_request
from support.waiting import wait_for

from nexusctl.daemon.stopping import GRACE

BOUND = GRACE + 5  # the requests' grace, then the daemon's own cleanup (well within systemd's TimeoutStopSec=30)


def _stop(stack) -> float:
    """SIGTERM to the stack's daemon; the monotonic time it was sent."""
    sent = time.monotonic()
    stack.process.terminate()
    return sent


@pytest.fixture
def restarted(stack):
    """The stack's daemon is started again after the test stopped it (``restart`` stops it if it still runs)."""
    yield stack
    stack.restart()


def test_requests_still_running_when_the_grace_ends_are_answered_503_and_the_daemon_stops(restarted, fresh_emulators):
    stack = restarted
    slack, discord, salesforce = (stack.emulators[p] for p in ("SLACK", "DISCORD", "SALESFORCE"))
    slack_user, slack_id = connected(stack, "SLACK")
    discord_user, discord_id = connected(stack, "DISCORD")
    # A third caller is being sent a long answer, slowly (it reads nothing more): its status went out already.
    file_id = salesforce.add_file(200 * 1024 * 1024)
    streamed = download(stack, *connected(stack, "SALESFORCE"), file_id)
    whoami, refreshes = slack.calls["whoami"], discord.calls["refresh"]
    slack.hold("whoami")  # the provider has not answered when the grace ends
    discord.hold("refresh")
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            proxied = pool.submit(
                raw_request, stack, "POST", f"/integrations/{slack_id}/proxy/auth.test", user=slack_user
            )
            refresh = pool.submit(raw_request, stack, "POST", f"/integrations/{discord_id}/refresh", user=discord_user)
            wait_for(
                lambda: slack.calls["whoami"] == whoami + 1 and discord.calls["refresh"] == refreshes + 1,
                20,
                "both requests at their provider",
            )
            sent = _stop(stack)
            answers = {"proxy": proxied.result(BOUND), "refresh": refresh.result(BOUND)}
            answered = time.monotonic() - sent
            exit_code = stack.process.wait(BOUND)
            stopped = time.monotonic() - sent
    finally:
        slack.release("whoami")
        discord.release("refresh")
    with pytest.raises(http.client.IncompleteRead):  # cut short, not ended as if it were whole
        while streamed.read(1024 * 1024):
            pass
    for name, (status, headers, body) in answers.items():
        assert status == 503, (name, status, body[:300])
        error = json.loads(body)["error"]
        assert error["code"] == "DAEMON_STOPPING" and "stopping" in error["message"], (name, error)
        assert headers.get("Retry-After") == "1", (name, headers)
    assert GRACE - 0.5 <= answered, answered  # they had their grace ...
    assert stopped < BOUND and exit_code == 0, (stopped, exit_code)  # ... and the daemon stopped within its bound
    log = stack.logs()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("answered 503 DAEMON_STOPPING") == 2, log[-3000:]
    assert "POST /integrations/{id}/proxy/{path} answered 503 DAEMON_STOPPING" in log
    assert "POST /integrations/{id}/refresh answered 503 DAEMON_STOPPING" in log
    assert log.count("GET /integrations/{id}/proxy/{path} cut short: the daemon is stopping") == 1, log[-3000:]
    # Its request line keeps the 200 the caller got, and says why the body is short (not a 500).
    (line,) = [x for x in log.splitlines() if f"/ContentVersion/{file_id}/VersionData " in x]
    assert " 200 " in line and line.endswith("(body cut short: the daemon is stopping)"), line
    assert "nexusctl daemon stopped" in log


def test_a_request_that_finishes_within_the_grace_gets_its_answer(restarted, fresh_emulators):
    stack = restarted
    slack = stack.emulators["SLACK"]
    user, integration = connected(stack, "SLACK")
    before = slack.calls["whoami"]
    slack.hold("whoami")
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            proxied = pool.submit(raw_request, stack, "POST", f"/integrations/{integration}/proxy/auth.test", user=user)
            wait_for(lambda: slack.calls["whoami"] == before + 1, 20, "the call at the provider")
            sent = _stop(stack)
            wait_for(lambda: "request(s) in flight get up to" in stack.logs(), 10, "the daemon stopping")
            slack.release("whoami")  # the provider answers within the grace
            status, _headers, body = proxied.result(BOUND)
            exit_code = stack.process.wait(BOUND)
            stopped = time.monotonic() - sent
    finally:
        slack.release("whoami")
    assert status == 200 and json.loads(body)["ok"] is True, (status, body[:300])
    assert exit_code == 0 and stopped < BOUND, (exit_code, stopped)
    assert "DAEMON_STOPPING" not in stack.logs()


def test_a_request_whose_body_is_still_arriving_at_the_stop_reads_it_within_the_grace(restarted, fresh_emulators):
    """aiohttp's close() and shutdown() set _close and _force_close, and its data_received then dropped every byte
    that came: a request whose body was still arriving got nothing more of it, and 503 once the grace ended."""
    stack = restarted
    user, integration = connected(stack, "SLACK")
    body = json.dumps({"note": "x" * 4096}).encode()
    parts = urllib.parse.urlsplit(stack.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(
            (
                f"POST /integrations/{integration}/proxy/auth.test HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: {bearer(stack, user)}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):  # 100 Continue: the request is routed, its handler next
            interim += sock.recv(1)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body[:100])
        sent = _stop(stack)
        wait_for(lambda: "1 request(s) in flight get up to" in stack.logs(), 10, "the daemon stopping, one in flight")
        sock.sendall(body[100:])  # the rest, well within the grace
        response = http.client.HTTPResponse(sock)
        response.begin()
        status, answer = response.status, response.read()
        answered = time.monotonic() - sent
    assert status == 200 and json.loads(answer)["ok"] is True, (status, answer[:300])
    assert answered < GRACE - 1, answered  # answered when its body was in, not when the grace ended
    assert stack.process.wait(BOUND) == 0
    assert "DAEMON_STOPPING" not in stack.logs()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_signal_while_stopping_stops_now_and_says_what_it_abandoned(
    restarted, fresh_emulators, signum, status
):
    """The second SIGTERM or Ctrl-C during the grace: "stop now", as other servers take it; it was exit 1 (a bug's
    status, README) with nothing logged."""
    stack = restarted
    slack = stack.emulators["SLACK"]
    user, integration = connected(stack, "SLACK")
    before = slack.calls["whoami"]
    slack.hold("whoami")  # a request in flight through the whole grace
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(raw_request, stack, "POST", f"/integrations/{integration}/proxy/auth.test", user=user)
            wait_for(lambda: slack.calls["whoami"] == before + 1, 20, "the call at the provider")
            stack.process.send_signal(signum)
            wait_for(lambda: "request(s) in flight get up to" in stack.logs(), 10, "the daemon stopping")
            sent = time.monotonic()
            stack.process.send_signal(signum)
            exit_code = stack.process.wait(BOUND)
            stopped = time.monotonic() - sent
    finally:
        slack.release("whoami")
    name = signal.Signals(signum).name
    assert exit_code == status, (exit_code, stack.logs()[-2000:])  # 128 + the signal, as a shell reports it
    assert stopped < GRACE / 2, stopped  # now, not at the end of the grace
    log = stack.logs()
    assert f"second {name} while stopping: stopping now, abandoning 1 request(s) in flight" in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]
