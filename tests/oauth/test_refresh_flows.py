"""Refresh through the daemon: each provider's style, rotation, one call under concurrency, failures.

Each test starts from reset emulators (``fresh_emulators``), so every token
the emulator knows was issued to this test's connection.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid

import pytest
from emulators.testkit import CallbackSink
from support import clock
from support.callers import tenant_of
from support.stack import NEXUSCTL, REFRESH_WAITS
from support.waiting import wait_for

from nexusctl.providers.registry import SPECS
from nexusctl.providers.spec import ConnectKind, RefreshStyle

# From the service's provider specs, so a new provider is tested here without anyone remembering to list it.
REFRESHABLE = [provider.value for provider, spec in SPECS.items() if spec.can_refresh]
ROTATING = {provider.value for provider, spec in SPECS.items() if spec.refresh is RefreshStyle.ROTATING}
NEVER_EXPIRE = [provider.value for provider, spec in SPECS.items() if not spec.can_refresh]


def connected(stack, provider: str):
    user = uuid.uuid4()
    if SPECS[provider].kind is ConnectKind.API_KEY:  # SendGrid: the user pastes a key, no browser journey
        made = stack.api(
            "POST",
            "/integrations/api-key",
            user=user,
            body={"userId": str(user), "provider": provider, "apiKey": stack.emulators.sendgrid_key()},
        )
        assert made.status == 201, made.text
        return user, made.json()["data"]["id"]
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def alive_refresh_tokens(emu) -> set[str]:
    return {value for value, token in emu.tokens.items() if token.kind == "refresh" and emu.valid_refresh(value)}


def alive_tokens(emu) -> set[str]:
    return {v for v, t in emu.tokens.items() if emu.valid_refresh(v) if t.kind == "refresh"} | {
        v for v, t in emu.tokens.items() if t.kind != "refresh" and emu.valid_access(v)
    }


def age_instagram_token(stack, integration_id: str) -> None:
    """Instagram renews only tokens >= 24 h old: a day passes, for the daemon and the provider alike (the shared
    clock, nexusctl.clock; the token keeps the issue time the daemon stored at connect)."""
    stack.emulators.advance_clock(25 * 3600)


def expire_in(stack, seconds: float, integration_id: str) -> None:
    """Time passes (the shared clock) until the integration's token expires in ``seconds``: support.clock's."""
    clock.expire_in(stack, seconds, integration_id)


@pytest.mark.parametrize("provider", REFRESHABLE)
def test_every_refreshable_provider_refreshes(stack, fresh_emulators, provider):
    emu = stack.emulators[provider]
    if provider == "SALESFORCE":
        emu.rotation = True  # an app setting there; rotation must work when it is on
    user, integration = connected(stack, provider)
    if provider == "INSTAGRAM":
        age_instagram_token(stack, integration)
    before_refresh = alive_refresh_tokens(emu)
    (before_cipher,) = stack.sql("SELECT access_token FROM integrations WHERE id = %s", integration)[0]
    calls = emu.calls["refresh"] + emu.calls["exchange"]
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 200, answer.text
    assert answer.json()["data"]["isActive"] is True
    assert emu.calls["refresh"] + emu.calls["exchange"] == calls + 1
    (after_cipher,) = stack.sql("SELECT access_token FROM integrations WHERE id = %s", integration)[0]
    assert after_cipher != before_cipher
    if provider in ROTATING or provider == "SALESFORCE":
        # We stored the rotated refresh token: refreshing again uses it, and by then the provider has
        # killed the original (Shopify keeps the previous one alive until the new one is first used).
        again = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
        assert again.status == 200, again.text
        assert before_refresh and not (before_refresh & alive_refresh_tokens(emu))
    events = [t for (t,) in stack.sql("SELECT type FROM outbox_events WHERE integration_id = %s", integration)]
    assert "integration.refreshed" in events


def test_a_refresh_queues_its_event_to_the_webhooks_that_want_it(stack, fresh_emulators):
    """With a webhook on the integration the store takes its transaction path (PostgreSQL writes the refresh
    without one when there is none): the event once, one delivery to the webhook subscribed to it, none to
    the other."""
    user, integration = connected(stack, "DISCORD")
    with CallbackSink(200) as sink:
        hooks = {}
        for events in (["integration.refreshed"], ["media.*"]):
            made = stack.api(
                "POST",
                "/integrations/webhooks",
                user=user,
                body={"integrationId": integration, "url": sink.url, "events": events},
            )
            assert made.status == 201, made.text
            hooks[events[0]] = made.json()["data"]["id"]
        answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
        assert answer.status == 200, answer.text
    refreshed = stack.sql(
        "SELECT id FROM outbox_events WHERE integration_id = %s AND type = 'integration.refreshed'", integration
    )
    assert len(refreshed) == 1
    queued = stack.sql("SELECT webhook_id, event FROM webhook_deliveries WHERE event = 'integration.refreshed'")
    queued = [(str(uuid.UUID(str(w))), e) for w, e in queued]
    assert [(w, e) for w, e in queued if w in hooks.values()] == [
        (hooks["integration.refreshed"], "integration.refreshed")
    ]


@pytest.mark.parametrize("provider", NEVER_EXPIRE)
def test_tokens_that_never_expire_say_so(stack, fresh_emulators, provider):
    user, integration = connected(stack, provider)
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 400 and "do not expire" in answer.json()["error"]["message"]


def test_twenty_concurrent_refreshes_make_one_provider_call(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    # The winner's provider call is held until every other request (two CLI processes among them, however long
    # they take to start) has read the tokens and waits for it, as each says in its log: concurrent for sure,
    # on any machine, rather than a delay hoped long enough.
    emu.hold("refresh")
    before = emu.calls["refresh"]
    results: list = []
    barrier = threading.Barrier(20)

    def api_refresh():
        barrier.wait()
        results.append(stack.api("POST", f"/integrations/{integration}/refresh", user=user))

    clis = [
        subprocess.Popen(
            [str(NEXUSCTL), "-v", "integrations", "refresh", integration, "--json"],
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    said: list[str] = []  # the CLIs' stderr lines, as they come

    def read(process):
        for line in process.stderr:
            said.append(line)

    threads = [threading.Thread(target=api_refresh) for _ in range(20)]
    threads += [threading.Thread(target=read, args=(p,)) for p in clis]
    try:
        for t in threads:
            t.start()
        wait_for(
            lambda: (
                stack.waiting_refreshes(integration) + sum(REFRESH_WAITS in line for line in said) == 21
                and emu.calls["refresh"] == before + 1
            ),
            50,  # within the winner's 60 s lease
            "one provider call in flight and 21 refreshes waiting for it",
        )
    finally:
        emu.release("refresh")
        for t in threads:
            t.join(90)
        for p in clis:
            p.wait(30)
    assert emu.calls["refresh"] == before + 1
    api = results
    assert len(api) == 20 and all(r.status == 200 for r in api), [r.text for r in api if r.status != 200]
    assert all(p.returncode == 0 for p in clis), said
    outputs = [json.loads(p.stdout.read()) for p in clis]
    expiries = {r.json()["data"]["expiresAt"] for r in api} | {o["expiresAt"] for o in outputs}
    assert len(expiries) == 1  # everyone got the one new token's expiry
    assert len(alive_refresh_tokens(emu)) == 1


def test_two_daemons_sharing_the_database_make_one_provider_call(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    user, integration = connected(stack, "TIKTOK")
    other_base, other = stack.another_daemon()
    emu.hold("refresh")  # until the fifteen others wait for the one under way (their daemons' logs say so)
    before = emu.calls["refresh"]
    results, barrier = [], threading.Barrier(16)

    def hit(base):
        barrier.wait()
        results.append(stack.api("POST", f"/integrations/{integration}/refresh", user=user, base=base))

    threads = [threading.Thread(target=hit, args=(base,)) for base in [stack.base, other_base] * 8]
    try:
        for t in threads:
            t.start()
        wait_for(
            lambda: stack.waiting_refreshes(integration) == 15 and emu.calls["refresh"] == before + 1,
            50,  # within the winner's 60 s lease
            "one provider call in flight and 15 refreshes waiting for it",
        )
    finally:
        emu.release("refresh")
        for t in threads:
            t.join(60)
        other.terminate()
        other.wait(20)
    assert emu.calls["refresh"] == before + 1
    assert [r.status for r in results] == [200] * 16, [r.text for r in results if r.status != 200]
    assert len({r.json()["data"]["expiresAt"] for r in results}) == 1


def test_a_dead_grant_deactivates_the_integration(stack, fresh_emulators):
    emu = stack.emulators["TWITTER"]
    user, integration = connected(stack, "TWITTER")
    emu.revoke_grants()
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 401 and answer.json()["error"]["code"] == "REFRESH_FAILED"
    data = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert data["isActive"] is False and data["lastError"]
    events = [t for (t,) in stack.sql("SELECT type FROM outbox_events WHERE integration_id = %s", integration)]
    assert "integration.error" in events
    again = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert again.status == 401 and "connect it again" in again.json()["error"]["message"]


def test_outage_is_provider_error_and_keeps_the_integration(stack, fresh_emulators):
    emu = stack.emulators["YOUTUBE"]
    user, integration = connected(stack, "YOUTUBE")
    emu.fail_next("refresh", status=503)
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 502 and answer.json()["error"]["code"] == "PROVIDER_ERROR"
    data = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert data["isActive"] is True and data["lastError"]
    assert stack.api("POST", f"/integrations/{integration}/refresh", user=user).status == 200  # lease released


@pytest.mark.parametrize(
    "provider, endpoint, hint",
    [
        ("DISCORD", "refresh", True),  # HTTP 429 + Retry-After
        ("META_ADS", "exchange", True),  # Graph code 17 on HTTP 400, wait in X-Business-Use-Case-Usage
        ("FACEBOOK", "exchange", False),  # Graph code 4 on HTTP 403, no wait given
    ],
)
def test_rate_limit_is_429_with_retry_after(stack, fresh_emulators, provider, endpoint, hint):
    emu = stack.emulators[provider]
    user, integration = connected(stack, provider)
    emu.rate_limit_next(endpoint, retry_after=120)
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
    assert answer.status == 429 and answer.json()["error"]["code"] == "RATE_LIMITED", answer.text
    if hint:
        assert 1 <= int(answer.headers["Retry-After"]) <= 120
    data = stack.api("GET", f"/integrations/{integration}", user=user).json()["data"]
    assert data["isActive"] is True  # throttling is not a dead grant


def test_someone_elses_integration_cannot_be_refreshed(stack, fresh_emulators):
    _, integration = connected(stack, "DISCORD")
    answer = stack.api("POST", f"/integrations/{integration}/refresh", user=uuid.uuid4())
    assert answer.status == 404 and answer.json()["error"]["code"] == "INTEGRATION_NOT_FOUND"


@pytest.mark.parametrize("provider", ["DISCORD", "YOUTUBE", "SLACK", "SHOPIFY", "HUBSPOT", "STRIPE", "FACEBOOK"])
def test_delete_revokes_at_the_provider_then_deletes(stack, fresh_emulators, provider):
    emu = stack.emulators[provider]
    user, integration = connected(stack, provider)
    live = alive_tokens(emu)
    answer = stack.api("DELETE", f"/integrations/{integration}", user=user)
    assert answer.status == 200 and answer.json()["data"]["revoked"] is True, answer.text
    assert emu.calls["revoke"] >= 1
    assert not (alive_tokens(emu) >= live)  # something we held is dead now
    assert stack.api("GET", f"/integrations/{integration}", user=user).status == 404
    events = [t for (t,) in stack.sql("SELECT type FROM outbox_events WHERE integration_id = %s", integration)]
    assert "integration.disconnected" in events


def test_a_failed_revoke_is_logged_not_fatal(stack, fresh_emulators):
    emu = stack.emulators["DISCORD"]
    user, integration = connected(stack, "DISCORD")
    emu.fail_next("revoke", status=503)
    answer = stack.api("DELETE", f"/integrations/{integration}", user=user)
    assert answer.status == 200 and answer.json()["data"]["revoked"] is False
    assert "revoking DISCORD integration" in stack.logs()


def test_timestamps_are_utc_with_z_in_api_and_cli_json(stack, fresh_emulators):
    """One form everywhere: 2026-01-02T03:04:05Z, never +00:00 (nor no zone at all)."""
    user, integration = connected(stack, "FACEBOOK")  # its metadata carries tokenIssuedAt
    assert stack.api("POST", f"/integrations/{integration}/refresh", user=user).status == 200
    shown = stack.api("GET", f"/integrations/{integration}", user=user)
    assert shown.status == 200 and "+00:00" not in shown.text
    assert shown.json()["data"]["metadata"]["provider"]["tokenIssuedAt"].endswith("Z")
    listed = stack.cli("events", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    refreshed = [e for e in json.loads(listed.stdout) if e["type"] == "integration.refreshed"]
    assert refreshed and all(e["payload"]["expiresAt"].endswith("Z") for e in refreshed)
    assert "+00:00" not in listed.stdout
    status = stack.cli("db", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert all(m["appliedAt"].endswith("Z") for m in json.loads(status.stdout)["migrations"])
