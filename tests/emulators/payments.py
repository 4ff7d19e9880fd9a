"""Payments: STRIPE (Connect OAuth, Standard accounts) and PAYPAL (Log in with PayPal).

STRIPE quirks enforced:
- ``client_id`` is the platform's ``ca_…``; ``scope`` is read_write or
  read_only (default); codes are ``ac_…``;
- the token request authenticates with the platform secret key ``sk_…``, as
  ``client_secret`` in the body or as the HTTP Basic user (or Bearer);
  redirect_uri is not checked there;
- reusing a code fails AND revokes every token issued with it, as Stripe says
  ("All tokens issued with this code have been revoked.");
- access tokens never expire; refresh returns a new access token with the
  same refresh token; ``/oauth/deauthorize`` (client_id + stripe_user_id)
  disconnects the account;
- ``/v1/account`` takes the connected account's token as Bearer (or Basic),
  or the platform key plus ``Stripe-Account``; errors and throttling are
  ``{"error":{type, code, message}}``;
- ``GET /v1/charges`` (gate ``charges``), same keys as ``/v1/account``:
  ``limit`` 1-100 (default 10), ``starting_after`` / ``ending_before`` (an
  unknown id is 400 ``resource_missing``), ``{object: list, data, has_more}``
  from ``records_of("charges")``, newest first as set.

PAYPAL quirks enforced:
- the token and terminate endpoints require HTTP Basic (body credentials:
  401 ``invalid_client``); redirect_uri is not part of the token request;
- refresh returns a new access token only: the refresh token stays the same
  and is not repeated in the response;
- userinfo needs ``schema=openid`` (or ``paypalv1.1`` on the oauth2 path);
  throttling is 429 ``RATE_LIMIT_REACHED``;
- Transaction Search ``GET /v1/reporting/transactions`` (gate
  ``transactions``): start_date/end_date at most 31 days apart (else 400
  INVALID_REQUEST), ``page_size`` 1-500, ``page``, ``total_pages``; the grant
  needs ``TRANSACTION_SEARCH_SCOPE`` (else 403 NOT_AUTHORIZED), granted only to
  apps PayPal approved (``approve_scopes``); rows from
  ``records_of("transactions")`` filtered on ``transaction_initiation_date``.

``account``: STRIPE the Account object (its ``id`` is the stripe_user_id);
PAYPAL the OpenID userinfo object.
"""

from __future__ import annotations

import datetime
import secrets
import time

from aiohttp import web

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    basic_credentials,
    grant_for,
    json_response,
    read_form,
    revoke_token,
    token_response,
)


def _alnum(n: int) -> str:
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class Stripe(TokenGrants, Provider):
    NAME = "STRIPE"
    URLS = {
        "AUTH": "connect.stripe.com/oauth/authorize",
        "TOKEN": "connect.stripe.com/oauth/token",
        "API": "api.stripe.com",
        "REVOKE": "connect.stripe.com/oauth/deauthorize",
    }
    ROUTES = (
        ("GET", r"connect\.stripe\.com/(?:express/)?oauth/authorize", "authorize"),
        ("POST", r"connect\.stripe\.com/oauth/token", "token"),
        ("POST", r"connect\.stripe\.com/oauth/deauthorize", "deauthorize"),
        ("GET", r"api\.stripe\.com/v1/account", "account_info"),
        ("GET", r"api\.stripe\.com/v1/charges", "charges"),
    )
    ACCOUNT = {
        "id": "acct_1DemoConnected0",
        "object": "account",
        "email": "merchant@example.com",
        "country": "US",
        "business_profile": {"name": "Demo Merchant"},
        "settings": {"dashboard": {"display_name": "Demo Merchant"}},
        "charges_enabled": True,
    }
    SPEC = AuthorizeSpec(
        scope_sep=" ", scope_required=False, pkce="none", allowed_scopes=frozenset({"read_write", "read_only"})
    )
    CODE_REDIRECT = False  # Stripe does not check the redirect URI at the exchange
    CODE_VERIFIER = False

    def make_client_id(self) -> str:
        return "ca_" + _alnum(32)

    def make_client_secret(self) -> str:
        return "sk_test_" + _alnum(48)

    def rate_limited(self, endpoint, retry_after):
        return json_response(
            {
                "error": {
                    "code": "rate_limit",
                    "type": "invalid_request_error",
                    "message": (
                        "Too many requests hit the API too quickly. "
                        "We recommend an exponential backoff of your requests."
                    ),
                }
            },
            429,
        )

    def _secret_key(self, request, form) -> str | None:
        basic = basic_credentials(request)
        if basic:
            return basic[0]
        return form.get("client_secret") or auth_header(request)

    def _key_error(self, key):
        if not key:
            return token_response(
                {
                    "error": "invalid_client",
                    "error_description": (
                        "No authentication was provided. Send your secret API key using the Authorization header, "
                        "or as a client_secret POST parameter."
                    ),
                },
                401,
            )
        if key != self.client_secret:
            return token_response(
                {"error": "invalid_client", "error_description": f"Invalid API Key provided: {_masked(key)}"}, 401
            )
        return None

    def client_error(self, request, form):
        return self._key_error(self._secret_key(request, form))

    def unsupported_grant(self, grant_type):
        return token_response(
            {"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant_type}"}, 400
        )

    def code_error(self, code, reason, form):
        value = form.get("code")
        if reason == "used":
            if code.grant is not None:
                self.kill_grant(code.grant)
            return self._grant_error(
                "This authorization code has already been used. All tokens issued with this code have been revoked."
            )
        if reason == "expired":
            return self._grant_error(f"Authorization code expired: {value}")
        return self._grant_error(f"Authorization code does not exist: {value}")

    def code_grant(self, code):
        grant = grant_for(self, code, account=self.account["id"])
        grant.scope = code.scope[:1] or ["read_only"]  # Standard accounts default to read_only
        return grant

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", None, value="rt_" + _alnum(40))

    def refresh_error(self, token, status, form):
        return self._grant_error(f"Refresh token does not exist: {form.get('refresh_token')}")

    def next_refresh(self, old):
        return old  # Stripe's refresh tokens do not rotate

    def kill_grant(self, grant):
        with self.lock:
            grant.alive = False

    @staticmethod
    def _grant_error(description):
        return token_response({"error": "invalid_grant", "error_description": description}, 400)

    def new_access(self, grant):
        return self.issue(grant, "access", None, value="sk_test_" + _alnum(48))

    def token_body(self, grant, access, refresh, grant_type):
        return {
            "access_token": access.value,
            "livemode": False,
            "refresh_token": refresh.value,
            "token_type": "bearer",
            "stripe_publishable_key": "pk_test_" + _alnum(48),
            "stripe_user_id": grant.data["account"],
            "scope": grant.scope[0],
        }

    async def deauthorize(self, request):
        form = await read_form(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        error = self._key_error(self._secret_key(request, form))
        if error is not None:
            return error
        account = form.get("stripe_user_id")
        with self.lock:
            grants = [g for g in self.grants if g.alive and g.data.get("account") == account]
        if form.get("client_id") != self.client_id or not grants:
            return token_response(
                {
                    "error": "invalid_client",
                    "error_description": (
                        f"This application is not connected to stripe account {account}, or that account does not "
                        "exist."
                    ),
                },
                401,
            )
        for grant in grants:
            self.kill_grant(grant)
        return json_response({"stripe_user_id": account})

    async def charges(self, request):
        """``GET /v1/charges``: ``limit`` (1-100, default 10), ``starting_after`` / ``ending_before`` (an id in
        the list, else 400 resource_missing); records as set are newest first, as Stripe lists them."""
        fault = await self.gate("charges")
        if fault is not None:
            return fault
        error = self._api_key_error(request)
        if error is not None:
            return error
        q = request.query
        try:
            limit = int(q.get("limit", 10))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return json_response(
                {
                    "error": {
                        "code": "parameter_invalid_integer",
                        "param": "limit",
                        "type": "invalid_request_error",
                        "message": ("Invalid integer: limit must be between 1 and 100"),
                    }
                },
                400,
            )
        rows = self.records_of("charges")
        ids = [r["id"] for r in rows]
        start, end = 0, len(rows)
        for param in ("starting_after", "ending_before"):
            if q.get(param) and q[param] not in ids:
                return json_response(
                    {
                        "error": {
                            "code": "resource_missing",
                            "param": param,
                            "type": "invalid_request_error",
                            "message": f"No such charge: '{q[param]}'",
                        }
                    },
                    400,
                )
        if q.get("starting_after"):
            start = ids.index(q["starting_after"]) + 1
            page = rows[start : start + limit]
            more = start + limit < end
        elif q.get("ending_before"):
            end = ids.index(q["ending_before"])
            page = rows[max(0, end - limit) : end]
            more = end - limit > 0
        else:
            page, more = rows[:limit], limit < end
        return json_response({"object": "list", "data": page, "has_more": more, "url": "/v1/charges"})

    def _api_key_error(self, request):
        basic = basic_credentials(request)
        key = basic[0] if basic else auth_header(request)
        if not key:
            return _api_error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        if key == self.client_secret and request.headers.get("Stripe-Account"):
            with self.lock:
                connected = any(
                    g.alive and g.data.get("account") == request.headers["Stripe-Account"] for g in self.grants
                )
            if not connected:
                return _api_error(
                    403,
                    "The provided key does not have access to account "
                    f"'{request.headers['Stripe-Account']}' (or that account does not exist).",
                    code="account_invalid",
                )
            return None
        _token, status = self.status(key, "access")
        if status in ("revoked", "expired"):
            return _api_error(401, f"Expired API Key provided: {_masked(key)}", code="api_key_expired")
        if status != "ok":
            return _api_error(401, f"Invalid API Key provided: {_masked(key)}")
        return None

    async def account_info(self, request):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        error = self._api_key_error(request)
        if error is not None:
            return error
        return json_response(dict(self.account))


def _masked(key: str) -> str:
    prefix = key[:8] if key.startswith("sk_") else key[:3]
    return f"{prefix}{'*' * 12}{key[-4:]}"


def _api_error(status: int, message: str, code: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error"}
    if code:
        error["code"] = code
    return json_response(
        {"error": error}, status, {"WWW-Authenticate": 'Basic realm="Stripe"'} if status == 401 else None
    )


class PayPal(TokenGrants, Provider):
    NAME = "PAYPAL"
    URLS = {
        "AUTH": "www.paypal.com/signin/authorize",
        "TOKEN": "api-m.paypal.com/v1/oauth2/token",
        "API": "api-m.paypal.com",
        "REVOKE": "api-m.paypal.com/v1/oauth2/token/terminate",
    }
    WEB = r"www\.(?:sandbox\.)?paypal\.com"
    API = r"api-m\.(?:sandbox\.)?paypal\.com"
    ROUTES = (
        ("GET", rf"{WEB}/signin/authorize|{WEB}/connect/?", "authorize"),
        ("POST", rf"{API}/v1/oauth2/token", "token"),
        ("POST", rf"{API}/v1/oauth2/token/terminate", "terminate"),
        ("GET", rf"{API}/v1/identity/(?P<flavour>openidconnect|oauth2)/userinfo", "userinfo"),
        ("GET", rf"{API}/v1/reporting/transactions", "transactions"),
    )
    ACCESS_TTL = 28800
    ACCOUNT = {
        "user_id": "https://www.paypal.com/webapps/auth/identity/user/mWq6_1sU85v5EG9yHdPxJRrhGHrnMJ-1PQKtX6pcsmA",
        "sub": "https://www.paypal.com/webapps/auth/identity/user/mWq6_1sU85v5EG9yHdPxJRrhGHrnMJ-1PQKtX6pcsmA",
        "name": "Demo Buyer",
        "email": "buyer@example.com",
        "payer_id": "WDJJHEBZ4X2LY",
    }
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="none")
    TRANSACTION_SEARCH_SCOPE = "https://uri.paypal.com/services/reporting/search/read"
    # Transaction Search on a connected merchant's account: only apps PayPal approved (partners).
    APPROVAL_ONLY = frozenset({TRANSACTION_SEARCH_SCOPE})
    CODE_REDIRECT = False
    CODE_VERIFIER = False
    CLIENT_METHODS = ("basic",)
    CLIENT_REFUSAL = {"error": "invalid_client", "error_description": "Client Authentication failed"}

    def make_client_id(self) -> str:
        return "A" + _alnum(79)

    def make_client_secret(self) -> str:
        return "E" + _alnum(79)

    def rate_limited(self, endpoint, retry_after):
        return json_response(
            {
                "name": "RATE_LIMIT_REACHED",
                "message": "Too many requests. Blocked due to rate limiting.",
                "debug_id": secrets.token_hex(7),
                "information_link": "https://developer.paypal.com/api/rest/reference/rate-limiting/",
            },
            429,
        )

    def new_access(self, grant):
        return self.issue(grant, "access", self.ACCESS_TTL, value="A21AA" + secrets.token_urlsafe(80))

    def token_body(self, grant, access, refresh, grant_type):
        nonce = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + secrets.token_urlsafe(32)
        body = {"token_type": "Bearer", "expires_in": self.ACCESS_TTL}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        body.update({"access_token": access.value, "scope": " ".join(grant.scope), "nonce": nonce})
        return body

    def unsupported_grant(self, grant_type):
        return token_response(
            {"error": "unsupported_grant_type", "error_description": f"Grant type {grant_type} is not supported"}, 400
        )

    def code_error(self, code, reason, form):
        return token_response({"error": "invalid_grant", "error_description": "Invalid authorization code"}, 400)

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", None, value="R23AA" + secrets.token_urlsafe(80))

    def refresh_error(self, token, status, form):
        return token_response({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)

    def next_refresh(self, old):
        return None  # a refresh answers an access token only

    async def terminate(self, request):
        form, error = await self.client_call(request, "revoke")
        if error is not None:
            return error
        token, _status = self.status(form.get("token"), ("access", "refresh"))
        if token is not None:
            revoke_token(self, token)
        return web.Response(status=200)

    async def userinfo(self, request, flavour):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        value = auth_header(request)
        if not value:
            return json_response(
                {
                    "name": "AUTHENTICATION_FAILURE",
                    "message": (
                        "Authentication failed due to invalid authentication credentials or a missing Authorization "
                        "header."
                    ),
                    "links": [
                        {"href": "https://developer.paypal.com/docs/api/overview/#error", "rel": "information_link"}
                    ],
                },
                401,
            )
        _token, status = self.status(value, "access")
        if status != "ok":
            return json_response(
                {"error": "invalid_token", "error_description": "Access Token not found in cache"}, 401
            )
        expected = "openid" if flavour == "openidconnect" else "paypalv1.1"
        if request.query.get("schema") != expected:
            return json_response(
                {"name": "INVALID_REQUEST", "message": f"schema must be {expected}", "debug_id": secrets.token_hex(7)},
                400,
            )
        acc = self.account
        if flavour == "oauth2":
            return json_response(
                {
                    "user_id": acc.get("user_id"),
                    "name": acc.get("name"),
                    "payer_id": acc.get("payer_id"),
                    "emails": [{"value": acc.get("email"), "primary": True, "confirmed": True}],
                }
            )
        return json_response(dict(acc))

    async def transactions(self, request):
        """Transaction Search ``GET /v1/reporting/transactions``: ``start_date`` and ``end_date`` (ISO 8601 with
        an offset, both required, at most 31 days apart, both inclusive), ``page_size`` (1-500, default 100),
        ``page`` (from 1); rows from ``records_of("transactions")`` (``{transaction_info: {...}}``) whose
        ``transaction_initiation_date`` falls in the range, in the order set. Needs the token's grant to carry
        the reporting scope (``TRANSACTION_SEARCH_SCOPE``), else 403 NOT_AUTHORIZED."""
        fault = await self.gate("transactions")
        if fault is not None:
            return fault
        token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return json_response(
                {"error": "invalid_token", "error_description": "Access Token not found in cache"}, 401
            )
        if self.TRANSACTION_SEARCH_SCOPE not in token.grant.scope:
            return json_response(
                {
                    "name": "NOT_AUTHORIZED",
                    "message": "Authorization failed due to insufficient permissions.",
                    "debug_id": secrets.token_hex(7),
                    "details": [
                        {
                            "issue": "PERMISSION_DENIED",
                            "description": "You do not have permission to "
                            "access or perform operations on this resource.",
                        }
                    ],
                },
                403,
            )
        q = request.query

        def invalid(field, issue):
            return json_response(
                {
                    "name": "INVALID_REQUEST",
                    "message": "Request is not well-formed, syntactically incorrect, or violates schema.",
                    "debug_id": secrets.token_hex(7),
                    "details": [{"field": field, "value": q.get(field, ""), "location": "query", "issue": issue}],
                },
                400,
            )

        try:
            start, end = (datetime.datetime.fromisoformat(q[k]) for k in ("start_date", "end_date"))
        except (KeyError, ValueError):
            return invalid("start_date", "start_date and end_date must be ISO 8601 date-times")
        if start.tzinfo is None or end.tzinfo is None:
            return invalid("start_date", "a time zone offset is required")
        if end < start:
            return invalid("end_date", "End date must be after start date")
        if end - start > datetime.timedelta(days=31):
            return invalid("end_date", "Date range is greater than 31 days")
        try:
            size, page = int(q.get("page_size", 100)), int(q.get("page", 1))
        except ValueError:
            size = page = 0
        if not 1 <= size <= 500 or page < 1:
            return invalid("page_size", "page_size must be 1-500 and page at least 1")
        rows = [
            r
            for r in self.records_of("transactions")
            if start <= datetime.datetime.fromisoformat(r["transaction_info"]["transaction_initiation_date"]) <= end
        ]
        total_pages = -(-len(rows) // size)
        links = [{"href": str(request.url), "rel": "self", "method": "GET"}]
        return json_response(
            {
                "transaction_details": rows[(page - 1) * size : page * size],
                "account_number": "WDJJHEBZ4X2LY",
                "start_date": q["start_date"],
                "end_date": q["end_date"],
                "last_refreshed_datetime": datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S+0000"
                ),
                "page": page,
                "total_items": len(rows),
                "total_pages": total_pages,
                "links": links,
            }
        )
