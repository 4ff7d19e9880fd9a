"""Every URL a user supplies goes through the SSRF guard, on a real daemon (issue 17 items 1, 6 and 8).

- A WooCommerce storeUrl or a Shopify shop at an internal address, in any IP
  spelling or by a name resolving there, is a 400 naming the field when given.
- A name that resolves to a public address when given and to loopback later
  (DNS rebinding) gets no request at connect time, and the error the browser is
  sent back with is the same whether the port there is open or closed.
- A publish run's media URL at an internal address is refused when ingested.
- Odd ports (1_0, fullwidth digits, 99999) and unclosed IPv6 hosts in
  redirectUri, storeUrl and webhook URLs are a 400 naming the field, not a 500.
- Webhook create/update check ownership before the URL, and never say what a
  name resolves to.

The daemons allow only 127.0.0.77 (tests/fault/apikit.py); the emulators listen
on 127.0.0.1, which stays forbidden here.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
import uuid

import pytest
from api_fixtures import api, receiver  # noqa: F401 - pytest fixtures
from apikit import ALLOWED_HOST, PUBLIC_ADDRESS, FakeDNS, bearer, call, frontend_redirect, query_of
from support.ports import closed_port
from support.stack import launch_stack

INTERNAL_STORES = [
    ("http://127.0.0.1/", "loopback"),
    ("http://169.254.169.254/", "metadata"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.1.1:8080/", "private"),
    ("http://2130706433/", "it means 127.0.0.1"),  # decimal
    ("http://0x7f000001/", "it means 127.0.0.1"),  # hex
    ("http://0177.0.0.1/", "it means 127.0.0.1"),  # octal
    ("http://0xa9fea9fe/", "it means 169.254.169.254"),
    ("http://127.1/", "it means 127.0.0.1"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("http://[::1]/", "loopback"),
    ("http://localhost:8080/", "loopback"),
    ("http://inside.fault.test/", "not allowed"),  # a name resolving to 10.0.0.5
]
BAD_AUTHORITIES = [":1_0", ":８０", ":99999"]  # appended to a host; plus an unclosed IPv6 host


def _owner(daemon) -> dict:
    return bearer("owner", daemon.world.owner, daemon.world.other)


def _error(response, field: str) -> str:
    """A 400 VALIDATION_ERROR whose message names ``field``; the message."""
    body = response.json()
    error = body.get("error") or {}
    assert response.status == 400 and error.get("code") == "VALIDATION_ERROR", (response.status, response.text[:300])
    assert field.lower() in error["message"].lower(), (field, error)
    return error["message"]


def _initiate(daemon, provider: str, **extra):
    body = {"userId": str(daemon.world.owner), "provider": provider, "redirectUri": frontend_redirect(), **extra}
    return call("POST", f"{daemon.base}/integrations/oauth/initiate", headers=_owner(daemon), json_body=body)


def _emulator_port(daemon) -> int:
    return urllib.parse.urlsplit(daemon.stack.emulators.base_url).port


# --- WooCommerce storeUrl -------------------------------------------------------------------


def test_an_internal_store_url_is_refused_when_given(api):  # noqa: F811
    api.dns.set("inside.fault.test", "10.0.0.5")
    wrong = []
    for url, why in INTERNAL_STORES:
        answer = _initiate(api, "WOOCOMMERCE", storeUrl=url)
        error = (answer.json().get("error") or {}) if answer.status != 200 else {}
        if (
            answer.status != 400
            or error.get("code") != "VALIDATION_ERROR"
            or "storeUrl" not in error.get("message", "")
            or why not in error.get("message", "")
            or "10.0.0.5" in error.get("message", "")
        ):
            wrong.append(f"{url}: {answer.status} {answer.text[:200]} (expected 400 storeUrl '{why}')")
    assert not wrong, "\n".join(wrong)


def _woo_start(daemon, store_url: str) -> str:
    """The flow's state (the consent page at the store is not visited: the test plays the store)."""
    started = _initiate(daemon, "WOOCOMMERCE", storeUrl=store_url)
    assert started.status == 200, started.text
    return started.json()["data"]["state"]


def _woo_finish(daemon, state: str) -> dict:
    """The store delivering keys, then the browser back at our callback: the query the frontend gets."""
    keys = {
        "key_id": 7,
        "user_id": state,
        "consumer_key": "ck_" + "a" * 40,
        "consumer_secret": "cs_" + "b" * 40,
        "key_permissions": "read_write",
    }
    delivered = call("POST", f"{daemon.base}/integrations/oauth/callback/woocommerce/keys", json_body=keys)
    assert delivered.status < 300, delivered.text
    back = call("GET", f"{daemon.base}/integrations/oauth/callback/woocommerce?success=1&user_id={state}")
    assert back.status == 302 and back.location.startswith(frontend_redirect() + "?"), (back.status, back.text)
    return query_of(back.location)


def test_a_store_name_rebound_to_loopback_gets_no_request_and_open_or_closed_ports_look_alike(api):  # noqa: F811
    """Public when given, loopback at the callback: the who-am-I call is never made."""
    emu = api.stack.emulators["WOOCOMMERCE"]
    answers = {}
    for name, port in (("open-store.fault.test", _emulator_port(api)), ("closed-store.fault.test", closed_port())):
        api.dns.set(name, PUBLIC_ADDRESS)  # nothing connects here: initiate only resolves
        state = _woo_start(api, f"http://{name}:{port}/woocommerce/shop.example")
        api.dns.set(name, "127.0.0.1")
        before = emu.calls["whoami"]
        answers[name] = _woo_finish(api, state)
        assert emu.calls["whoami"] == before, "the daemon reached the store on loopback"
    open_answer, closed_answer = answers.values()
    assert open_answer["status"] == "error" and "integrationId" not in open_answer, open_answer
    assert open_answer == closed_answer  # nothing tells an open port from a closed one


# --- Shopify shop ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_daemon(emulators, tmp_path_factory, pg_template):  # noqa: F811
    """A daemon whose Shopify endpoints put the shop in the host (as the defaults, https://{shop}/...), on
    the emulator's port; the fake DNS decides where each *.myshopify.com name points."""
    work = tmp_path_factory.mktemp("shop-host")
    dns = FakeDNS(work)
    base = emulators.base_url
    port = urllib.parse.urlsplit(base).port
    env = {
        name: value.replace(f"{base}/", f"http://{{shop}}:{port}/")
        for name, value in emulators.env().items()
        if name.startswith("SHOPIFY_") and name.endswith("_URL")
    }
    env.update(dns.env(), WEBHOOK_ALLOWED_NETWORKS=f"{ALLOWED_HOST}/32", LOG_FORMAT="text")
    with launch_stack("sqlite", work, emulators, pg_template, extra_env=env) as stack:
        yield stack, dns


def test_an_internal_shop_host_is_refused_when_given(shop_daemon):
    stack, dns = shop_daemon
    user = uuid.uuid4()
    for shop, address in (
        ("inside.myshopify.com", "127.0.0.1"),
        ("meta.myshopify.com", "169.254.169.254"),
        ("lan.myshopify.com", "10.0.0.5"),
    ):
        dns.set(shop, address)
        answer = stack.initiate("SHOPIFY", user, shop=shop)
        message = _error(answer, "shop")
        assert "not allowed" in message and address not in message, message


def test_a_shop_host_rebound_to_loopback_gets_no_token_request(shop_daemon):
    stack, dns = shop_daemon
    emu = stack.emulators["SHOPIFY"]
    user, shop = uuid.uuid4(), "rebound.myshopify.com"
    dns.set(shop, PUBLIC_ADDRESS)
    started = stack.initiate("SHOPIFY", user, shop=shop)
    assert started.status == 200, started.text
    state = started.json()["data"]["state"]
    dns.set(shop, "127.0.0.1")
    query = {"code": "code-" + uuid.uuid4().hex, "shop": shop, "state": state, "timestamp": str(int(time.time()))}
    secret = stack.env["SHOPIFY_CLIENT_SECRET"].encode()
    signed = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    query["hmac"] = hmac.new(secret, signed.encode(), hashlib.sha256).hexdigest()
    before = emu.calls["token"]
    back = call("GET", f"{stack.base}/integrations/oauth/callback/shopify?{urllib.parse.urlencode(query)}")
    assert back.status == 302, (back.status, back.text[:300])
    assert emu.calls["token"] == before, "the daemon reached the shop on loopback"
    answer = query_of(back.location)
    assert answer["status"] == "error" and answer["code"] == "PROVIDER_ERROR", answer


# --- media URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://[::1]/v.mp4",
        "http://2130706433/a.jpg",
        "http://localhost/a.jpg",
        "http://169.254.169.254/a.jpg",
        "https://10.0.0.9/v.mp4",
        "http://[::ffff:7f00:1]/a.jpg",
    ],
)
def test_an_internal_media_url_is_refused_when_ingested(api, url):  # noqa: F811
    service = bearer("service", api.world.owner, api.world.other)
    content = {"userId": str(uuid.uuid4()), "contentId": "c-" + uuid.uuid4().hex, "title": "Launch"}
    refused = call(
        "POST",
        f"{api.base}/integrations/events/ingest",
        headers=service,
        json_body={"type": "content.published", "data": {**content, "media": [{"type": "image", "url": url}]}},
    )
    _error(refused, "media")
    # The control: a public media URL is taken (this user has no integration, so nothing is queued).
    taken = call(
        "POST",
        f"{api.base}/integrations/events/ingest",
        headers=service,
        json_body={
            "type": "content.published",
            "data": {**content, "media": [{"type": "image", "url": "https://cdn.fault.test/a.jpg"}]},
        },
    )
    assert taken.status == 200, taken.text


# --- odd ports and hosts: 400s naming the field, never 500s -----------------------------------


def _odd(host: str, path: str) -> list[str]:
    return [f"http://{host}{authority}{path}" for authority in BAD_AUTHORITIES] + [
        f"http://[::1{path}",
        f"http://[::1{path}:80",
        f"http://{host}\\[::1{path}",  # urlsplit's host runs on past the backslash, the guard's did not: a 500
    ]


def test_odd_ports_and_unclosed_ipv6_hosts_are_400s_naming_the_field(api):  # noqa: F811
    wrong = []

    def expect(what, response, field):
        error = (response.json().get("error") or {}) if response.status != 200 and response.status != 201 else {}
        if response.status != 400 or error.get("code") != "VALIDATION_ERROR" or field not in error.get("message", ""):
            wrong.append(f"{what}: {response.status} {response.text[:200]}")

    for url in _odd("app.nexus.test", "/connected"):
        body = {"userId": str(api.world.owner), "provider": "DISCORD", "redirectUri": url}
        expect(
            f"redirectUri {url!r}",
            call("POST", f"{api.base}/integrations/oauth/initiate", headers=_owner(api), json_body=body),
            "redirectUri",
        )
    for url in _odd("shop.fault.test", "/"):
        expect(f"storeUrl {url!r}", _initiate(api, "WOOCOMMERCE", storeUrl=url), "storeUrl")
    for shop in ("https://[::1", "https://[::1/admin"):  # a port is dropped with the rest of the URL
        expect(f"shop {shop!r}", _initiate(api, "SHOPIFY", shop=shop), "shop")
    for url in _odd(ALLOWED_HOST, "/hook"):
        made = call(
            "POST",
            f"{api.base}/integrations/webhooks",
            headers=_owner(api),
            json_body={"integrationId": api.world.integration, "url": url, "events": ["*"]},
        )
        expect(f"create url {url!r}", made, "URL")
        changed = call(
            "PATCH",
            f"{api.base}/integrations/webhooks/{api.world.webhook}",
            headers=_owner(api),
            json_body={"url": url},
        )
        expect(f"update url {url!r}", changed, "URL")
    assert not wrong, "\n".join(wrong)


# Each was trimmed off an end by str.strip() and the URL stored without it (a 201), where the same character
# mid-URL is refused: NEL, the line separator, the ideographic space; a bidi override and a zero-width space
# (format characters) were accepted anywhere in a redirectUri, a storeUrl or a webhook URL.
EDGE_CHARACTERS = ["\u0085", "\u2028", "\u3000", "\u202e", "\u200b"]


def test_a_control_or_unicode_blank_at_either_end_of_a_url_is_refused_not_trimmed(api):  # noqa: F811
    wrong = []

    def expect(what, response, field):
        error = (response.json().get("error") or {}) if response.status not in (200, 201) else {}
        if response.status != 400 or error.get("code") != "VALIDATION_ERROR" or field not in error.get("message", ""):
            wrong.append(f"{what}: {response.status} {response.text[:200]}")

    for ch in EDGE_CHARACTERS:
        for url in (
            f"http://{ALLOWED_HOST}/hook{ch}",
            f"{ch}http://{ALLOWED_HOST}/hook",
            f"http://{ALLOWED_HOST}/ok?x={ch}",
        ):
            made = call(
                "POST",
                f"{api.base}/integrations/webhooks",
                headers=_owner(api),
                json_body={"integrationId": api.world.integration, "url": url, "events": ["*"]},
            )
            expect(f"webhook url {url!r}", made, "URL")
        for url in (f"http://shop.fault.test{ch}", f"{ch}http://shop.fault.test", f"http://shop.fault.test/{ch}"):
            expect(f"storeUrl {url!r}", _initiate(api, "WOOCOMMERCE", storeUrl=url), "storeUrl")
        for url in (frontend_redirect() + ch, ch + frontend_redirect(), f"{frontend_redirect()}?next={ch}"):
            body = {"userId": str(api.world.owner), "provider": "DISCORD", "redirectUri": url}
            answer = call("POST", f"{api.base}/integrations/oauth/initiate", headers=_owner(api), json_body=body)
            expect(f"redirectUri {url!r}", answer, "redirectUri")
    assert not wrong, "\n".join(wrong)


# --- webhooks: ownership first, no resolved addresses -----------------------------------------


def test_another_users_ids_are_not_found_before_any_url_check(api):  # noqa: F811
    stranger = bearer("other", api.world.owner, api.world.other)
    api.dns.set("internal-db.fault.test", "10.1.2.3")
    for url in ("http://10.0.0.5/hook", "http://internal-db.fault.test/hook", "http://[::1/hook"):
        made = call(
            "POST",
            f"{api.base}/integrations/webhooks",
            headers=stranger,
            json_body={"integrationId": api.world.integration, "url": url, "events": ["*"]},
        )
        assert made.status == 404 and made.json()["error"]["code"] == "INTEGRATION_NOT_FOUND", made.text
        changed = call(
            "PATCH", f"{api.base}/integrations/webhooks/{api.world.webhook}", headers=stranger, json_body={"url": url}
        )
        assert changed.status == 404 and changed.json()["error"]["code"] == "WEBHOOK_NOT_FOUND", changed.text


def test_a_name_resolving_inside_is_refused_without_saying_where(api):  # noqa: F811
    api.dns.set("internal-db.fault.test", "10.1.2.3")
    url = "http://internal-db.fault.test/hook"
    made = call(
        "POST",
        f"{api.base}/integrations/webhooks",
        headers=_owner(api),
        json_body={"integrationId": api.world.integration, "url": url, "events": ["*"]},
    )
    changed = call(
        "PATCH", f"{api.base}/integrations/webhooks/{api.world.webhook}", headers=_owner(api), json_body={"url": url}
    )
    for response in (made, changed):
        message = _error(response, "URL")
        assert "internal-db.fault.test" in message and "not allowed" in message, message
        assert "10.1.2.3" not in message and "private" not in message, message
