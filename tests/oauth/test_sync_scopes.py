"""Each sync action through the real path, with the scopes the service requests: the browser-flow connect,
``POST /integrations/:id/sync``, the run COMPLETED with the emulator's items. A grant lacking a needed scope (the
user unticked it at the consent) fails the run with MISSING_SCOPES naming the scope, before any call, and the
integration's health names it too.

Approval-only scopes (LinkedIn r_member_social, PayPal Transaction Search, Shopify read_all_orders) are asked for
only when the operator lists them in <PROVIDER>_APPROVED_SCOPES; the emulators grant them only to an approved app.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from support import clock
from support.callers import tenant_of

SEARCH = "https://uri.paypal.com/services/reporting/search/read"
APPROVED = {
    "LINKEDIN_APPROVED_SCOPES": "r_member_social",
    "PAYPAL_APPROVED_SCOPES": SEARCH,
    "SHOPIFY_APPROVED_SCOPES": "read_all_orders",
}
APPROVAL_AT_EMULATOR = {"LINKEDIN": "r_member_social", "PAYPAL": SEARCH, "SHOPIFY": "read_all_orders"}
UTC = dt.timezone.utc


def _operator_approval(stack, on: bool) -> None:
    """The daemon with (or without) the approval-only scopes configured; restarted only when that changes."""
    wanted = APPROVED if on else dict.fromkeys(APPROVED)
    if any(stack.env.get(name) != value for name, value in wanted.items()):
        stack.restart(**wanted)


def _connect(stack, provider: str, *, without: tuple[str, ...] = ()):
    if without:
        stack.emulators[provider].withhold_next_grant(*without)  # the user unticks these at the consent
    user = uuid.uuid4()
    result = stack.connect(provider, user, **tenant_of(stack, provider))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def _sync(stack, integration, user, action: str) -> dict:
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": action})
    assert started.status == 202, started.text
    log_id = started.json()["data"]["id"]
    deadline = time.monotonic() + 30
    while True:
        logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
        (log,) = [row for row in logs if row["id"] == log_id]
        if log["status"] not in ("PENDING", "IN_PROGRESS"):
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.1)  # polling the log, as a client of the API does


def _health(stack, integration, user) -> dict:
    answer = stack.api("GET", f"/integrations/{integration}/health", user=user)
    assert answer.status == 200, answer.text
    return answer.json()["data"]


def _ago(days: float, now: dt.datetime) -> dt.datetime:
    """``days`` before ``now``: the shared clock's (support.clock.now), which earlier tests may have moved on."""
    return now.replace(microsecond=0) - dt.timedelta(days=days)


def _paypal(n, now):
    return [
        {
            "transaction_info": {
                "transaction_id": f"5TY05013RG{i:07d}",
                "transaction_event_code": "T0006",
                "transaction_initiation_date": _ago(1 + i, now).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "transaction_amount": {"currency_code": "USD", "value": f"{i}.00"},
                "transaction_status": "S",
            }
        }
        for i in range(n)
    ]


def _campaigns(n):
    return [
        {
            "id": f"8c4e{i:04d}-0000-4000-8000-000000000000",
            "properties": {"hs_name": f"Spring {i}"},
            "createdAt": "2026-03-01T00:00:00Z",
            "updatedAt": "2026-03-02T00:00:00Z",
        }
        for i in range(n)
    ]


def _posts(n):
    return [
        {
            "id": f"urn:li:share:7{i:018d}",
            "author": "urn:li:person:782bbtaQ",
            "commentary": f"hello {i}",
            "visibility": "PUBLIC",
            "lifecycleState": "PUBLISHED",
            "createdAt": 1763000000000 - i,
            "publishedAt": 1763000000000 - i,
            "lastModifiedAt": 1763000000000 - i,
        }
        for i in range(n)
    ]


def _channels(n):
    return [{"id": f"C{i:08d}", "name": f"chan-{i}", "is_private": i % 3 == 0} for i in range(n)]


def _orders(ages, now):
    return [
        {
            "id": f"gid://shopify/Order/{i}",
            "name": f"#{1000 + i}",
            "createdAt": _ago(age, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updatedAt": _ago(age, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "displayFinancialStatus": "PAID",
            "currentTotalPriceSet": {"shopMoney": {"amount": "1.00", "currencyCode": "EUR"}},
        }
        for i, age in enumerate(ages)
    ]


# provider -> (action, emulator records kind, rows at a "now", emulator endpoint counter, the scope a user may untick)
CASES = {
    "PAYPAL": ("fetch_transactions", "transactions", lambda now: _paypal(7, now), "transactions", SEARCH),
    "HUBSPOT": ("fetch_campaigns", "campaigns", lambda now: _campaigns(12), "campaigns", "marketing.campaigns.read"),
    "LINKEDIN": ("fetch_posts", "posts", lambda now: _posts(9), "posts", "r_member_social"),
    "SLACK": ("fetch_channels", "channels", lambda now: _channels(10), "conversations.list", "groups:read"),
    "SHOPIFY": ("fetch_orders", "orders", lambda now: _orders([1, 20, 50], now), "orders", "read_orders"),
}


def test_each_action_completes_on_a_fresh_connection_with_the_requested_scopes(stack, fresh_emulators):
    _operator_approval(stack, True)
    for provider, (action, kind, rows_at, endpoint, _scope) in CASES.items():
        emu = stack.emulators[provider]
        rows = rows_at(clock.now(stack.emulators))
        if provider in APPROVAL_AT_EMULATOR:
            emu.approve_scopes(APPROVAL_AT_EMULATOR[provider])  # the operator's app is approved there
        emu.set_records(kind, rows)
        user, integration = _connect(stack, provider)
        log = _sync(stack, integration, user, action)
        assert (log["status"], log["itemsProcessed"], log["metadata"]["created"]) == (
            "COMPLETED",
            len(rows),
            len(rows),
        ), (provider, log)
        assert emu.calls[endpoint] >= 1, provider  # read from the provider, not from somewhere else
        if provider == "SLACK":  # the private channels came too (groups:read)
            assert len([r for r in rows if r["is_private"]]) == 4
        health = _health(stack, integration, user)
        assert health["status"] == "healthy" and health["scopes"]["missing"] == [], (provider, health)


def test_a_grant_without_a_needed_scope_fails_with_missing_scopes_and_health_names_it(stack, fresh_emulators):
    _operator_approval(stack, True)
    for provider, (action, kind, rows_at, endpoint, scope) in CASES.items():
        emu = stack.emulators[provider]
        rows = rows_at(clock.now(stack.emulators))
        if provider in APPROVAL_AT_EMULATOR:
            emu.approve_scopes(APPROVAL_AT_EMULATOR[provider])
        emu.set_records(kind, rows)
        user, integration = _connect(stack, provider, without=(scope,))
        before = _health(stack, integration, user)  # known from the grant alone, before any run
        assert before["status"] == "degraded" and before["scopes"]["missing"] == [scope], (provider, before)
        log = _sync(stack, integration, user, action)
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), (provider, log)
        assert scope in log["error"] and "connect it again" in log["error"], log["error"]
        assert emu.calls[endpoint] == 0, provider  # refused before asking the provider
        health = _health(stack, integration, user)
        named = [r for r in health["reasons"] if r["code"] == "MISSING_SCOPES" and scope in r["message"]]
        assert health["status"] == "degraded" and named, (provider, health)
        assert not [r for r in health["reasons"] if r["code"] == "SYNC_FAILED"], health


def test_without_the_providers_approval_the_action_says_what_to_do(stack, fresh_emulators):
    _operator_approval(stack, False)
    for provider, scope in (("LINKEDIN", "r_member_social"), ("PAYPAL", SEARCH)):
        action, kind, rows_at, endpoint, _ = CASES[provider]
        stack.emulators[provider].set_records(kind, rows_at(clock.now(stack.emulators)))
        user, integration = _connect(stack, provider)  # the consent does not ask for the partner-only scope
        log = _sync(stack, integration, user, action)
        assert log["status"] == "FAILED" and log["error"].startswith("MISSING_SCOPES: "), log
        assert scope in log["error"] and f"{provider}_APPROVED_SCOPES={scope}" in log["error"], log["error"]
        assert stack.emulators[provider].calls[endpoint] == 0
        health = _health(stack, integration, user)
        assert [r for r in health["reasons"] if r["code"] == "MISSING_SCOPES" and scope in r["message"]], health
        by_cli = stack.cli("sync", "run", integration, "--action", action)
        assert by_cli.returncode == 28 and scope in by_cli.stdout, (by_cli.returncode, by_cli.stdout, by_cli.stderr)
        # Several runs (every action, or --all: the README's cron entry) exit 24 for any failed run, even when
        # every failure was this missing scope.
        for args in (
            (integration,),
            ("--all", "--provider", provider, "--action", action),
            ("--all", "--provider", provider, "--action", action, "--json"),
        ):
            many = stack.cli("sync", "run", *args)
            assert many.returncode == 24, (args, many.returncode, many.stdout, many.stderr)
            assert "MISSING_SCOPES" in many.stdout and "sync runs failed" in many.stderr, (args, many.stdout)


def test_an_operator_claiming_an_approval_the_app_lacks_gets_the_consent_refused(stack, fresh_emulators):
    _operator_approval(stack, True)  # LINKEDIN_APPROVED_SCOPES set, but LinkedIn never approved this app
    started = stack.initiate("LINKEDIN", uuid.uuid4())
    assert started.status == 200, started.text
    from emulators.testkit import call

    at_provider = call("GET", started.json()["data"]["authorizationUrl"])
    assert at_provider.status == 302 and "error=unauthorized_scope_error" in at_provider.location
    assert "r_member_social" in at_provider.redirect_params()["error_description"]


def test_shopify_orders_beyond_60_days_only_with_the_approved_scope_and_the_log_says_so(stack, fresh_emulators):
    _operator_approval(stack, False)
    emu = stack.emulators["SHOPIFY"]
    emu.set_records("orders", _orders([1, 30, 59, 61, 300], clock.now(stack.emulators)))
    user, integration = _connect(stack, "SHOPIFY")
    log = _sync(stack, integration, user, "fetch_orders")
    assert (log["status"], log["itemsProcessed"]) == ("COMPLETED", 3), log
    assert "60 days" in log["metadata"]["note"] and "read_all_orders" in log["metadata"]["note"]

    _operator_approval(stack, True)
    emu.approve_scopes("read_all_orders")
    user, integration = _connect(stack, "SHOPIFY")
    log = _sync(stack, integration, user, "fetch_orders")
    assert (log["status"], log["itemsProcessed"]) == ("COMPLETED", 5) and "note" not in log["metadata"], log
