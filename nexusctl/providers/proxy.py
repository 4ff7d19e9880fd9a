"""Where a proxied call goes and how it is signed: one provider API base per integration.

The caller names a provider path only (``/v10/users/@me``); ``target`` says
which base URL it is joined to (the provider's API host, or the tenant's:
Salesforce's ``instance_url``, Mailchimp's data-centre endpoint, the shop,
the WooCommerce store) and which headers carry the credentials (the
provider's own scheme, as the syncs send it: providers.sync.registry.AUTH_HEADER,
plus Google Ads' ``developer-token`` and ``login-customer-id``).

``join`` is the only way a path becomes a URL, and it refuses every spelling
that could leave the base: absolute URLs, ``//host``, backslashes, encoded
slashes, dots and backslashes, dot segments, control characters, ``?`` and ``#``
(raw or percent-encoded), and a first
segment that reads as an authority (``user@host``) or a scheme (``https:``).
The joined URL is checked once more: same scheme, host and port as the base,
and under its path.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
from yarl import URL

from nexusctl.enums import Provider
from nexusctl.errors import ProviderError, ProviderNotConfigured, RateLimited, UsageProblem
from nexusctl.providers.http import Reply, exhausted_wait, retry_after
from nexusctl.providers.sync.base import SyncApi
from nexusctl.providers.sync.registry import AUTH_HEADER

# What each base is, for the docs (README) and error messages.
BASES = {
    Provider.SALESFORCE: "the org's instance_url (from the token answer)",
    Provider.MAILCHIMP: "the account's data-centre API endpoint (https://<dc>.api.mailchimp.com)",
    Provider.WOOCOMMERCE: "the store URL the user connected",
    Provider.SHOPIFY: "https://{shop}",
}

# Never forwarded from the caller: their credentials, cookies, hop-by-hop headers (RFC 9110 7.6.1), what the
# HTTP client sets itself, and every header a provider reads credentials from (the caller cannot replace ours).
DROPPED_REQUEST = frozenset(
    h.lower()
    for h in (
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "Cookie2",
        "Host",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
        "Content-Length",
        "Accept-Encoding",
        "Expect",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-Real-IP",
        "X-Request-Id",
        "X-Nexus-Retries",
        "X-Nexus-Connection",
        "X-Shopify-Access-Token",
        "Access-Token",
        "developer-token",
        "login-customer-id",
        "Origin",
        "Referer",
    )
)
# Never passed back: the provider's cookies, hop-by-hop headers, and what our own response framing sets (the
# client decoded any Content-Encoding, and the body is streamed with chunked framing).
DROPPED_RESPONSE = frozenset(
    h.lower()
    for h in (
        "Set-Cookie",
        "Set-Cookie2",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Content-Length",
        "Content-Encoding",
        "Server",
        "Date",
        "Strict-Transport-Security",
        "Alt-Svc",
    )
)

SNIFF_BYTES = 64 * 1024  # an error answer this small is read to find the provider's own throttling signal
# Connecting is bounded; reading is bounded per chunk, not in total: a 200 MB export takes as long as it takes.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60)

_SCHEME_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:/|(?:https?|ftp|file|data|javascript|wss?|gopher|mailto):)", re.I)
_ENCODED_BAD = re.compile(r"%(?:2e|2f|5c|00)", re.I)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_DECODED_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f?#]")  # once percent-decoded: controls (C0, DEL, C1), ? and #


@dataclass
class Target:
    base: str  # no trailing slash
    headers: dict = field(default_factory=dict)  # the credentials, as the provider wants them
    secrets: tuple = ()  # every value among them no message may show


def target(adapter, tokens, settings) -> Target:
    """The base URL and the signed headers of one integration's provider API."""
    provider = adapter.spec.provider
    tenant = tokens.metadata.get("tenant")
    if provider is Provider.SALESFORCE:
        base = tokens.metadata.get("instanceUrl")
    elif provider is Provider.MAILCHIMP:
        base = tokens.metadata.get("apiEndpoint")
    elif provider is Provider.WOOCOMMERCE:
        base = tenant
    else:
        base = adapter.url("API", tenant)
    if not base:
        raise ProviderError(
            f"{provider.value}: the integration has no API base URL "
            f"({BASES.get(provider, 'the API URL')}); connect it again",
            provider=provider.value,
        )
    auth_header = getattr(adapter, "api_header", None) or AUTH_HEADER.get(provider, "bearer")  # TikTok for Business
    api = SyncApi(adapter, tokens, tenant, auth_header=auth_header)
    headers, secrets = api.signed({}), api.secret_values()
    if provider is Provider.GOOGLE_ADS:
        developer = getattr(settings, "google_ads_developer_token", None)
        if developer is None:
            raise ProviderNotConfigured(
                "GOOGLE_ADS calls need the application's developer token: set GOOGLE_ADS_DEVELOPER_TOKEN",
                provider="GOOGLE_ADS",
            )
        headers["developer-token"] = developer.get()
        secrets += (developer.get(),)
        login = getattr(settings, "google_ads_login_customer_id", None)
        if login:
            headers["login-customer-id"] = login
    return Target(str(base).rstrip("/"), headers, secrets)


class CheckedPath(str):
    """A provider path that passed check_path, with its leading slash. The route (before it reads the body) or the
    CLI (before it opens the database) checks the path once where the call comes in and passes this on: ``join``
    does not check it again (a plain str it checks)."""

    __slots__ = ()


def check_path(raw: str) -> CheckedPath:
    """The caller's path (still percent-encoded, as it came on the wire), or a 400 naming what is wrong."""
    if not raw.startswith("/"):
        raw = "/" + raw

    def refuse(why: str):
        raise UsageProblem(
            f"the provider path {why}: give a path under the provider's API base, such as /v1/account", field="path"
        )

    if raw.startswith("//"):
        refuse("starts with // (a host)")
    if "://" in raw:
        refuse("is an absolute URL")
    if "\\" in raw:
        refuse("contains a backslash")
    if _CONTROL.search(raw):
        refuse("contains a space or control character")
    if "?" in raw or "#" in raw:
        refuse("contains ? or #: give query parameters as the request's own query")
    first = raw[1:].split("/", 1)[0]
    if _ENCODED_BAD.search(raw):
        refuse("contains an encoded slash, backslash, dot or NUL")
    if "%" in raw and _DECODED_REFUSED.search(unquote(raw)):
        # Forwarded as they are, %3F, %23 or %0A reach the provider, and a provider (or a proxy before it) that
        # decodes the path reads a query, a fragment or a line break into it: a query goes in the query string.
        refuse("contains a percent-encoded ?, # or control character (a query goes in the query string: --query k=v)")
    if "@" in first or "%40" in first.lower():
        refuse("starts with user@host")
    if _SCHEME_LIKE.match(first):
        refuse("starts with a scheme")
    segments = raw.split("/")
    if "." in segments or ".." in segments:
        refuse("contains . or .. segments")
    return CheckedPath(raw)


def join(base: str, path: str, raw_query: str = "") -> URL:
    """``base`` + the checked path (+ the query, as given): the URL to call, provably under ``base``."""
    if type(path) is not CheckedPath:
        path = check_path(path)
    start, text, prefix = _base(base)
    url = URL(text + path + (f"?{raw_query}" if raw_query else ""), encoded=True)
    if (
        (url.scheme, url.host, url.port) != (start.scheme, start.host, start.port)
        or url.user
        or url.password
        or not (url.raw_path == prefix or url.raw_path.startswith(prefix + "/"))
    ):
        raise UsageProblem("the provider path leaves the provider's API base", field="path")
    return url


@functools.lru_cache(maxsize=1024)
def _base(base: str) -> tuple[URL, str, str]:
    """An API base parsed once (a few per provider, one per tenant): the URL, its text, its path's prefix."""
    start = URL(base, encoded=False)
    return start, str(start), start.raw_path.rstrip("/")


def forwarded_request_headers(headers) -> dict:
    """The caller's headers that may reach the provider (see DROPPED_REQUEST, and any named in Connection)."""
    named = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_REQUEST and k.lower() not in named}


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.1: a field name
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 5.5: no control character but HTAB


def check_headers(headers) -> None:
    """A 400 naming the first header whose name is not an HTTP field name or whose value holds a control
    character (CR or LF would start another header at the provider; the HTTP client refuses them with a
    ValueError). Never the value in the message: it may be a secret. The daemon's HTTP parser refuses such
    headers itself (400 before any handler): this is for the CLI's ``--header``, and costs a proxied call about a
    microsecond or two (all names and all values checked at once; one by one only when something is off)."""
    if _TOKEN.fullmatch("".join(headers)) and "".join(headers.values()).isprintable():
        return
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise UsageProblem(f"the header name {name!r} is not a valid HTTP field name", field="header")
        if _VALUE_CONTROL.search(value):
            raise UsageProblem(
                f"the header {name!r} has a control character (CR, LF ...) in its value: it is not sent",
                field="header",
            )


def returned_response_headers(headers) -> dict:
    named = {h.strip().lower() for h in headers.get("Connection", "").split(",") if h.strip()}
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_RESPONSE and k.lower() not in named}


async def send(
    session: aiohttp.ClientSession, provider: str, method: str, url: URL, headers: dict, body: bytes | None
) -> aiohttp.ClientResponse:
    """The provider's response, its body not read yet (the caller streams it and releases it); a host that
    cannot be reached is PROVIDER_ERROR naming the host. Redirects are not followed: they come back as they are."""
    try:
        return await session.request(method, url, headers=headers, data=body, allow_redirects=False, timeout=TIMEOUT)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ProviderError(
            f"{provider}: could not reach {url.host} ({type(exc).__name__})", provider=provider
        ) from None


def throttles_in_ok(adapter, response) -> bool:
    """A provider that throttles with a successful status (Shopify's GraphQL: HTTP 200 THROTTLED), on a JSON
    answer: read it like an error answer."""
    return (
        getattr(adapter, "THROTTLES_IN_OK", False)
        and 200 <= response.status < 300
        and "json" in (response.headers.get("Content-Type") or "")
    )


async def sniff(response: aiohttp.ClientResponse, *, ok_too: bool = False, provider: str = "") -> bytes:
    """Up to SNIFF_BYTES of an error answer (``ok_too``: of a successful one too; the rest stays to be
    streamed). An answer that breaks off while it is read here, before anything went to the caller, is
    PROVIDER_ERROR (a 502), not an error escaping as a 500."""
    length = response.content_length
    if (response.status < 400 and not ok_too) or (length is not None and length > SNIFF_BYTES):
        return b""
    data = b""
    try:
        while len(data) < SNIFF_BYTES:
            chunk = await response.content.read(SNIFF_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ProviderError(
            f"{provider or 'the provider'}: its answer (HTTP {response.status}) from {response.url.host} broke off "
            f"before its end ({type(exc).__name__})",
            provider=provider,
        ) from None
    return data


def throttle_wait(adapter, response, sniffed: bytes, *, ok_too: bool = False) -> int | None | bool:
    """False when not throttled, else the seconds the provider asks for (None: unknown). ``ok_too``: a
    successful answer may say so too (throttles_in_ok)."""
    if response.status < 400 and not (ok_too and sniffed):
        return False  # most answers: nothing to parse
    try:
        body = json.loads(sniffed) if sniffed else None
    except ValueError:
        body = sniffed.decode("utf-8", "replace")
    reply = Reply(response.status, dict(response.headers), body)
    if response.status == 429:
        return retry_after(reply)
    try:
        return adapter.rate_limit(reply)
    except RateLimited as exc:  # YouTube's spent daily quota: the wait until its reset
        return exc.retry_after
    except Exception:  # noqa: BLE001 - an odd error body must not turn a provider's answer into a 500
        return False


def exhausted_wait_of(response) -> int | None:
    """An answer that spent the window's last call (X-RateLimit-Remaining: 0): seconds until it resets."""
    headers = response.headers  # aiohttp's, case-insensitive: looked up here without the copy exhausted_wait makes
    remaining = headers.get("X-RateLimit-Remaining") or headers.get("X-Rate-Limit-Remaining")
    if remaining is None or remaining.strip() != "0":
        return None  # most answers: calls left in the window
    return exhausted_wait(headers)
