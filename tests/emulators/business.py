"""CRM providers: HUBSPOT and SALESFORCE.

HUBSPOT quirks enforced:
- token endpoint ``/oauth/v3/token`` (v1 and 2026-03 paths too) takes every
  parameter in the form body; HTTP Basic is ignored (so the client id is
  "missing"); errors are 400 ``{status: BAD_*, message, correlationId}``;
- refresh returns the same refresh token (not rotated); ``expires_in`` 1800;
- revoke is ``DELETE /oauth/v1/refresh-tokens/{refresh_token}`` (204) and
  kills the grant; who-am-I is ``GET /oauth/v1/access-tokens/{token}``;
- throttling: 429 ``RATE_LIMIT`` with ``X-HubSpot-RateLimit-*`` headers;
- sync lists ``GET /crm/v3/objects/contacts`` and ``GET /marketing/v3/campaigns``
  (gates ``contacts`` / ``campaigns``): ``limit`` 1-100 (default 10), ``after``
  from ``paging.next.after`` (no ``paging`` on the last page), ``properties``
  filters each row's properties; they need ``crm.objects.contacts.read`` /
  ``marketing.campaigns.read`` (else 403 ``MISSING_SCOPES``); rows from
  ``records_of("contacts" | "campaigns")``.

SALESFORCE quirks enforced:
- the token response has no ``expires_in``; it carries ``instance_url``
  (``{base}/salesforce/na1.my.salesforce.com``), ``id``, ``issued_at`` (ms,
  string) and ``signature`` = base64(HMAC-SHA256(client secret, id + issued_at));
- access tokens live 2 h (session timeout) on the emulator clock, so clients
  must introspect (``POST {instance}/services/oauth2/introspect``);
- refresh returns only a new access token unless ``rotation`` is on, in which
  case a new refresh token comes back and the old one dies;
- credentials in the body only; errors ``{error, error_description}`` 400;
- userinfo / identity URL errors are 403 text ``Bad_OAuth_Token`` /
  ``Missing_OAuth_Token`` (Salesforce's identity-service codes);
- throttling: 403 ``REQUEST_LIMIT_EXCEEDED`` with ``Sforce-Limit-Info``;
- SOQL ``GET {instance}/services/data/vXX.X/query?q=SELECT ... FROM Contact|Campaign``
  and ``GET .../query/{locator}`` (gate ``query``): rows from
  ``records_of("contacts" | "campaigns")`` keyed by API field names, batches of
  ``Sforce-Query-Options: batchSize`` (200-2000, default 2000), ``done`` and
  ``nextRecordsUrl``; errors ``[{message, errorCode}]`` (401
  ``INVALID_SESSION_ID``, 400 ``INVALID_FIELD`` / ``INVALID_TYPE`` /
  ``INVALID_QUERY_LOCATOR``; ``forget_locators()`` drops them as an idle org does).

``account``: HUBSPOT ``{user, user_id, hub_id, hub_domain, app_id}``;
SALESFORCE the userinfo fields ``{user_id, organization_id, name, ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from aiohttp import web

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    authorize,
    body_auth,
    check_client,
    client_auth,
    json_response,
    read_form,
    revoke_token,
    rotate,
    token_response,
)


class HubSpot(TokenGrants, Provider):
    NAME = "HUBSPOT"
    URLS = {
        "AUTH": "app.hubspot.com/oauth/authorize",
        "TOKEN": "api.hubapi.com/oauth/v3/token",
        "API": "api.hubapi.com",
        "REVOKE": "api.hubapi.com/oauth/v1/refresh-tokens",
    }
    ROUTES = (
        ("GET", r"app\.hubspot\.com/oauth/authorize", "authorize"),
        ("POST", r"api\.hubapi\.com/oauth/(?:v1|v3|2026-03)/token", "token"),
        ("DELETE", r"api\.hubapi\.com/oauth/v1/refresh-tokens/(?P<value>[^/]+)", "revoke"),
        ("GET", r"api\.hubapi\.com/oauth/v1/access-tokens/(?P<value>[^/]+)", "whoami"),
        ("GET", r"api\.hubapi\.com/crm/v3/objects/contacts", "contacts"),
        ("GET", r"api\.hubapi\.com/marketing/v3/campaigns", "campaigns"),
        ("GET", r"api\.hubapi\.com/account-info/v3/details", "account_details"),
    )
    # list endpoint -> (records kind, scope it needs, properties sent when none are asked for)
    LISTS = {
        "contacts": (
            "contacts",
            "crm.objects.contacts.read",
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
        ),
        "campaigns": ("campaigns", "marketing.campaigns.read", ()),
    }
    ACCOUNT = {
        "user": "admin@demo.example",
        "user_id": 1234567,
        "hub_id": 62515,
        "hub_domain": "demo.hubspot.com",
        "app_id": 456789,
    }
    SPEC = AuthorizeSpec(response_type=None, scope_sep=" ", pkce="optional")
    ACCESS_TTL = 1800
    CODE_CLIENT_PARAM = "client_id"

    def make_client_id(self) -> str:
        h = secrets.token_hex(16)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def make_client_secret(self) -> str:
        return self.make_client_id()

    @staticmethod
    def error(status: str, message: str, http: int = 400) -> web.Response:
        return json_response({"status": status, "message": message, "correlationId": secrets.token_hex(16)}, http)

    def rate_limited(self, endpoint, retry_after):
        body = {
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": secrets.token_hex(16),
            "policyName": "TEN_SECONDLY_ROLLING",
        }
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        return json_response(body, 429, headers)

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC)

    GRANT_TYPE_FIRST = True

    def unsupported_grant(self, grant_type):
        return self.error("BAD_GRANT_TYPE", "missing or invalid grant_type")

    def client_error(self, request, form):
        bad = check_client(self, body_auth(form), ("body",))  # an Authorization header is ignored
        if bad in ("method", "client_id"):
            return self.error("BAD_CLIENT_ID", "missing or unknown client id")
        if bad:
            return self.error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        return None

    def code_error(self, code, reason, form):
        if reason == "redirect":
            return self.error("BAD_REDIRECT_URI", "redirect_uri does not match initial auth code URL")
        if reason.startswith("verifier"):
            return self.error("BAD_AUTH_CODE", "code_verifier does not match the code_challenge")
        return self.error("BAD_AUTH_CODE", "missing or unknown auth code")

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", None, value="na1-" + _uuidish())

    def refresh_error(self, token, status, form):
        return self.error("BAD_REFRESH_TOKEN", "missing or unknown refresh token")

    def next_refresh(self, old):
        return old  # HubSpot keeps the refresh token

    def new_access(self, grant):
        return self.issue(grant, "access", self.ACCESS_TTL, value="CJ" + secrets.token_urlsafe(90))

    def token_body(self, grant, access, refresh, grant_type):
        return {
            "token_type": "bearer",
            "refresh_token": refresh.value,
            "access_token": access.value,
            "expires_in": self.ACCESS_TTL,
        }

    async def revoke(self, request, value):
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        token, status = self.status(value, "refresh")
        if token is None or status == "revoked":
            return self.error("error", "refresh token not found", 404)
        self.kill(token, grant=True)
        return web.Response(status=204)

    async def whoami(self, request, value):
        token, refusal = await self.api_token(request, "whoami", carried=value)  # the token is in the path
        if refusal is not None:
            return refusal
        acc = self.account
        return json_response(
            {
                "token": token.value,
                "user": acc.get("user"),
                "hub_domain": acc.get("hub_domain"),
                "scopes": list(token.grant.scope),
                "hub_id": acc.get("hub_id"),
                "app_id": acc.get("app_id"),
                "expires_in": max(0, int(token.expires - self.now())),
                "user_id": acc.get("user_id"),
                "token_type": "access",
            }
        )

    async def account_details(self, request):
        """``GET /account-info/v3/details`` (Account Information API, any scope): the portal's id and settings."""
        _token, refusal = await self.api_token(request, "account")
        if refusal is not None:
            return refusal
        acc = self.account
        return json_response(
            {
                "portalId": acc.get("hub_id"),
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    # Every HubSpot API refuses a call the same way: 401 (expired or not a token), 403 MISSING_SCOPES.
    def token_refused(self, endpoint, token, status):
        if status == "expired":
            return self.api_refusal(401, "EXPIRED_AUTHENTICATION", "The OAuth token used to make this call expired.")
        return self.api_refusal(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        )

    def scope_refused(self, endpoint, token):
        return self.api_refusal(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
            errors=[
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": [self.LISTS[endpoint][1]]},
                }
            ],
        )

    @staticmethod
    def api_refusal(status: int, category: str, message: str, **extra):
        body = {"status": "error", "category": category, "message": message, "correlationId": secrets.token_hex(16)}
        return json_response({**body, **extra}, status)

    async def contacts(self, request):
        return await self._list(request, "contacts")

    async def campaigns(self, request):
        return await self._list(request, "campaigns")

    async def _list(self, request, endpoint):
        """CRM-style list: ``limit`` (1-100, default 10), ``after`` (the ``paging.next.after`` of the previous
        page), ``properties`` (comma-separated; only those come back). Records as set: ``{id, properties,
        createdAt, updatedAt, archived}``, in that order."""
        kind, scope, defaults = self.LISTS[endpoint]
        _token, refusal = await self.api_token(request, endpoint, scope)
        if refusal is not None:
            return refusal
        q = request.query
        try:
            limit, start = int(q.get("limit", 10)), int(q.get("after") or 0)
        except ValueError:
            limit = start = -1
        if not 1 <= limit <= 100 or start < 0:
            return self.api_refusal(400, "VALIDATION_ERROR", "limit must be 1-100 and after a paging cursor")
        wanted = [p for p in q.get("properties", "").split(",") if p] or list(defaults)
        rows = self.records_of(kind)
        page = []
        for row in rows[start : start + limit]:
            props = row.get("properties") or {}
            page.append({**row, "properties": {p: props.get(p) for p in wanted} if wanted else props})
        body = {"results": page}
        if endpoint == "campaigns":
            body["total"] = len(rows)
        if start + limit < len(rows):
            nxt = str(start + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{request.url.with_query(None)}?after={nxt}"}}
        return json_response(body)


def _uuidish() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Salesforce(TokenGrants, Provider):
    NAME = "SALESFORCE"
    INSTANCE = "na1.my.salesforce.com"
    URLS = {
        "AUTH": "login.salesforce.com/services/oauth2/authorize",
        "TOKEN": "login.salesforce.com/services/oauth2/token",
    }
    LOGIN = r"(?:login|test)\.salesforce\.com"
    HOSTS = r"(?:login|test)\.salesforce\.com|na1\.my\.salesforce\.com"
    ROUTES = (
        ("GET", rf"{LOGIN}/services/oauth2/authorize", "authorize"),
        ("POST", rf"{LOGIN}/services/oauth2/token", "token"),
        ("GET", rf"{LOGIN}/id/(?P<org>[^/]+)/(?P<user>[^/]+)", "identity"),
        ("POST", rf"(?:{HOSTS})/services/oauth2/introspect", "introspect"),
        ("GET|POST", rf"(?:{HOSTS})/services/oauth2/userinfo", "userinfo"),
        ("GET|POST", rf"(?:{HOSTS})/services/oauth2/revoke", "revoke"),
        ("GET", r"na1\.my\.salesforce\.com/services/data/v(?P<version>\d+\.\d)/query/?", "query"),
        (
            "GET",
            r"na1\.my\.salesforce\.com/services/data/v(?P<version>\d+\.\d)/sobjects/ContentVersion/"
            r"(?P<version_id>068\w{12,15})/VersionData",
            "version_data",
        ),
        ("GET", r"na1\.my\.salesforce\.com/services/data/v(?P<version>\d+\.\d)/query/(?P<locator>[^/]+)", "query_more"),
    )
    SOBJECTS = {"Contact": "contacts", "Campaign": "campaigns"}  # SOQL object -> records kind
    ROTATION = False
    ACCESS_TTL = 7200
    ACCOUNT = {
        "user_id": "005Dn000001DemoA",
        "organization_id": "00DDn000000DemoA",
        "name": "Demo Admin",
        "preferred_username": "admin@demo.example",
        "nickname": "admin",
        "email": "admin@demo.example",
        "email_verified": True,
    }
    SPEC = AuthorizeSpec(scope_sep=" ", scope_required=False, pkce="optional")
    CODE_CLIENT_PARAM = "client_id"

    def make_client_id(self) -> str:
        return "3MVG9" + secrets.token_urlsafe(60)[:80]

    def make_client_secret(self) -> str:
        return "".join(secrets.choice("0123456789ABCDEF") for _ in range(64))

    def rate_limited(self, endpoint, retry_after):
        return json_response(
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            403,
            {"Sforce-Limit-Info": "api-usage=15000/15000"},
        )

    @staticmethod
    def error(error: str, description: str, status: int = 400) -> web.Response:
        return token_response({"error": error, "error_description": description}, status)

    @staticmethod
    def deny(error, state):
        return {"error": error, "error_description": "end-user denied authorization", "state": state}

    def identity_url(self) -> str:
        return (
            f"{self.emu.base_url}/{self.prefix}/login.salesforce.com/id/"
            f"{self.account['organization_id']}/{self.account['user_id']}"
        )

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC, deny_params=self.deny)

    def client_error(self, request, form):
        bad = check_client(self, body_auth(form), ("body",))  # an Authorization header is ignored
        if bad in ("method", "client_id"):
            return self.error("invalid_client_id", "client identifier invalid")
        if bad:
            return self.error("invalid_client", "invalid client credentials")
        return None

    GRANT_TYPE_FIRST = True

    def unsupported_grant(self, grant_type):
        return self.error("unsupported_grant_type", "grant type not supported")

    def code_error(self, code, reason, form):
        if reason == "redirect":
            return self.error("redirect_uri_mismatch", "redirect_uri must match configuration")
        if reason.startswith("verifier"):
            return self.error("invalid_grant", "invalid code verifier")
        if reason == "expired":
            return self.error("invalid_grant", "expired authorization code")
        return self.error("invalid_grant", "authentication failure")

    def first_refresh(self, grant):
        if not grant.scope or {"refresh_token", "offline_access", "full"} & set(grant.scope):
            return self.issue(grant, "refresh", None, value="5Aep" + secrets.token_urlsafe(64))
        return None

    def refresh_error(self, token, status, form):
        return self.error("invalid_grant", "expired access/refresh token")

    def next_refresh(self, old):
        return rotate(self, old, value="5Aep" + secrets.token_urlsafe(64)) if self.rotation else None

    def new_access(self, grant):
        org = self.account["organization_id"]
        return self.issue(grant, "access", self.ACCESS_TTL, value=f"{org}!AQ" + secrets.token_urlsafe(70))

    def token_body(self, grant, access, refresh, grant_type):
        identity = self.identity_url()
        issued_at = str(int(self.now() * 1000))
        signature = base64.b64encode(
            hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        body = {"access_token": access.value}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        body.update(
            {
                "signature": signature,
                "scope": " ".join(grant.scope) or "api refresh_token",
                "instance_url": f"{self.emu.base_url}/{self.prefix}/{self.INSTANCE}",
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )
        return body

    async def introspect(self, request):
        form = await read_form(request)
        fault = await self.gate("introspect")
        if fault is not None:
            return fault
        if check_client(self, client_auth(request, form), ("body", "basic")):
            return self.error("invalid_client", "invalid client credentials", 401)
        token, status = self.status(form.get("token"), ("access", "refresh"))
        if status != "ok":
            return json_response({"active": False})
        body = {
            "active": True,
            "scope": " ".join(token.grant.scope),
            "client_id": self.client_id,
            "username": self.account.get("preferred_username"),
            "sub": self.identity_url(),
            "token_type": "access_token" if token.kind == "access" else "refresh_token",
            "iat": int(token.issued),
            "nbf": int(token.issued),
        }
        if token.expires is not None:
            body["exp"] = int(token.expires)
        return json_response(body)

    def token_refused(self, endpoint, token, status):
        if endpoint == "whoami":  # the identity service answers in plain text
            return web.Response(status=403, text="Missing_OAuth_Token" if status == "missing" else "Bad_OAuth_Token")
        return self.api_error(401, "INVALID_SESSION_ID", "Session expired or invalid")  # the REST API

    async def userinfo(self, request):
        _token, refusal = await self.api_token(request, "whoami")
        if refusal is not None:
            return refusal
        return json_response({"sub": self.identity_url(), **self.account})

    async def identity(self, request, org, user):
        _token, refusal = await self.api_token(request, "whoami")
        if refusal is not None:
            return refusal
        if (org, user) != (self.account["organization_id"], self.account["user_id"]):
            return web.Response(status=404, text="Bad_Id")
        acc = self.account
        return json_response(
            {
                "id": self.identity_url(),
                "user_id": acc["user_id"],
                "organization_id": acc["organization_id"],
                "username": acc.get("preferred_username"),
                "display_name": acc.get("name"),
                "email": acc.get("email"),
            }
        )

    def reset(self) -> None:
        super().reset()
        self.locators: dict[str, tuple[list[dict], int]] = {}  # query locator -> (rows, next offset)
        self.files: dict[str, int] = {}  # ContentVersion id -> size of its (generated) VersionData
        self.cut_files: dict[str, int] = {}  # ContentVersion id -> bytes of it sent before the connection closes
        self.file_status: dict[str, int] = {}  # ContentVersion id -> the status its answer has (200 if not here)

    def add_file(self, size: int, *, cut_after: int | None = None, status: int = 200) -> str:
        """A ContentVersion whose VersionData is ``size`` generated bytes (streamed, never held): its id.
        ``cut_after``: its answer (``status``, Content-Length ``size``) breaks off after that many bytes, the
        connection closed mid-body (the provider's server going away)."""
        version_id = "068" + secrets.token_hex(6)[:12].upper()
        with self.lock:
            self.files[version_id] = size
            if cut_after is not None:
                self.cut_files[version_id] = cut_after
            if status != 200:
                self.file_status[version_id] = status
        return version_id

    async def version_data(self, request, version, version_id):
        """``GET .../sobjects/ContentVersion/{id}/VersionData``: the file's bytes (application/octet-stream),
        written in 1 MiB chunks as they are made."""
        _token, refusal = await self.api_token(request, "blob")
        if refusal is not None:
            return refusal
        with self.lock:
            size = self.files.get(version_id)
            cut = self.cut_files.get(version_id)
            status = self.file_status.get(version_id, 200)
        if size is None:
            return self.api_error(404, "NOT_FOUND", "The requested resource does not exist")
        response = web.StreamResponse(
            status=status, headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        )
        await response.prepare(request)
        block = bytes(range(256)) * 4096  # 1 MiB
        left = size if cut is None else min(size, cut)
        try:
            while left > 0:
                await response.write(block[: min(left, len(block))])
                left -= len(block)
        except ConnectionError:  # the caller hung up mid-file (a daemon stopping): a provider just stops sending
            return response
        if cut is not None:  # the body breaks off: what was written still goes out (close flushes), then the end
            request.transport.close()
            return response
        await response.write_eof()
        return response

    @staticmethod
    def api_error(status: int, code: str, message: str):
        return json_response([{"message": message, "errorCode": code}], status)

    def _batch(self, request) -> int:
        options = dict(
            part.strip().split("=", 1)
            for part in request.headers.get("Sforce-Query-Options", "").split(",")
            if "=" in part
        )
        try:
            return min(max(int(options.get("batchSize", 2000)), 200), 2000)
        except ValueError:
            return 2000

    def _records_page(self, request, version, rows, offset):
        size = self._batch(request)
        page = rows[offset : offset + size]
        body = {"totalSize": len(rows), "done": offset + size >= len(rows), "records": page}
        if not body["done"]:
            locator = f"01g{secrets.token_hex(7).upper()}-{offset + size}"
            with self.lock:
                self.locators[locator] = (rows, offset + size)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        return json_response(body)

    async def query(self, request, version):
        """``GET /services/data/vXX.X/query?q=SELECT f, g FROM Object``: Contact and Campaign from
        ``records_of("contacts" | "campaigns")`` (rows keyed by API field names, ``Id`` included); the batch
        size comes from ``Sforce-Query-Options: batchSize=`` (200-2000, default 2000); ``nextRecordsUrl``
        while ``done`` is false."""
        _token, refusal = await self.api_token(request, "query")
        if refusal is not None:
            return refusal
        match = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)\s*", request.query.get("q", ""), re.I | re.S)
        if match is None:
            return self.api_error(400, "MALFORMED_QUERY", "unexpected token: the emulator reads SELECT ... FROM X")
        fields = [f.strip() for f in match.group(1).split(",")]
        kind = self.SOBJECTS.get(match.group(2))
        if kind is None:
            return self.api_error(400, "INVALID_TYPE", f"sObject type '{match.group(2)}' is not supported.")
        rows = []
        for row in self.records_of(kind):
            missing = [f for f in fields if f not in row]
            if missing:
                return self.api_error(
                    400, "INVALID_FIELD", f"No such column '{missing[0]}' on entity '{match.group(2)}'."
                )
            rows.append(
                {
                    "attributes": {
                        "type": match.group(2),
                        "url": f"/services/data/v{version}/sobjects/{match.group(2)}/{row['Id']}",
                    },
                    **{f: row[f] for f in fields},
                }
            )
        return self._records_page(request, version, rows, 0)

    async def query_more(self, request, version, locator):
        _token, refusal = await self.api_token(request, "query")
        if refusal is not None:
            return refusal
        with self.lock:
            known = self.locators.get(locator)
        if known is None:
            return self.api_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._records_page(request, version, *known)

    def forget_locators(self) -> None:
        """As when Salesforce drops idle query locators (about 15 minutes unused)."""
        with self.lock:
            self.locators.clear()

    async def revoke(self, request):
        form = await read_form(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        token, status = self.status(form.get("token") or request.query.get("token"), ("access", "refresh"))
        if token is None or status != "ok":
            return self.error("unsupported_token_type", "this token type is not supported")
        revoke_token(self, token)
        return web.Response(status=200)
