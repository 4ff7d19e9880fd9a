"""The provider API proxy through a real daemon, against the emulators, on SQLite and PostgreSQL.

Connections are made the way users make them (the browser-style OAuth flow, SendGrid's API key); then
another service calls ``/integrations/{id}/proxy/{path}`` with provider paths only. This module's daemon
sweeps tokens hourly (not every second as the suite's default), so a token about to expire is still about
to expire when the proxy sees it.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from emulators.testkit import call
from prometheus_client.parser import text_string_to_metric_families
from support.callers import bearer, connected, download, downloading, file_target, proxy, raw_request
from support.fixtures import stack_per_database
from support.stack import run_sync, sync_log_end
from support.waiting import wait_for

from nexusctl.enums import Provider

# provider -> (method, path, query, expected (dotted key path -> predicate or value))
WHOAMI = {
    "TIKTOK": ("GET", "/v2/user/info/", "fields=open_id,display_name", "data.user.open_id"),
    "INSTAGRAM": ("GET", "/me", "fields=user_id,username", "user_id"),
    "FACEBOOK": ("GET", "/me", "fields=id,name", "id"),
    "YOUTUBE": ("GET", "/youtube/v3/channels", "part=snippet&mine=true", "items.0.id"),
    "TWITTER": ("GET", "/2/users/me", "", "data.id"),
    "LINKEDIN": ("GET", "/v2/userinfo", "", "sub"),
    "HUBSPOT": ("GET", "/account-info/v3/details", "", "portalId"),
    "SALESFORCE": ("GET", "/services/oauth2/userinfo", "", "user_id"),
    "SHOPIFY": ("GET", "/admin/api/2025-10/shop.json", "", "shop.myshopify_domain"),
    "WOOCOMMERCE": ("GET", "/wp-json/", "", "name"),
    "META_ADS": ("GET", "/me", "fields=id,name", "id"),
    "GOOGLE_ADS": ("GET", "/customers:listAccessibleCustomers", "", "resourceNames"),
    "TIKTOK_ADS": ("GET", "/open_api/v1.3/user/info/", "", "data.id"),
    "MAILCHIMP": ("GET", "/3.0/", "", "account_id"),
    "SENDGRID": ("GET", "/v3/user/username", "", "username"),
    "STRIPE": ("GET", "/v1/account", "", "id"),
    "PAYPAL": ("GET", "/v1/identity/openidconnect/userinfo", "schema=openid", "user_id"),
    "ZAPIER": ("GET", "/v1/profiles/me", "", "id"),
    "SLACK": ("POST", "/auth.test", "", "team_id"),
    "DISCORD": ("GET", "/v10/users/@me", "", "id"),
}


stack = stack_per_database(
    "proxy-stack",
    lambda emulators: {
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "REFRESH_SWEEP_INTERVAL": "3600",
        "GOOGLE_ADS_DEVELOPER_TOKEN": emulators["GOOGLE_ADS"].developer_token,
    },
)


def dig(value, dotted: str):
    for key in dotted.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


# --- who am I, for each of the 20 ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", [p.value for p in Provider])
def test_who_am_i_through_the_proxy_for_every_provider(stack, provider):
    user, integration = connected(stack, provider)
    method, path, query, field = WHOAMI[provider]
    got = proxy(stack, integration, method, path, user=user, query=query)
    assert got.status == 200, (provider, got.status, got.text[:300])
    assert dig(got.json(), field) not in (None, ""), (provider, got.text[:300])
    assert got.headers.get("X-Nexus-Provider") == provider
    assert "Set-Cookie" not in got.headers
    # Another platform service (the service role) may call it too; the token it sent never reaches the provider.
    service = proxy(stack, integration, method, path, user="content-service", roles=("service",), query=query)
    assert service.status == 200, service.text[:300]


# --- tokens handled for the caller ------------------------------------------------------------------------


def test_a_token_about_to_expire_is_refreshed_before_the_call(stack, fresh_emulators, monkeypatch):
    emu = stack.emulators["TWITTER"]
    monkeypatch.setattr(emu, "ACCESS_TTL", 30)  # within the proxy's 60 s margin from the start
    user, integration = connected(stack, "TWITTER")
    before = emu.calls["refresh"]
    got = proxy(stack, integration, "GET", "/2/users/me", user=user)
    assert got.status == 200, got.text
    assert emu.calls["refresh"] == before + 1  # refreshed first ...
    assert emu.calls["whoami"] == 2  # ... so the provider saw one call now (and one at connect), no 401 and retry


def test_a_token_answer_with_an_absurd_lifetime_connects_as_one_that_does_not_expire(
    stack, fresh_emulators, monkeypatch
):
    """A provider's expires_in is hostile input too: 10**20 seconds overflowed the token's expiry and the
    connect ended in an unexpected OverflowError. Beyond a century it is stored as "does not expire"."""
    emu = stack.emulators["TWITTER"]
    monkeypatch.setattr(emu, "ACCESS_TTL", 10**20)
    user, integration = connected(stack, "TWITTER")
    got = proxy(stack, integration, "GET", "/2/users/me", user=user)
    assert got.status == 200, got.text
    shown = stack.api("GET", f"/integrations/{integration}", user=user)
    assert shown.status == 200, shown.text
    assert shown.json()["data"]["isActive"] is True and shown.json()["data"]["expiresAt"] is None, shown.text


def kill_access_tokens(emu) -> None:
    """The provider stops accepting the access tokens it issued (revoked on its side); refresh tokens live on."""
    for token in list(emu.tokens.values()):
        if token.kind == "access":
            emu.kill(token)


def test_twenty_concurrent_calls_refused_with_401_refresh_once_and_retry(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    kill_access_tokens(emu)
    # The refresh is held at the provider until the 19 other refused callers wait for it (the daemon's log says
    # so): every call is refused while the old token is the stored one, on any machine.
    emu.hold("refresh")
    before, calls_before = emu.calls["refresh"], emu.calls["whoami"]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        try:
            futures = [pool.submit(proxy, stack, integration, "GET", "/v10/users/@me", user=user) for _ in range(20)]
            wait_for(
                lambda: stack.waiting_refreshes(integration) == 19 and emu.calls["refresh"] == before + 1,
                50,  # within the refresh's 60 s lease
                "one refresh at the provider and 19 refused calls waiting for it",
            )
        finally:
            emu.release("refresh")
        answers = [f.result(60) for f in futures]
    assert [a.status for a in answers] == [200] * 20, [a.text[:200] for a in answers if a.status != 200]
    assert emu.calls["refresh"] - before == 1  # exactly one refresh at the provider
    assert emu.calls["whoami"] - calls_before == 40  # each call refused once, then retried with the one new token


def test_a_refresh_refused_for_good_deactivates_and_answers_409(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.revoke_grants()  # the user removed the app: tokens and refresh token die
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
    assert got.status == 409 and got.json()["error"]["code"] == "INTEGRATION_INACTIVE", got.text
    shown = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert shown["isActive"] is False and shown["lastError"]
    events = [t for (t,) in stack.sql("SELECT type FROM outbox_events WHERE integration_id = %s", integration)]
    assert "integration.error" in events
    again = proxy(stack, integration, "GET", "/v10/users/@me", user=user)  # no provider call for an inactive one
    assert again.status == 409


def test_a_refresh_that_fails_for_now_answers_502_and_keeps_the_integration(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    kill_access_tokens(emu)
    emu.fail_next("refresh", 503)
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
    assert got.status == 502 and got.json()["error"]["code"] == "PROVIDER_ERROR", got.text
    assert "renewing the access token failed" in got.json()["error"]["message"]
    shown = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert shown["isActive"] is True and shown["lastError"]
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert health["status"] != "healthy", health


def test_a_token_refused_without_refresh_counts_toward_health(stack, fresh_emulators):
    emu = stack.emulators["STRIPE"]  # Stripe tokens do not expire and cannot be refreshed
    user, integration = connected(stack, "STRIPE")
    assert stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]["status"] == "healthy"
    kill_access_tokens(emu)
    got = proxy(stack, integration, "GET", "/v1/account", user=user)
    assert got.status == 502 and "refused the access token" in got.json()["error"]["message"], got.text
    health = stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]
    assert health["status"] in ("degraded", "broken"), health

    def refusals():
        rows = stack.sql(
            "SELECT data FROM outbox_events WHERE integration_id = %s AND type = %s", integration, "integration.error"
        )
        return [r for (r,) in rows if "TOKEN_REFUSED" in str(r)]

    assert len(refusals()) == 1
    proxy(stack, integration, "GET", "/v1/account", user=user)  # the same refusal again: no second event
    assert len(refusals()) == 1


# --- provider limits ----------------------------------------------------------------------------------------


def test_429_comes_back_with_retry_after(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.rate_limit_next("whoami", 7)
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
    assert got.status == 429 and got.headers.get("Retry-After") == "7", (got.status, dict(got.headers))


@pytest.mark.parametrize("provider", ["TIKTOK", "TWITTER"])
def test_a_reset_time_the_provider_sends_is_counted_from_the_shared_clock(stack, fresh_emulators, provider):
    """TikTok's x-ratelimit-reset and X's x-rate-limit-reset are epoch seconds of the provider's clock, which is
    the product's (the shared test clock, moved here an hour past the system clock): the wait is the 7 s the
    provider meant, not those 7 s plus the hour the clock was moved."""
    fresh_emulators.advance_clock(3600)
    emu = stack.emulators[provider]
    user, integration = connected(stack, provider)
    method, path, query, _field = WHOAMI[provider]
    emu.rate_limit_next("whoami", 7)
    got = proxy(stack, integration, method, path, user=user, query=query)
    assert got.status == 429 and 5 <= int(got.headers["Retry-After"]) <= 7, (got.status, dict(got.headers))


def test_a_provider_throttle_signal_besides_429_comes_back_as_429(stack, fresh_emulators):
    emu = stack.emulators["SALESFORCE"]  # the org's daily allowance: 403 REQUEST_LIMIT_EXCEEDED
    user, integration = connected(stack, "SALESFORCE")
    emu.fail_next("whoami", 403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    got = proxy(stack, integration, "GET", "/services/oauth2/userinfo", user=user)
    assert got.status == 429 and got.headers.get("Retry-After"), got.text
    assert got.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"  # the provider's body, as it sent it


def test_retries_wait_and_try_again_for_idempotent_calls_only(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.rate_limit_next("whoami", 1)
    calls = emu.calls["whoami"]
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user, query="retries=2")
    assert got.status == 200, got.text
    assert emu.calls["whoami"] - calls == 2  # throttled once, waited 1 s, then answered
    # Beyond the budget (or retries): passed back at once.
    emu.rate_limit_next("whoami", 3600)
    waited = time.monotonic()
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user, headers={"X-Nexus-Retries": "3"})
    assert got.status == 429 and got.headers.get("Retry-After") == "3600" and time.monotonic() - waited < 10
    # A POST (not idempotent, no Idempotency-Key) is not retried.
    slack = stack.emulators["SLACK"]
    user, integration = connected(stack, "SLACK")
    slack.fail_next("whoami", 503)
    calls = slack.calls["whoami"]
    got = proxy(stack, integration, "POST", "/auth.test", user=user, query="retries=2")
    assert got.status == 503 and slack.calls["whoami"] - calls == 1, got.text
    bad = proxy(stack, integration, "GET", "/auth.test", user=user, query="retries=many")
    assert bad.status == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661", "\uff11"])  # superscript two, Arabic-Indic one, fullwidth one
def test_retries_in_non_ascii_digits_are_refused_in_the_header_as_in_the_query(stack, digits):
    """str.isdigit() takes all three: '²' then crashed int() (a 500 with a traceback), the others read as 1."""
    user, integration = connected(stack, "SLACK")
    quoted = urllib.parse.quote(digits)
    by_query = proxy(stack, integration, "GET", "/auth.test", user=user, query=f"retries={quoted}")
    assert by_query.status == 400, by_query.text
    # The header as a user's curl sends it: the UTF-8 bytes (http.client writes a str header as Latin-1).
    on_wire = digits.encode().decode("latin-1")
    status, _, body = raw_request(
        stack, "GET", f"/integrations/{integration}/proxy/auth.test", user=user, headers={"X-Nexus-Retries": on_wire}
    )
    assert status == 400, body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["message"] == "retries must be a whole number from 0 to 5"


def test_a_providers_retry_after_in_non_ascii_digits_is_no_500(stack, fresh_emulators):
    """A provider's Retry-After of '²' passed str.isdigit(), then int() raised: the proxied call a 500."""
    slack = stack.emulators["SLACK"]
    user, integration = connected(stack, "SLACK")
    slack.rate_limit_next("whoami", "\u00b2")
    got = proxy(stack, integration, "GET", "/auth.test", user=user)
    assert got.status == 429, got.text  # the provider's answer, passed back


# --- safe by construction ---------------------------------------------------------------------------------

ESCAPES = [
    "//evil.example/x",
    "/http://evil.example/x",
    "/https:/evil.example",
    "/https:evil.example",
    "/%2F%2Fevil.example/x",
    "/%2f%2fevil.example",
    "/v10/%2e%2e/%2e%2e/x",
    "/v10/%2E%2E%2Fx",
    "/v10/..%2f..%2fx",
    "/v10/../../../x",
    "/..",
    "/v10/./users",
    "/v10\\users",
    "/%5cevil.example",
    "/@evil.example/x",
    "/user@evil.example/x",
    "/user%40evil.example/x",
    "/v10/%00/x",
    "/javascript:alert(1)",
    "/file:/etc/passwd",
    # A query, a fragment or a control character in the path, percent-encoded (decoded, the provider would read it)
    "/auth.test%3Fx=1",
    "/auth.test%3fx=1",
    "/auth.test%23x",
    "/auth.test%01",
    "/v10/users%09/@me",
    "/v10/users%0d%0aX-Injected:%201",
    "/v10/users%7f",
    "/v10/users%c2%85",
    "/v10/users#frag",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_every_path_escape_spelling_is_refused(stack, escape):
    user, integration = STATE.setdefault(stack.base, connected(stack, "DISCORD"))
    status, _headers, body = raw_request(stack, "GET", f"/integrations/{integration}/proxy{escape}", user=user)
    assert status == 400, (escape, status, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] == "VALIDATION_ERROR" and "the provider path" in error["message"], error


STATE: dict = {}


def test_a_header_value_with_a_control_character_is_refused_not_forwarded(stack, fresh_emulators):
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    before = emu.calls["whoami"]
    target = f"/integrations/{integration}/proxy/services/oauth2/userinfo"
    for value in ("a\x01b", "a\x7fb", "a\x1bb", "a\x00b"):
        status, _headers, body = raw_request(stack, "GET", target, user=user, headers={"X-Custom": value})
        assert status == 400 and json.loads(body)["error"]["code"] == "VALIDATION_ERROR", (value, status, body[:200])
    assert emu.calls["whoami"] == before  # none reached the provider
    status, _headers, body = raw_request(stack, "GET", target, user=user, headers={"X-Custom": "a\tb"})
    assert status == 200, body[:200]  # a tab is allowed in a value (RFC 9110 5.5)
    assert emu.last_headers.get("X-Custom") == "a\tb"


def test_the_callers_credentials_cookies_and_hop_by_hop_headers_stay_behind(stack, fresh_emulators):
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    emu.fail_next(
        "whoami",
        200,
        {"user_id": "005x"},
        headers={"Set-Cookie": "BrowserId=abc123; Path=/; Secure", "X-Provider-Note": "kept"},
    )
    headers = {
        "Cookie": "session=caller-cookie",
        "Proxy-Authorization": "Basic Y2FsbGVyOnNlY3JldA==",
        "Connection": "X-Private-Hop",
        "X-Private-Hop": "hop-value",
        "X-Forwarded-For": "10.0.0.1",
        "Accept": "application/json",
        "X-Custom": "passes",
    }
    target = f"/integrations/{integration}/proxy/services/oauth2/userinfo"
    status, answer_headers, body = raw_request(stack, "GET", target, user=user, headers=headers)
    assert status == 200, body[:200]
    assert "Set-Cookie" not in answer_headers and "set-cookie" not in {k.lower() for k in answer_headers}
    assert answer_headers.get("X-Provider-Note") == "kept"
    seen = {k.lower(): v for k, v in emu.last_headers.items()}
    assert seen["authorization"].startswith("Bearer ") and "caller" not in seen["authorization"]
    assert bearer(stack, user).split()[1] not in json.dumps(seen)  # our caller's JWT never reaches the provider
    for name in ("cookie", "proxy-authorization", "x-private-hop", "x-forwarded-for"):
        assert name not in seen, name
    assert seen.get("x-custom") == "passes" and seen.get("accept") == "application/json"
    # Connection on several lines is one list (RFC 9110 5.3): a header named on any line stays behind.
    for lines in (("X-Private-Hop", "keep-alive"), ("keep-alive", "X-Private-Hop")):
        pairs = [*(("Connection", line) for line in lines), ("X-Private-Hop", "hop-value"), ("X-Custom", "passes")]
        status, _answer_headers, body = raw_request(stack, "GET", target, user=user, headers=pairs)
        assert status == 200, body[:200]
        seen = {k.lower(): v for k, v in emu.last_headers.items()}
        assert "x-private-hop" not in seen and seen.get("x-custom") == "passes", (lines, seen)
    # The Connection the nginx front relays (X-Nexus-Connection) is read the same way, and never forwarded.
    pairs = [("X-Nexus-Connection", "X-Private-Hop"), ("X-Private-Hop", "hop-value")]
    status, _answer_headers, body = raw_request(stack, "GET", target, user=user, headers=pairs)
    assert status == 200, body[:200]
    seen = {k.lower() for k in emu.last_headers}
    assert "x-private-hop" not in seen and "x-nexus-connection" not in seen, seen


def test_request_bodies_over_10_mb_are_refused(stack):
    user, integration = connected(stack, "SLACK")
    big = b"x" * (10 * 1024 * 1024 + 1)
    status, _h, body = raw_request(
        stack,
        "POST",
        f"/integrations/{integration}/proxy/chat.postMessage",
        user=user,
        headers={"Content-Type": "application/json"},
        body=big,
    )
    assert status == 413 and json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert json.loads(body)["error"]["message"] == "the request body is over 10 MiB"  # 10 x 1,048,576 bytes


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_200_mb_answer_streams_with_flat_memory(stack, fresh_emulators):
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    size = 200 * 1024 * 1024
    file_id = emu.add_file(size)
    pid = stack.process.pid
    baseline = _rss_kib(pid)
    response = download(stack, user, integration, file_id, timeout=120)
    received, peak = 0, baseline
    while chunk := response.read(1024 * 1024):
        received += len(chunk)
        peak = max(peak, _rss_kib(pid))
    response.close()
    assert received == size
    # The daemon never holds the answer: its resident memory grows by a few buffers, not by 200 MB.
    assert peak - baseline < 48 * 1024, (baseline, peak)
    assert peak < 200 * 1024, peak


def _sample(metrics: str, name: str, **labels) -> float:
    """One sample of the daemon's /metrics text (0 when absent)."""
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_an_answer_the_provider_cuts_off_mid_body_is_truncated_for_the_caller_and_recorded_with_the_status_sent(
    stack, fresh_emulators
):
    """The provider sends its status (200) and part of the body, then closes the connection. The caller has that
    status already: it sees the body end before its end (truncated, never a clean short answer), and the daemon's
    request line and metrics keep the 200 it sent, with the note that the body was cut short, not a 500."""
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    file_id = emu.add_file(4 * 1024 * 1024, cut_after=1024 * 1024 + 100)  # over WHOLE_BYTES: streamed
    route = {"method": "GET", "route": "/integrations/{id}/proxy/{path}"}
    before = call("GET", stack.base + "/metrics").text
    target = file_target(integration, file_id)
    with downloading(stack, user, integration, file_id, timeout=30) as response:
        assert response.status == 200
        received = 0
        with pytest.raises(http.client.IncompleteRead):  # cut short, not ended as if it were whole
            while chunk := response.read(65536):
                received += len(chunk)
        assert received <= 1024 * 1024 + 100
    line = wait_for(
        lambda: next((x for x in stack.logs().splitlines() if f"GET {target} " in x), None), 10, "the request line"
    )
    assert f"GET {target} 200 " in line, line
    assert line.endswith("(body cut short: the provider's answer broke off)"), line
    assert "the provider's answer broke off (ClientPayloadError)" in stack.logs()
    after = call("GET", stack.base + "/metrics").text
    counted = {
        status: _sample(after, "nexus_http_requests_total", **route, status=status)
        - _sample(before, "nexus_http_requests_total", **route, status=status)
        for status in ("200", "500")
    }
    assert counted == {"200": 1, "500": 0}
    cut = "nexus_http_answers_cut_short_total"
    assert _sample(after, cut, **route, cause="provider") - _sample(before, cut, **route, cause="provider") == 1


def test_an_error_answer_that_breaks_off_while_it_is_read_is_a_provider_error_not_a_500(stack, fresh_emulators):
    """A small error answer is read before anything goes to the caller (for the provider's throttling signal): one
    that breaks off there is PROVIDER_ERROR (502) naming the provider, not an error escaping as a 500."""
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    file_id = emu.add_file(4000, cut_after=100, status=500)
    got = proxy(
        stack, integration, "GET", f"/services/data/v62.0/sobjects/ContentVersion/{file_id}/VersionData", user=user
    )
    assert got.status == 502, (got.status, got.text[:300])
    error = got.json()["error"]
    assert error["code"] == "PROVIDER_ERROR" and "broke off before its end" in error["message"], error
    assert "unhandled error" not in stack.logs()


def test_a_caller_that_hangs_up_mid_answer_is_recorded_as_gone_not_as_the_providers_break(stack, fresh_emulators):
    emu = stack.emulators["SALESFORCE"]
    user, integration = connected(stack, "SALESFORCE")
    file_id = emu.add_file(200 * 1024 * 1024)  # far more than the sockets' buffers hold
    route = {"method": "GET", "route": "/integrations/{id}/proxy/{path}"}
    before, logged = call("GET", stack.base + "/metrics").text, len(stack.logs())
    target = file_target(integration, file_id)
    with downloading(stack, user, integration, file_id, timeout=30) as response:  # hangs up at the block's end
        assert response.status == 200 and response.read(1024 * 1024)  # with most of the answer unread
    line = wait_for(
        lambda: next((x for x in stack.logs().splitlines() if f"GET {target} " in x), None), 20, "the request line"
    )
    assert f"GET {target} 200 " in line and line.endswith("(body cut short: the caller went away)"), line
    assert "the provider's answer broke off" not in stack.logs()[logged:]
    after = call("GET", stack.base + "/metrics").text
    cut = "nexus_http_answers_cut_short_total"
    assert _sample(after, cut, **route, cause="caller") - _sample(before, cut, **route, cause="caller") == 1


# --- who may, and what operators see ---------------------------------------------------------------------


def test_another_users_integration_is_refused(stack):
    owner, integration = connected(stack, "DISCORD")
    stranger = proxy(stack, integration, "GET", "/v10/users/@me", user=uuid.uuid4())
    assert stranger.status == 404 and stranger.json()["error"]["code"] == "INTEGRATION_NOT_FOUND"
    admin = proxy(stack, integration, "GET", "/v10/users/@me", user=uuid.uuid4(), roles=("admin",))
    assert admin.status == 404  # reading every user's rows is not acting as them: that is the service role
    anonymous = stack.api("GET", f"/integrations/{integration}/proxy/v10/users/@me")
    assert anonymous.status == 401
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=owner).status == 200


def test_logs_and_metrics_name_provider_method_status_never_query_or_token(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user, query="marker=q-secret-value-123")
    assert got.status == 200
    logs = stack.logs()
    assert "proxy call DISCORD GET" in logs and "-> 200" in logs
    assert "q-secret-value-123" not in logs
    for token in emu.tokens:
        assert token not in logs
    metrics = call("GET", stack.base + "/metrics").text
    assert 'nexus_proxy_calls_total{method="GET",provider="DISCORD",status="200"}' in metrics  # labels sorted
    assert 'nexus_proxy_call_seconds_count{provider="DISCORD"}' in metrics
    assert "q-secret-value-123" not in metrics
    assert 'route="/integrations/{id}/proxy/{path}"' in metrics  # one label for every proxied path


def test_the_cli_calls_a_provider_through_the_same_core(stack, tmp_path):
    user, integration = connected(stack, "SLACK")
    done = stack.cli("integrations", "call", integration, "POST", "/auth.test", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == 200 and answer["body"]["ok"] is True and answer["body"]["team_id"]
    body = tmp_path / "message.json"
    body.write_text(json.dumps({"channel": "C0DEMO0001", "text": "hello"}))
    raw = stack.cli("integrations", "call", integration, "GET", "/conversations.list", "--query", "limit=5")
    assert raw.returncode == 0 and json.loads(raw.stdout)["ok"] is True, raw.stderr
    bad = stack.cli("integrations", "call", integration, "GET", "//evil.example/x")
    assert bad.returncode == 2 and "VALIDATION_ERROR" in bad.stderr + bad.stdout
    # A query, a fragment or a control character in the path is refused, not sent encoded (/x%3Fa=1, /x%09...).
    for path in ("/conversations.list?limit=5", "/auth.test#frag", "/auth.test\x01", "/auth.test\tx"):
        refused = stack.cli("integrations", "call", integration, "GET", path)
        assert refused.returncode == 2 and "VALIDATION_ERROR" in refused.stderr, (path, refused.stderr)
        assert "the provider path" in refused.stderr, (path, refused.stderr)
    # A header that would split into two at the provider (or that the HTTP client refuses) is a usage error naming
    # it, not INTERNAL_ERROR; never its value.
    for header, name in (("X-A: b\r\nX-Inject: 1", "'X-A'"), ("X-A: b\x01", "'X-A'"), ("X B: 1", "'X B'")):
        refused = stack.cli("integrations", "call", integration, "GET", "/auth.test", "--header", header)
        assert refused.returncode == 2 and "VALIDATION_ERROR" in refused.stderr, (header, refused.stderr)
        assert name in refused.stderr and "Inject" not in refused.stderr, (header, refused.stderr)
    posted = stack.cli(
        "integrations",
        "call",
        integration,
        "POST",
        "/chat.postMessage",
        "--data",
        f"@{body}",
        "--header",
        "X-Custom: yes",
        "--json",
    )
    assert posted.returncode == 0, posted.stderr
    assert json.loads(posted.stdout)["status"] == 200


# --- one rate budget per integration, shared with the syncs -------------------------------------------------


def test_a_wait_a_sync_was_told_answers_proxied_calls_429_without_calling_the_provider(stack, fresh_emulators):
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    emu.rate_limit_next("conversations.list", retry_after=3600)  # beyond the run's budget: the run stops
    assert run_sync(stack, integration, user, "fetch_channels") == "FAILED"
    calls = emu.calls["whoami"]
    got = proxy(stack, integration, "POST", "/auth.test", user=user)
    assert got.status == 429 and got.json()["error"]["code"] == "RATE_LIMITED", got.text
    assert 3500 < int(got.headers["Retry-After"]) <= 3600, got.headers
    assert emu.calls["whoami"] == calls  # the provider was not called
    # Another integration of the same provider has its own budget.
    other_user, other = connected(stack, "SLACK")
    assert proxy(stack, other, "POST", "/auth.test", user=other_user).status == 200
    calls = emu.calls["whoami"]
    # The scale-out shape (PostgreSQL + Redis): another daemon keeps the same wait.
    if "REDIS_URL" in stack.env:
        base, _process = stack.another_daemon()
        there = stack.api("POST", f"/integrations/{integration}/proxy/auth.test", user=user, base=base)
        assert there.status == 429 and int(there.headers["Retry-After"]) > 3500, there.text
        assert emu.calls["whoami"] == calls
    fresh_emulators.advance_clock(3601)  # the wait is over (the clock the daemons and the emulators share)
    calls = emu.calls["whoami"]
    assert proxy(stack, integration, "POST", "/auth.test", user=user).status == 200
    assert emu.calls["whoami"] == calls + 1


def test_a_wait_the_proxy_was_told_defers_a_sync_until_it_ends(stack, fresh_emulators):
    """A wait longer than the run's budget (SYNC_RATE_LIMIT_BUDGET): the run goes back to PENDING until the
    wait ends (not FAILED: the provider was not even called), and the daemon's sync runner takes it then."""
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    emu.rate_limit_next("conversations.list", retry_after=3600)
    got = proxy(stack, integration, "GET", "/conversations.list", user=user)
    assert got.status == 429 and got.headers["Retry-After"] == "3600", got.text
    listed = emu.calls["conversations.list"]
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_channels"})
    log_id = started.json()["data"]["id"]
    assert sync_log_end(stack, log_id) == "DEFERRED"
    logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
    (shown,) = [row for row in logs if row["id"] == log_id]
    assert shown["status"] == "PENDING" and shown["error"] is None, shown
    meta = shown["metadata"]
    assert meta["errorCode"] == "RATE_LIMITED" and "asked this integration's callers to wait" in meta["rateLimitReason"]
    until = meta["rateLimitedUntil"]
    assert shown["runAfter"].startswith(until[:16]), shown
    assert emu.calls["conversations.list"] == listed  # the sync did not call the provider either
    reasons = [r["code"] for r in _health(stack, integration, user)["reasons"]]
    assert reasons == ["PROXY_RATE_LIMITED"], reasons  # the proxied 429's; the deferred run adds none
    fresh_emulators.advance_clock(3602)  # the wait is over: the daemon's runner takes the run again
    assert sync_log_end(stack, log_id, timeout=60, ends=("COMPLETED", "FAILED")) == "COMPLETED"
    assert emu.calls["conversations.list"] == listed + 1


def test_a_short_wait_the_proxy_was_told_is_waited_out_by_a_sync(stack, fresh_emulators):
    emu = stack.emulators["SLACK"]
    emu.set_records("channels", [{"id": "C1", "name": "general"}])
    user, integration = connected(stack, "SLACK")
    emu.rate_limit_next("whoami", retry_after=2)
    assert proxy(stack, integration, "POST", "/auth.test", user=user).status == 429
    assert run_sync(stack, integration, user, "fetch_channels") == "COMPLETED"
    (meta,) = stack.sql(
        "SELECT metadata FROM integration_sync_logs WHERE integration_id = %s ORDER BY created_at DESC LIMIT 1",
        integration,
    )[0]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["rateLimitWaits"] == 1 and meta["rateLimitWaitedSeconds"] >= 1, meta  # waited, within its budget


# --- proxied calls count toward health ----------------------------------------------------------------------


def _health(stack, integration, user) -> dict:
    return stack.api("GET", f"/integrations/{integration}/health", user=user).json()["data"]


def test_proxied_throttling_and_provider_failures_degrade_health_until_a_good_answer(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    assert _health(stack, integration, user)["status"] == "healthy"
    # The caller's own mistakes (a path the provider does not have, a bad request) are not the integration's.
    assert proxy(stack, integration, "GET", "/v10/no-such-thing", user=user).status == 404
    emu.fail_next("whoami", 400, {"message": "bad request", "code": 50035})
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 400
    assert _health(stack, integration, user)["status"] == "healthy"
    emu.fail_next("whoami", 503)
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 503
    record = _health(stack, integration, user)
    assert record["status"] == "degraded" and [r["code"] for r in record["reasons"]] == ["PROXY_FAILING"], record
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 200
    assert _health(stack, integration, user)["status"] == "healthy"
    emu.rate_limit_next("whoami", 2)
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 429
    record = _health(stack, integration, user)
    assert [r["code"] for r in record["reasons"]] == ["PROXY_RATE_LIMITED"], record
    fresh_emulators.advance_clock(3)
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 200
    assert _health(stack, integration, user)["status"] == "healthy"


# --- the integration cache ----------------------------------------------------------------------------------


def test_a_disconnected_or_deactivated_integration_is_refused_at_once_and_by_other_daemons(stack, fresh_emulators):
    user, integration = connected(stack, "DISCORD")
    assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 200  # cached now
    deactivated = stack.api("PATCH", f"/integrations/{integration}", user=user, body={"isActive": False})
    assert deactivated.status == 200, deactivated.text
    got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
    assert got.status == 409 and got.json()["error"]["code"] == "INTEGRATION_INACTIVE", got.text
    # Another process (the CLI) deactivates, then deletes, one this daemon has cached: refused within the
    # cache's second (core.proxy_cache.TTL).
    for command, code in ((("update", "--inactive"), "INTEGRATION_INACTIVE"), (("delete", "--yes"), "NOT_FOUND")):
        user, integration = connected(stack, "DISCORD")
        assert proxy(stack, integration, "GET", "/v10/users/@me", user=user).status == 200
        done = stack.cli("integrations", command[0], integration, command[1])
        assert done.returncode == 0, done.stderr
        started = time.monotonic()
        wait_for(
            lambda: proxy(stack, integration, "GET", "/v10/users/@me", user=user).status in (404, 409),
            3,
            "the change seen by the daemon",
        )
        assert time.monotonic() - started < 2.5
        got = proxy(stack, integration, "GET", "/v10/users/@me", user=user)
        assert code in got.json()["error"]["code"], got.text


def test_shopifys_graphql_throttle_answered_200_is_a_429_and_kept_for_the_syncs(stack, fresh_emulators):
    emu = stack.emulators["SHOPIFY"]
    user, integration = connected(stack, "SHOPIFY")
    path = "/admin/api/2025-10/graphql.json"
    good = proxy(stack, integration, "POST", path, user=user, body={"query": "{ shop { name } }"})
    assert good.status == 200 and good.json()["data"]["shop"]["name"], good.text
    emu.rate_limit_next("whoami", 3)  # HTTP 200 THROTTLED, the cost bucket refilling in 3 s
    got = proxy(stack, integration, "POST", path, user=user, body={"query": "{ shop { name } }"})
    assert got.status == 429 and got.headers["Retry-After"] == "3", (got.status, got.text)
    assert got.json()["errors"][0]["extensions"]["code"] == "THROTTLED"  # the provider's own body
    products = emu.calls["products"]
    assert run_sync(stack, integration, user, "fetch_products") == "COMPLETED"  # waited out (within its budget)
    (meta,) = stack.sql(
        "SELECT metadata FROM integration_sync_logs WHERE integration_id = %s ORDER BY created_at DESC LIMIT 1",
        integration,
    )[0]
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["rateLimitWaits"] >= 1 and emu.calls["products"] > products, meta
