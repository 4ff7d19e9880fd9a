"""E-commerce: SHOPIFY (OAuth, expiring offline tokens) and WOOCOMMERCE (key grant, not OAuth).

SHOPIFY quirks enforced:
- every URL sits under ``{shop}`` (any ``*.myshopify.com``); a code or token
  only works on the shop that issued it;
- scopes comma-separated; the redirect carries ``code, hmac, host, shop,
  state, timestamp`` where ``hmac`` = hex HMAC-SHA256(client secret) of the
  other parameters sorted and joined ``k=v&k=v``;
- ``POST /admin/oauth/access_token`` (form or JSON) with ``expiring=1`` gives
  a 1 h access token and a 90 d refresh token; without it, a legacy
  non-expiring ``{access_token, scope}``;
- refresh (same URL, ``grant_type=refresh_token``) returns a new pair; the
  previous refresh token stays valid until the new one is first used, then
  dies (Aug-2026 rule);
- API calls authenticate with ``X-Shopify-Access-Token``; ``Authorization:
  Bearer`` is 401; GraphQL throttling is HTTP 200 ``THROTTLED``, REST 429 +
  Retry-After;
- sync lists: GraphQL connections ``products``, ``orders`` and
  ``inventoryItems`` (``first`` 1-250, ``after`` = an ``endCursor``, answers
  ``{pageInfo{hasNextPage endCursor ...}, nodes}`` + ``extensions.cost``) serve
  ``records_of("products" | "orders" | "inventory")`` as nodes; each needs its
  ``read_*`` scope (else HTTP 200 ``ACCESS_DENIED``); gate endpoints
  ``products``, ``orders``, ``inventory`` (the ``shop`` query stays ``whoami``);
  orders created more than 60 days ago (emulator clock) are left out silently
  unless the grant has ``read_all_orders``, an approval-only scope;
  a throttle's ``restoreRate`` makes (cost - available) / rate = Retry-After;
- query cost is a leaky bucket per shop (1000 points, 50/s back; ``set_query_bucket``): a connection
  query requests ``first + 2`` points and, when the bucket holds fewer, answers ``THROTTLED`` with
  ``extensions.cost.throttleStatus`` (and costs nothing); REST calls fill a 40-call bucket leaking 2/s
  (``X-Shopify-Shop-Api-Call-Limit: n/40``; full: 429 ``Retry-After: 2.0``).

WOOCOMMERCE quirks enforced (as ``WC_Auth`` does):
- ``GET {store}/wc-auth/v1/authorize`` needs app_name, scope (read, write,
  read_write), user_id, return_url, callback_url; a bad request is WordPress's
  401 "Error: ..." page;
- on approval the store POSTs JSON ``{key_id, user_id, consumer_key,
  consumer_secret, key_permissions}`` to callback_url; only an HTTP 200 answer
  counts (WooCommerce checks ``200 !== code``): then 302 to return_url with
  ``success=1&user_id=``; otherwise the key is deleted and the store answers
  401 "Error: An error occurred in the request and at the time were unable to
  send the consumer data." A denial redirects with ``success=0``;
- the REST API takes HTTP Basic ck:cs (or consumer_key/consumer_secret query);
- ``GET /wp-json/wc/v3/products|orders`` (gate ``products`` / ``orders``):
  ``per_page`` 1-100 (default 10), ``page`` from 1 (past the last: 400
  ``rest_post_invalid_page_number``), ``orderby=id`` + ``order``; otherwise the
  records' own (newest-first) order; headers ``X-WP-Total``,
  ``X-WP-TotalPages``, ``Link`` rel="prev"/"next".
  The real store requires an https callback_url and https API calls; the
  emulator accepts http (it has no TLS).

``account``: SHOPIFY the shop fields (myshopifyDomain comes from the URL);
WOOCOMMERCE the site index ``{name, description, ...}``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import html
import itertools
import json
import math
import re
import secrets

import aiohttp
from aiohttp import web

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    add_query,
    authorize,
    basic_credentials,
    grant_for,
    json_response,
    read_form,
    read_json,
    token_response,
    valid_redirect_uri,
)

SHOP = r"(?P<shop>[a-zA-Z0-9][a-zA-Z0-9\-]*\.myshopify\.com)"
REQUEST_SHOP = web.RequestKey("shop", str)  # the shop whose token endpoint a request reached
ACCESS_TTL = 3600
REFRESH_TTL = 7776000


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:{index}".encode()).decode()


def shopify_hmac(secret: str, params: dict) -> str:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "hmac")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _epoch(value) -> float:
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else 0.0


class Shopify(TokenGrants, Provider):
    NAME = "SHOPIFY"
    URLS = {
        "AUTH": "{shop}/admin/oauth/authorize",
        "TOKEN": "{shop}/admin/oauth/access_token",
        "API": "{shop}",
        "REVOKE": "{shop}/admin/api_permissions/current.json",
    }
    ROUTES = (
        ("GET", rf"{SHOP}/admin/oauth/authorize", "authorize"),
        ("POST", rf"{SHOP}/admin/oauth/access_token", "token"),
        ("POST", rf"{SHOP}/admin/api/(?:\d{{4}}-\d{{2}}|unstable)/graphql\.json", "graphql"),
        ("GET", rf"{SHOP}/admin/api/(?:\d{{4}}-\d{{2}}|unstable)/shop\.json", "rest_shop"),
        ("DELETE", rf"{SHOP}/admin/api_permissions/current\.json", "revoke"),
    )
    ACCOUNT = {
        "id": "gid://shopify/Shop/548380009",
        "name": "Demo Shop",
        "email": "owner@demo.example",
        "currencyCode": "USD",
    }
    SPEC = AuthorizeSpec(response_type=None, scope_sep=",", pkce="none")
    # GraphQL connections served from records: field -> (endpoint = records kind, scope it needs)
    CONNECTIONS = {
        "products": ("products", "read_products"),
        "orders": ("orders", "read_orders"),
        "inventoryItems": ("inventory", "read_inventory"),
    }
    GRAPHQL = ("whoami", "products", "orders", "inventory")
    # Orders older than 60 days: only with read_all_orders, which Shopify grants to apps it approved.
    APPROVAL_ONLY = frozenset({"read_all_orders"})
    RECENT_ORDERS_DAYS = 60
    INVALID = "[API] Invalid API key or access token (unrecognized login or wrong password)"
    # Rate limits per shop and app (https://shopify.dev/docs/api/usage/rate-limits), standard plan: GraphQL a
    # leaky bucket of 1000 cost points refilled at 50/s; REST a bucket of 40 calls leaking 2/s.
    QUERY_BUCKET, QUERY_RESTORE = 1000.0, 50.0
    REST_BUCKET, REST_LEAK = 40, 2.0

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.query_bucket, self.query_restore = self.QUERY_BUCKET, self.QUERY_RESTORE
            self.rest_bucket, self.rest_leak = self.REST_BUCKET, self.REST_LEAK
            self._points: dict[str, tuple[float, float]] = {}  # shop -> (available points, when)
            self._rest: dict[str, tuple[float, float]] = {}  # shop -> (calls in the bucket, when)

    def set_query_bucket(self, maximum: float, restore_rate: float | None = None) -> None:
        """A smaller GraphQL bucket (tests): ``maximum`` points, refilled at ``restore_rate`` per second."""
        with self.lock:
            self.query_bucket = float(maximum)
            self.query_restore = float(restore_rate or self.query_restore)
            self._points.clear()

    def set_rest_bucket(self, size: int, leak_rate: float | None = None) -> None:
        with self.lock:
            self.rest_bucket, self.rest_leak = int(size), float(leak_rate or self.rest_leak)
            self._rest.clear()

    def _spend(self, shop: str, requested: float) -> dict:
        """Take ``requested`` points from the shop's bucket when it holds them: the cost extension, with
        ``actualQueryCost`` None when it did not (the query is THROTTLED and costs nothing)."""
        with self.lock:
            now = self.now()
            available, at = self._points.get(shop, (self.query_bucket, now))
            available = min(self.query_bucket, available + (now - at) * self.query_restore)
            served = requested <= available
            if served:
                available -= requested
            else:
                self.calls["throttled"] += 1
            self._points[shop] = (available, now)
            return {
                "requestedQueryCost": requested,
                "actualQueryCost": requested if served else None,
                "throttleStatus": {
                    "maximumAvailable": self.query_bucket,
                    "currentlyAvailable": round(available, 3),
                    "restoreRate": self.query_restore,
                },
            }

    def _throttled(self, cost: dict):
        return json_response(
            {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": {"cost": cost},
            }
        )

    def _rest_call(self, shop: str) -> tuple[bool, str]:
        """(room for the call, X-Shopify-Shop-Api-Call-Limit): a full bucket refuses the call (429)."""
        with self.lock:
            now = self.now()
            level, at = self._rest.get(shop, (0.0, now))
            level = max(0.0, level - (now - at) * self.rest_leak)
            room = level + 1 <= self.rest_bucket
            if room:
                level += 1
            self._rest[shop] = (level, now)
            return room, f"{math.ceil(level)}/{self.rest_bucket}"

    def make_client_id(self) -> str:
        return secrets.token_hex(16)

    def make_client_secret(self) -> str:
        return "shpss_" + secrets.token_hex(16)

    def rate_limited(self, endpoint, retry_after):
        if endpoint in self.GRAPHQL:  # GraphQL: HTTP 200 with a THROTTLED error and the cost extension
            cost = {
                "requestedQueryCost": 50,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": self.query_bucket,
                    "currentlyAvailable": 0,
                    "restoreRate": round(50 / max(retry_after, 1), 3),
                },
            }
            return self._throttled(cost)
        return json_response(
            {
                "errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                "resume uninterrupted service."
            },
            429,
            {"Retry-After": str(retry_after), "X-Shopify-Shop-Api-Call-Limit": "40/40"},
        )

    async def authorize(self, request, shop):
        def extra(code, _request):
            params = {
                "code": code.value,
                "host": base64.b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()).decode().rstrip("="),
                "shop": shop,
                "state": _request.query["state"],
                "timestamp": str(int(self.now())),
            }
            return {"hmac": shopify_hmac(self.client_secret, params), **params}

        def check(_request):
            options = _request.query.getall("grant_options[]", [])
            return None if set(options) <= {"per-user"} else f"invalid grant_options[] {options}"

        return await authorize(self, request, self.SPEC, data={"shop": shop}, extra_params=extra, check=check)

    def _error(self, error: str, description: str, status: int = 400):
        return token_response({"error": error, "error_description": description}, status)

    # The token endpoint is the shop's own (/admin/oauth/access_token), JSON or form, the client always in
    # the body; no grant type means the code exchange, and a code only opens at the shop it was made for.
    GRANT_TYPE_DEFAULT = "authorization_code"
    CODE_CLIENT_PARAM = "client_id"
    CODE_REDIRECT = False
    CODE_VERIFIER = False
    CODE_REFUSED = "The authorization code was not found or was already used"

    async def token(self, request, shop):
        request[REQUEST_SHOP] = shop
        return await super().token(request)

    async def token_params(self, request):
        params = await read_json(request)
        if params is None:
            params = await read_form(request)
        return {k: str(v) for k, v in params.items()}

    def client_error(self, request, params):
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            return self._error("invalid_client", "Client credentials are invalid")
        return None

    def unsupported_grant(self, grant_type):
        return self._error("unsupported_grant_type", f"Unsupported grant_type {grant_type}")

    def redeem_code(self, request, params):
        with self.lock:
            pending = self.codes.get(params.get("code") or "")
            if pending is not None and pending.data.get("shop") != request[REQUEST_SHOP]:
                return pending, "shop"
        return super().redeem_code(request, params)

    def code_error(self, code, reason, params):
        return self._error("invalid_request", self.CODE_REFUSED)

    def exchange_code(self, request, code, params):
        """An offline token that never expires, or (``expiring=1``) an expiring pair."""
        grant = grant_for(self, code)
        if params.get("expiring") in ("1", "true"):
            return self._pair(grant)
        access = self.issue(grant, "access", None, value="shpat_" + secrets.token_hex(16))
        return {"access_token": access.value, "scope": ",".join(grant.scope)}

    def refresh_error(self, token, status, params):
        return self._error("invalid_grant", "The refresh token is invalid, expired or revoked.")

    def _pair(self, grant):
        access = self.issue(grant, "access", ACCESS_TTL, value="shpat_" + secrets.token_hex(16))
        refresh = self.issue(grant, "refresh", REFRESH_TTL, value="shprt_" + secrets.token_hex(16))
        with self.lock:
            grant.data["current"] = refresh.value
        return {
            "access_token": access.value,
            "scope": ",".join(grant.scope),
            "expires_in": ACCESS_TTL,
            "refresh_token": refresh.value,
            "refresh_token_expires_in": REFRESH_TTL,
        }

    def exchange_refresh(self, request, token, params):
        """Shopify's rotation: a refresh token works until its successor is used, so a lost answer can be
        retried with the previous one (which supersedes the unused successor)."""
        if token.grant.data.get("shop") != request[REQUEST_SHOP]:
            return self.refresh_error(token, "shop", params)
        value, grant = token.value, token.grant
        with self.lock:
            current, previous = grant.data.get("current"), grant.data.get("previous")
            if value == current:
                if previous and previous in self.tokens:  # its successor has now been used
                    self.kill(self.tokens[previous], rotated=True)
                grant.data["previous"] = current
            elif value == previous and current in self.tokens:  # successor never used: it is superseded
                self.kill(self.tokens[current], rotated=True)
            else:
                return self.refresh_error(token, "superseded", params)
        return self._pair(grant)

    def _api_token(self, request, shop):
        if "Authorization" in request.headers and "X-Shopify-Access-Token" not in request.headers:
            return None
        token, status = self.status(request.headers.get("X-Shopify-Access-Token"), "access")
        if status != "ok" or token.grant.data.get("shop") != shop:
            return None
        return token

    async def graphql(self, request, shop):
        body = await read_json(request) or {}
        query = str(body.get("query", ""))
        connection = re.search(rf"\b({'|'.join(self.CONNECTIONS)})\s*\(", query)
        fault = await self.gate(self.CONNECTIONS[connection.group(1)][0] if connection else "whoami")
        if fault is not None:
            return fault
        token = self._api_token(request, shop)
        if token is None:
            return json_response({"errors": self.INVALID}, 401)
        if connection:
            return self._connection(connection.group(1), query, body.get("variables") or {}, token)
        match = re.search(r"\bshop\s*\{([^{}]*)\}", query)
        if not match:
            return json_response(
                {
                    "errors": [
                        {
                            "message": "The emulator answers only `{ shop { ... } }` and "
                            "connection (products, orders, inventoryItems) queries"
                        }
                    ]
                }
            )
        node = {**self.account, "myshopifyDomain": shop}
        fields = re.findall(r"[A-Za-z_]\w*", match.group(1))
        unknown = [f for f in fields if f not in node]
        if unknown:
            return json_response({"errors": [{"message": f"Field '{unknown[0]}' doesn't exist on type 'Shop'"}]})
        return json_response({"data": {"shop": {f: node[f] for f in fields}}})

    def _connection(self, name, query, variables, token):
        """A top-level connection page: ``first`` (1-250) and ``after`` (an endCursor) from the variables or
        literal arguments; nodes are the records as set (``set_records(kind, nodes)``) in that order."""
        endpoint, scope = self.CONNECTIONS[name]
        if scope not in token.grant.scope:
            return json_response(
                {
                    "errors": [
                        {
                            "message": f"Access denied for {name} field. Required access: `{scope}` access scope.",
                            "locations": [{"line": 2, "column": 3}],
                            "path": [name],
                            "extensions": {
                                "code": "ACCESS_DENIED",
                                "documentation": "https://shopify.dev/api/usage/access-scopes",
                            },
                        }
                    ],
                    "data": None,
                    "extensions": {"cost": self._spend(token.grant.data.get("shop", ""), 0.0)},
                }
            )
        args = re.search(rf"\b{name}\s*\(([^)]*)\)", query).group(1)

        def arg(key):
            literal = re.search(rf"\b{key}\s*:\s*(\$?\w+|\"[^\"]*\")", args)
            if literal is None:
                return None
            value = literal.group(1)
            if value.startswith("$"):
                return variables.get(value[1:])
            return None if value == "null" else value.strip('"')

        first, after = arg("first"), arg("after")
        try:
            first = int(first)
            start = int(base64.b64decode(after).decode().removeprefix("cursor:")) + 1 if after else 0
        except (TypeError, ValueError, UnicodeDecodeError):
            return json_response(
                {
                    "errors": [
                        {"message": "Invalid cursor or `first` argument", "extensions": {"code": "BAD_USER_INPUT"}}
                    ]
                }
            )
        if not 1 <= first <= 250:
            return json_response(
                {
                    "errors": [
                        {
                            "message": "The first argument must be between 1 and 250",
                            "extensions": {"code": "BAD_USER_INPUT"},
                        }
                    ]
                }
            )
        rows = self.records_of(endpoint)
        if name == "orders" and "read_all_orders" not in token.grant.scope:  # older ones silently left out
            since = self.now() - self.RECENT_ORDERS_DAYS * 86400
            rows = [r for r in rows if _epoch(r.get("createdAt")) >= since]
        cost = self._spend(token.grant.data.get("shop", ""), float(first + 2))
        if cost["actualQueryCost"] is None:
            return self._throttled(cost)
        nodes = rows[start : start + first]
        end = start + len(nodes) - 1
        info = {
            "hasNextPage": start + first < len(rows),
            "hasPreviousPage": start > 0,
            "startCursor": _cursor(start) if nodes else None,
            "endCursor": _cursor(end) if nodes else None,
        }
        return json_response({"data": {name: {"pageInfo": info, "nodes": nodes}}, "extensions": {"cost": cost}})

    async def rest_shop(self, request, shop):
        fault = await self.gate("shop")
        if fault is not None:
            return fault
        if self._api_token(request, shop) is None:
            return json_response({"errors": self.INVALID}, 401)
        room, limit = self._rest_call(shop)
        if not room:
            return json_response(
                {
                    "errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                    "resume uninterrupted service."
                },
                429,
                {"Retry-After": "2.0", "X-Shopify-Shop-Api-Call-Limit": limit},
            )
        acc = self.account
        return json_response(
            {"shop": {"name": acc.get("name"), "email": acc.get("email"), "myshopify_domain": shop}},
            headers={"X-Shopify-Shop-Api-Call-Limit": limit},
        )

    async def revoke(self, request, shop):
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        token = self._api_token(request, shop)
        if token is None:
            return json_response({"errors": self.INVALID}, 401)
        self.kill(token, grant=True)
        return json_response({})


class WooCommerce(Provider):
    NAME = "WOOCOMMERCE"
    STORE = "shop.example"
    ROUTES = (
        ("GET", r"shop\.example/wc-auth/v1/authorize", "authorize"),
        ("GET", r"shop\.example/wp-json/?", "index"),
        ("GET", r"shop\.example/wp-json/wc/v3/(?P<kind>products|orders)", "wc_list"),
    )
    ACCOUNT = {
        "name": "Demo Woo Store",
        "description": "Just another WooCommerce store",
        "timezone_string": "UTC",
        "gmt_offset": 0,
    }

    def reset(self) -> None:
        super().reset()
        self._key_ids = itertools.count(1)

    def make_client_id(self) -> str:
        return "nexusctl"  # WooCommerce has no app credentials; app_name is free text

    def urls(self, base: str) -> dict[str, str]:
        return {}

    @property
    def store_url(self) -> str:
        return f"{self.emu.base_url}/{self.prefix}/{self.STORE}"

    def rate_limited(self, endpoint, retry_after):
        return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": str(retry_after)})

    @staticmethod
    def wp_die(message: str) -> web.Response:
        return web.Response(
            status=401,
            content_type="text/html",
            text=f"<html><body><p>Error: {html.escape(message)}.</p></body></html>",
        )

    async def authorize(self, request):
        fault = await self.gate("authorize")
        if fault is not None:
            return fault
        q = request.query
        for name in ("app_name", "user_id", "return_url", "callback_url", "scope"):
            if not q.get(name):
                return self.wp_die(f"Missing parameter {name}")
        if q["scope"] not in ("read", "write", "read_write"):
            return self.wp_die(f"Invalid scope {q['scope']}")
        for name in ("return_url", "callback_url"):
            if not valid_redirect_uri(q[name]):
                return self.wp_die(f"The {q[name]} is not a valid URL")
        # The real store insists on an https callback_url; the emulator has no TLS, so http is accepted.
        if self.take_deny():
            return web.Response(
                status=302, headers={"Location": add_query(q["return_url"], {"success": 0, "user_id": q["user_id"]})}
            )
        grant = self.new_grant([q["scope"]], app_name=q["app_name"])
        key = self.issue(
            grant,
            "access",
            None,
            value="ck_" + secrets.token_hex(20),
            secret="cs_" + secrets.token_hex(20),
            key_id=next(self._key_ids),
        )
        payload = {
            "key_id": key.data["key_id"],
            "user_id": q["user_id"],
            "consumer_key": key.value,
            "consumer_secret": key.data["secret"],
            "key_permissions": q["scope"],
        }
        fault = await self.gate("keys")  # the store creating and delivering the key
        if fault is not None:
            with self.lock:
                self.tokens.pop(key.value, None)
            return fault
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
                session.post(
                    q["callback_url"],
                    data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json;charset=UTF-8"},
                ) as resp,
            ):
                delivered = resp.status == 200  # WooCommerce: `200 !== code` is a failure, even 201/204
        except (aiohttp.ClientError, OSError, TimeoutError):
            delivered = False
        if not delivered:
            with self.lock:
                self.tokens.pop(key.value, None)
            return self.wp_die("An error occurred in the request and at the time were unable to send the consumer data")
        return web.Response(
            status=302, headers={"Location": add_query(q["return_url"], {"success": 1, "user_id": q["user_id"]})}
        )

    async def index(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        error = self._key_error(request)
        if error is not None:
            return error
        return json_response(
            {
                **self.account,
                "url": self.store_url,
                "home": self.store_url,
                "namespaces": ["oembed/1.0", "wc/v1", "wc/v2", "wc/v3", "wc/store/v1", "wp/v2"],
                "authentication": [],
                "routes": {},
            }
        )

    async def wc_list(self, request, kind):
        """GET /wp-json/wc/v3/{products,orders}: ``per_page`` (1-100, default 10) and ``page`` (from 1);
        ``orderby`` id or date (default date) and ``order`` (default desc); records as set are taken to be
        newest first. Headers X-WP-Total, X-WP-TotalPages and Link rel="next"/"prev" as WordPress sends."""
        fault = await self.gate(kind)
        if fault is not None:
            return fault
        error = self._key_error(request)
        if error is not None:
            return error
        q = request.query
        try:
            per_page, page = int(q.get("per_page", 10)), int(q.get("page", 1))
        except ValueError:
            per_page = page = 0
        if not 1 <= per_page <= 100 or page < 1:
            return json_response(
                {
                    "code": "rest_invalid_param",
                    "message": "Invalid parameter(s): per_page, page",
                    "data": {
                        "status": 400,
                        "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
                    },
                },
                400,
            )
        rows = self.records_of(kind)
        if q.get("orderby") == "id":
            rows.sort(key=lambda r: int(r["id"]), reverse=q.get("order", "desc") == "desc")
        elif q.get("order") == "asc":
            rows.reverse()
        total_pages = max(1, -(-len(rows) // per_page)) if rows else 0
        if page > max(total_pages, 1):
            return json_response(
                {
                    "code": "rest_post_invalid_page_number",
                    "message": "The page number requested is larger than the number of pages available.",
                    "data": {"status": 400},
                },
                400,
            )
        links = []
        base = f"{self.store_url}/wp-json/wc/v3/{kind}"
        others = "&".join(f"{k}={v}" for k, v in q.items() if k != "page")
        if page > 1:
            links.append(f'<{base}?{others}&page={page - 1}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{base}?{others}&page={page + 1}>; rel="next"')
        headers = {"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(total_pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return json_response(rows[(page - 1) * per_page : page * per_page], headers=headers)

    def _key_error(self, request):
        creds = basic_credentials(request)
        if not creds and request.query.get("consumer_key"):
            creds = (request.query["consumer_key"], request.query.get("consumer_secret", ""))
        if not creds:
            return _wc_error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        key, status = self.status(creds[0], "access")
        if status != "ok":
            return _wc_error("woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(key.data["secret"], creds[1]):
            return _wc_error("woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        return None


def _wc_error(code: str, message: str) -> web.Response:
    return json_response({"code": code, "message": message, "data": {"status": 401}}, 401)
