"""Email marketing: MAILCHIMP (OAuth, datacenter discovery) and SENDGRID (API keys, not OAuth).

MAILCHIMP quirks enforced:
- authorize takes no scope; the token response is ``{"access_token", "expires_in": 0,
  "scope": null}`` and the token never expires; there is no refresh or revoke;
- ``GET login.mailchimp.com/oauth2/metadata`` wants ``Authorization: OAuth <token>``
  (Bearer is refused) and tells the datacenter: ``dc`` and ``api_endpoint``
  (``{base}/mailchimp/{dc}.api.mailchimp.com``) (``calls["metadata"]``);
- ``GET {api_endpoint}/3.0/`` answers only on the account's datacenter
  (another dc is 401 "wrong datacenter"); errors are problem-detail JSON;
  throttling is a bare 429 without rate-limit headers;
- sync lists ``GET {api_endpoint}/3.0/lists|campaigns`` (gates ``lists`` /
  ``campaigns``): ``count`` 0-1000 (default 10), ``offset``, ``sort_field`` +
  ``sort_dir``; ``{lists|campaigns: [...], total_items}`` from ``records_of``.

SENDGRID quirks enforced:
- ``emu.sendgrid_key()`` is the only valid key (``SG.<id>.<secret>``), sent as
  ``Authorization: Bearer``; anything else is 401
  ``{"errors":[{"field":null,"message":"authorization required"}]}``;
- ``revoke_grants()`` deletes the key (the next ``sendgrid_key()`` mints a new one);
- 429 carries ``X-RateLimit-Limit/-Remaining/-Reset`` (epoch seconds);
- sync lists ``GET /v3/marketing/lists`` and ``/v3/marketing/singlesends``
  (gates ``lists`` / ``singlesends``): ``page_size`` (1-1000 / 1-100, default
  100), opaque ``page_token``; ``{result, _metadata: {self, next?, count}}``
  from ``records_of("lists" | "singlesends")``.

``account``: MAILCHIMP ``{dc, account_id, account_name, user_id, login_id,
login_name, login_email, role, email}``; SENDGRID ``{username, user_id}`` plus
the profile fields.
"""

from __future__ import annotations

import base64
import secrets
import uuid

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    basic_credentials,
    json_response,
    token_response,
)

PROBLEM = "https://mailchimp.com/developer/marketing/docs/errors/"


def _problem(status: int, title: str, detail: str):
    return json_response(
        {"type": PROBLEM, "title": title, "status": status, "detail": detail, "instance": str(uuid.uuid4())}, status
    )


class Mailchimp(TokenGrants, Provider):
    NAME = "MAILCHIMP"
    URLS = {
        "AUTH": "login.mailchimp.com/oauth2/authorize",
        "TOKEN": "login.mailchimp.com/oauth2/token",
        "API": "login.mailchimp.com",
    }
    ROUTES = (
        ("GET", r"login\.mailchimp\.com/oauth2/authorize", "authorize"),
        ("POST", r"login\.mailchimp\.com/oauth2/token", "token"),
        ("GET", r"login\.mailchimp\.com/oauth2/metadata", "metadata"),
        ("GET", r"(?P<dc>[a-z]+\d+)\.api\.mailchimp\.com/3\.0/?", "root"),
        ("GET", r"(?P<dc>[a-z]+\d+)\.api\.mailchimp\.com/3\.0/(?P<kind>lists|campaigns)/?", "collection"),
    )
    ACCOUNT = {
        "dc": "us19",
        "account_id": "8d3a3db4d97663a9074efcc16",
        "account_name": "Demo Newsletter",
        "user_id": 41234567,
        "login_id": 41234567,
        "login_name": "demo_owner",
        "login_email": "owner@demo.example",
        "email": "owner@demo.example",
        "role": "owner",
    }
    SPEC = AuthorizeSpec(scope_sep=None, pkce="none")

    def make_client_id(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(12))

    def make_client_secret(self) -> str:
        return secrets.token_hex(32)

    def rate_limited(self, endpoint, retry_after):
        return _problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")

    # Code exchange only: Mailchimp's tokens never expire, so there is nothing to refresh.
    GRANT_TYPES = ("authorization_code",)
    GATES: dict = {}
    CLIENT_METHODS = ("body",)
    CLIENT_REFUSAL = {"error": "invalid_client", "error_description": "Invalid client credentials"}
    CODE_CLIENT_PARAM = "client_id"
    CODE_VERIFIER = False

    def unsupported_grant(self, grant_type):
        return token_response(
            {"error": "unsupported_grant_type", "error_description": "Only authorization_code is supported"}, 400
        )

    def code_error(self, code, reason, params):
        return token_response({"error": "invalid_grant", "error_description": "Invalid authorization code"}, 400)

    def first_refresh(self, grant):
        return None

    def new_access(self, grant):
        return self.issue(grant, "access", None, value=secrets.token_hex(16))

    def token_body(self, grant, access, refresh, grant_type):
        return {"access_token": access.value, "expires_in": 0, "scope": None}

    async def metadata(self, request):
        fault = await self.gate("metadata")
        if fault is not None:
            return fault
        _token, status = self.status(auth_header(request, "OAuth"), "access")
        if status != "ok":
            return json_response(
                {
                    "error": "invalid_token",
                    "error_description": "send the token as 'Authorization: OAuth <token>'"
                    if auth_header(request, "Bearer")
                    else "invalid or revoked token",
                },
                401,
            )
        acc = self.account
        return json_response(
            {
                "dc": acc["dc"],
                "role": acc.get("role"),
                "accountname": acc.get("account_name"),
                "user_id": acc.get("user_id"),
                "login": {
                    "email": acc.get("login_email"),
                    "avatar": None,
                    "login_id": acc.get("login_id"),
                    "login_name": acc.get("login_name"),
                    "login_email": acc.get("login_email"),
                },
                "login_url": "https://login.mailchimp.com",
                "api_endpoint": f"{self.emu.base_url}/{self.prefix}/{acc['dc']}.api.mailchimp.com",
            }
        )

    def _api_error(self, request, dc):
        basic = basic_credentials(request)
        value = auth_header(request, "Bearer") or auth_header(request, "OAuth") or (basic[1] if basic else None)
        _token, status = self.status(value, "access")
        if status != "ok" or dc != self.account["dc"]:
            return _problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        return None

    async def collection(self, request, dc, kind):
        """``GET /3.0/lists|campaigns``: ``count`` (default 10, at most 1000), ``offset``, ``sort_field`` +
        ``sort_dir`` (ASC/DESC, over the rows' own field); answers ``{kind: [...], total_items}``."""
        fault = await self.gate(kind)
        if fault is not None:
            return fault
        error = self._api_error(request, dc)
        if error is not None:
            return error
        q = request.query
        try:
            count, offset = int(q.get("count", 10)), int(q.get("offset", 0))
        except ValueError:
            count = offset = -1
        if not 0 <= count <= 1000 or offset < 0:
            return _problem(400, "Invalid Resource", "count must be 0-1000 and offset not negative")
        rows = self.records_of(kind)
        if q.get("sort_field"):
            rows.sort(key=lambda r: str(r.get(q["sort_field"]) or ""), reverse=q.get("sort_dir") == "DESC")
        return json_response(
            {
                kind: rows[offset : offset + count],
                "total_items": len(rows),
                "_links": [{"rel": "self", "href": str(request.url), "method": "GET"}],
            }
        )

    async def root(self, request, dc):
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        error = self._api_error(request, dc)
        if error is not None:
            return error
        acc = self.account
        return json_response(
            {
                "account_id": acc.get("account_id"),
                "login_id": str(acc.get("login_id")),
                "account_name": acc.get("account_name"),
                "email": acc.get("email"),
                "username": acc.get("login_name"),
                "role": acc.get("role"),
            }
        )


class SendGrid(Provider):
    NAME = "SENDGRID"
    URLS = {"API": "api.sendgrid.com"}
    ROUTES = (
        ("GET", r"api\.sendgrid\.com/v3/user/username", "username"),
        ("GET", r"api\.sendgrid\.com/v3/user/profile", "profile"),
        ("GET", r"api\.sendgrid\.com/v3/marketing/(?P<kind>lists|singlesends)", "marketing_list"),
    )
    PAGE_MAX = {"lists": 1000, "singlesends": 100}
    ACCOUNT = {
        "username": "demo_sender",
        "user_id": 1234567,
        "first_name": "Demo",
        "last_name": "Sender",
        "company": "Demo Co",
        "address": "1 Main St",
        "address2": "",
        "city": "Denver",
        "state": "CO",
        "zip": "80202",
        "country": "US",
        "phone": "+1 555 0100",
        "website": "https://demo.example",
    }

    def make_client_id(self) -> str:
        return "sendgrid-api-key"  # SendGrid has no OAuth app; the user pastes an API key

    def reset(self) -> None:
        super().reset()
        self._key = None

    def key(self) -> str:
        """The valid API key (a new one if the last was revoked)."""
        with self.lock:
            if self._key is None or not self.valid_access(self._key):
                key_id, secret = secrets.token_urlsafe(16)[:22], secrets.token_urlsafe(32)[:43]
                self._key = self.issue(
                    self.new_grant(["full_access"]), "access", None, value=f"SG.{key_id}.{secret}"
                ).value
            return self._key

    def rate_limited(self, endpoint, retry_after):
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(self.now() + retry_after)),
        }
        return json_response({"errors": [{"field": None, "message": "too many requests"}]}, 429, headers)

    async def _authorized(self, request, endpoint):
        fault = await self.gate(endpoint)
        if fault is not None:
            return fault
        _token, status = self.status(auth_header(request), "access")
        if status != "ok":
            return json_response({"errors": [{"field": None, "message": "authorization required"}]}, 401)
        return None

    async def username(self, request):
        error = await self._authorized(request, "whoami")
        if error is not None:
            return error
        return json_response({"username": self.account.get("username"), "user_id": self.account.get("user_id")})

    async def marketing_list(self, request, kind):
        """``GET /v3/marketing/lists|singlesends``: ``page_size`` (lists 1-1000, single sends 1-100, default
        100) and an opaque ``page_token``; ``_metadata.next`` (a full URL) is absent on the last page."""
        error = await self._authorized(request, kind)
        if error is not None:
            return error
        q = request.query
        try:
            size = int(q.get("page_size", 100))
            start = (
                int(base64.urlsafe_b64decode(q["page_token"]).decode().removeprefix("o:")) if q.get("page_token") else 0
            )
        except (ValueError, UnicodeDecodeError):
            return json_response({"errors": [{"field": "page_token", "message": "invalid page token"}]}, 400)
        if not 1 <= size <= self.PAGE_MAX[kind]:
            return json_response(
                {
                    "errors": [
                        {"field": "page_size", "message": (f"page_size should be between 1 and {self.PAGE_MAX[kind]}")}
                    ]
                },
                400,
            )
        rows = self.records_of(kind)
        here = f"{self.emu.base_url}/{self.prefix}/api.sendgrid.com/v3/marketing/{kind}?page_size={size}"
        meta = {"self": here + (f"&page_token={q['page_token']}" if q.get("page_token") else ""), "count": len(rows)}
        if start + size < len(rows):
            meta["next"] = f"{here}&page_token={base64.urlsafe_b64encode(f'o:{start + size}'.encode()).decode()}"
        return json_response({"result": rows[start : start + size], "_metadata": meta})

    async def profile(self, request):
        error = await self._authorized(request, "profile")
        if error is not None:
            return error
        return json_response({k: v for k, v in self.account.items() if k not in ("username", "user_id")})
