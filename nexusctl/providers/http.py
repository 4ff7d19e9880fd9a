"""One outbound call to a provider, with failures turned into our errors.

Network failures, timeouts and 5xx are PROVIDER_ERROR; 429 is RATE_LIMITED
carrying the provider's Retry-After. Anything else comes back as a ``Reply``
for the adapter to judge, because what a 4xx (or a 200!) means differs by
provider. Messages name the provider and the host, never a token: provider
error texts are cut short and scrubbed of the values we sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urlsplit

import aiohttp

from nexusctl import clock, jsontext, logrecords, ssrf, telemetry, tracing
from nexusctl.errors import ProviderError, RateLimited
from nexusctl.providers.poster import Poster, PostError

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 2 * 1024 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=20, connect=10)
FORM_TYPE = "application/x-www-form-urlencoded"


def session_options() -> dict:
    """What every outbound provider session is opened with: no proxy from the environment, no cookies kept."""
    return {"trust_env": False, "headers": {"User-Agent": "nexusctl"}, "cookie_jar": aiohttp.DummyCookieJar()}


@contextlib.asynccontextmanager
async def provider_sessions(allowed_networks=()):
    """The process's outbound sessions: one for operator-configured provider hosts, one whose connector dials
    only addresses the SSRF guard let through, for hosts a user named (a WooCommerce store, a Shopify shop),
    and the lean poster of form POSTs (token requests) to operator-configured hosts (providers.poster). Each
    keeps its connections alive across calls."""
    # No cookie jar: the sessions are shared by every integration's calls, so a provider's Set-Cookie answered
    # to one user's call must never ride along on another user's (providers authenticate by header, not cookie).
    poster = Poster(limit=MAX_REPLY_BYTES + 1)  # one byte more than a reply may hold: a longer one is refused
    try:
        async with (
            aiohttp.ClientSession(**session_options()) as session,
            aiohttp.ClientSession(connector=ssrf.guarded_connector(allowed_networks), **session_options()) as guarded,
        ):
            yield session, guarded, poster
    finally:
        await poster.close()


@dataclass
class Reply:
    status: int
    headers: dict
    body: object  # parsed JSON, or the text when it is not JSON

    def get(self, *path, default=None):
        """body[path[0]][path[1]]..., or default where anything is missing."""
        value = self.body
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
                value = value[key]
            else:
                return default
        return value


async def call(
    session: aiohttp.ClientSession,
    provider: str,
    method: str,
    url: str,
    *,
    secrets: tuple = (),
    timeout: aiohttp.ClientTimeout = TIMEOUT,
    poster: Poster | None = None,
    **kwargs,
) -> Reply:
    """Make the request; raise ProviderError / RateLimited, else return the Reply.

    A failure after the request may have reached the provider (a timeout, a dropped connection, a 5xx) carries
    ``sent=True`` in its details: a "create" call that failed so may still have created (see ``may_have_sent``).
    ``timeout``: for calls that carry a large body (an upload chunk). ``poster``: the process's lean poster, for
    a host the operator configured (never one a user named): a form POST goes through it, not ``session``."""
    host = urlsplit(url).hostname or "?"
    if not tracing.enabled():
        return await _call(session, provider, method, url, host, secrets, timeout, kwargs, poster)
    # The span names the provider, the method and the host: never the path or query (they may carry a token).
    with tracing.span(
        f"{provider} {method}",
        {"nexus.provider": provider, "http.request.method": method, "server.address": host},
        kind=tracing.CLIENT,
    ) as span:
        try:
            reply = await _call(session, provider, method, url, host, secrets, timeout, kwargs, poster)
        except (ProviderError, RateLimited) as exc:
            if isinstance(exc.details.get("status"), int):
                span.set_attribute("http.response.status_code", exc.details["status"])
            elif isinstance(exc, RateLimited):
                span.set_attribute("http.response.status_code", 429)
            raise
        span.set_attribute("http.response.status_code", reply.status)
        return reply


def _form_encoded(kwargs: dict) -> dict:
    """A form (``data=`` a dict) as the urlencoded body aiohttp's FormData would send, encoded here: FormData builds
    a multipart writer (and a boundary from os.urandom) for every call, ~7% of the refresh sweep's loop in py-spy."""
    form = kwargs.get("data")
    if not isinstance(form, dict):
        return kwargs
    headers = dict(kwargs.get("headers") or {})
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = FORM_TYPE
    return {**kwargs, "data": form_body(form), "headers": headers}


# What quote_plus escapes: anything but letters, digits and "_.-~" (a space becomes "+").
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-~]+")


def _escaped(match: re.Match) -> str:
    return "".join("+" if byte == 32 else f"%{byte:02X}" for byte in match.group().encode())


def form_body(form: dict) -> bytes:
    """The form urlencoded, as aiohttp's FormData sent it (``urlencode(form, doseq=True)``): the same bytes.

    Text keys and values are quoted here, a run of unsafe characters at a time: urlencode's quote_plus maps
    every byte of a value holding one (a Google refresh token starts "1//") in a Python loop, and with its
    per-value checks it was 5% of the refresh sweep's CPU (py-spy). Anything else (a list, a number) goes
    through urlencode."""
    escape = _UNSAFE.sub
    parts = []
    for key, value in form.items():
        if type(key) is not str or type(value) is not str:
            return urlencode(form, doseq=True).encode()
        parts.append(f"{escape(_escaped, key)}={escape(_escaped, value)}")
    return "&".join(parts).encode()


async def _call(
    session, provider: str, method: str, url: str, host: str, secrets: tuple, timeout, kwargs, poster=None
) -> Reply:
    started = time.monotonic()
    kwargs = _form_encoded(kwargs)
    try:
        if poster is not None and _lean(method, kwargs):
            status, headers, raw = await poster.post(
                url, kwargs.get("headers") or {}, kwargs["data"], total=timeout.total, connect=timeout.connect
            )
        else:
            status, headers, raw = await _through(session, method, url, timeout, kwargs)
    except PostError as exc:  # the lean poster's failure, worded and split (sent or not) as aiohttp's below
        telemetry.provider_call(provider, "error", time.monotonic() - started)
        raise ProviderError(
            f"{provider}: could not reach {host} ({exc.reason})",
            provider=provider,
            **({"sent": True} if exc.sent else {}),
        ) from None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        # Refused before connecting (DNS, connection refused, TLS): the provider never saw the request.
        unsent = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
        telemetry.provider_call(provider, "error", time.monotonic() - started)
        raise ProviderError(
            f"{provider}: could not reach {host} ({type(exc).__name__})",
            provider=provider,
            **({} if unsent else {"sent": True}),
        ) from None
    elapsed = time.monotonic() - started
    telemetry.provider_call(provider, str(status), elapsed)
    # A line per call: its record made as the access line's is (nexusctl.logrecords).
    logrecords.info(log, "provider call %s %s %s -> %s in %.0f ms", provider, method, host, status, elapsed * 1000)
    if len(raw) > MAX_REPLY_BYTES:
        raise ProviderError(f"{provider}: {host} answered more than {MAX_REPLY_BYTES} bytes", provider=provider)
    try:
        body = jsontext.loads(raw) if raw else None  # json.loads's reading, orjson's speed
    except ValueError:
        body = raw.decode("utf-8", "replace")
    reply = Reply(status, headers, body)
    if status == 429:
        raise RateLimited(f"{provider}: rate limited by {host}", provider=provider, retry_after=retry_after(reply))
    if status >= 500:
        raise ProviderError(
            f"{provider}: {host} answered HTTP {status}{describe(reply, secrets, ': ')}",
            provider=provider,
            status=status,
            sent=True,
        )
    return reply


def _lean(method: str, kwargs: dict) -> bool:
    """Whether the lean poster makes the call: a POST of bytes (a form, encoded here) with headers, nothing else."""
    return method == "POST" and isinstance(kwargs.get("data"), bytes) and kwargs.keys() <= {"data", "headers"}


async def _through(session, method: str, url: str, timeout, kwargs) -> tuple[int, dict, bytes]:
    """The call through an aiohttp session: status, headers, the body up to one chunk past MAX_REPLY_BYTES."""
    async with session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs) as response:
        # read(n) returns what is buffered (often one 64 KiB chunk), not n bytes: read up to the end.
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                break
        return response.status, dict(response.headers), b"".join(chunks)


def may_have_sent(exc: Exception) -> bool:
    """True for a failure that leaves it unknown whether the provider acted on the request (no clean answer)."""
    return bool(getattr(exc, "details", {}).get("sent"))


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization: Basic`` value (RFC 7617), as aiohttp.BasicAuth built it before its deprecation."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def retry_after(reply: Reply) -> int | None:
    """Seconds from Retry-After (seconds or a date), X-RateLimit-Reset (epoch) or a JSON retry_after. A date or
    an epoch is counted from the product's clock (nexusctl.clock), like every wait and "now" the service keeps."""
    value = _header(reply, "Retry-After")
    if value:
        # ASCII digits only: a provider's '²' passes str.isdigit(), then int() raises (the call a 500)
        if _ascii_whole(value.strip()):
            return int(value.strip())
        if re.fullmatch(r"\d+\.\d+", value.strip(), re.ASCII):  # Shopify REST sends "2.0"
            return math.ceil(float(value.strip()))
        try:
            return max(0, int(parsedate_to_datetime(value).timestamp() - clock.time()))
        except (TypeError, ValueError):
            pass
    for name in ("x-rate-limit-reset", "X-RateLimit-Reset"):
        reset = _header(reply, name)
        if reset and _ascii_whole(reset.strip()):
            return max(0, int(reset) - int(clock.time()))
    seconds = reply.get("retry_after")
    if isinstance(seconds, (int, float)):
        return max(1, int(seconds + 0.999))
    return None


def exhausted_wait(headers) -> int | None:
    """A successful answer that says no call is left in the window (``X-RateLimit-Remaining: 0``, or
    ``X-Rate-Limit-Remaining``) and when it resets: the seconds until then, else None."""
    reply = Reply(0, dict(headers), None)
    remaining = _header(reply, "X-RateLimit-Remaining") or _header(reply, "X-Rate-Limit-Remaining")
    if remaining is None or remaining.strip() != "0":
        return None
    seconds = retry_after(reply)
    if seconds is None:
        reset = _header(reply, "X-RateLimit-Reset-After") or _header(reply, "RateLimit-Reset")
        if reset and re.fullmatch(r"\d+(\.\d+)?", reset.strip(), re.ASCII):  # Discord's and the IETF draft's: seconds
            seconds = math.ceil(float(reset.strip()))
    return seconds or None


def _ascii_whole(value: str) -> bool:
    """Whether ``value`` is a whole number in ASCII digits: what int() surely reads (str.isdigit() is not)."""
    return value.isascii() and value.isdigit()


def _header(reply: Reply, name: str) -> str | None:
    lower = name.lower()
    for key, value in reply.headers.items():
        if key.lower() == lower:
            return value
    return None


_FIELDS = ("error", "error_description", "message", "status", "error_code", "errorCode", "detail")


def describe(reply: Reply, secrets: tuple = (), prefix: str = "") -> str:
    """A short, secret-free summary of a provider's error body."""
    body = reply.body
    parts: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        body = body["errors"]  # SendGrid, Zapier, GraphQL: {"errors": [{...}, ...]}
    if isinstance(body, list):  # Salesforce: [{"message", "errorCode"}]; the first error tells
        body = body[0] if body and isinstance(body[0], dict) else str(body[0]) if body else None
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict):  # Graph / TikTok: {"error": {"code", "message"}}
            body = nested
        for key in _FIELDS + ("code",):
            value = body.get(key) if isinstance(body, dict) else None
            if isinstance(value, (str, int)) and str(value) not in parts and value != "":
                parts.append(str(value))
    elif isinstance(body, str):
        parts.append(body.strip())
    text = " - ".join(parts)[:200]
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    text = re.sub(r"[\r\n\t]+", " ", text)
    return f"{prefix}{text}" if text else ""
