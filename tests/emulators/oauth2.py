"""Generic OAuth 2.0 pieces (RFC 6749, RFC 7636) the provider emulators share.

- ``authorize``: strict validation of an authorization request, then the
  simulated user consents at once (302 back with the code and the state), or
  declines if the test queued ``deny_next_authorize`` (or unticks the scopes
  of ``withhold_next_grant``); a consent asking for an approval-only scope
  the app is not approved for is refused whole. A request that fails
  validation answers 400 and is never redirected (the redirect URI is not
  trusted yet); so does one whose redirect URI the app has not registered
  (``Provider.redirect_uris``, exact match), as real providers refuse it.
- ``redeem``: single-use, expiring codes bound to client, redirect URI and
  PKCE challenge (S256 only).
- ``client_auth``: which client authentication a token request used (HTTP
  Basic, body, both) so each provider can insist on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from aiohttp import web

from .base import Code, Provider, auth_header  # noqa: F401 - auth_header is imported from here too

VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE_RE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url(SHA-256) without padding


def log_id() -> str:
    """A TikTok-style log/request id: UTC timestamp plus random hex."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(9).upper()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# --- HTTP helpers -----------------------------------------------------------


def add_query(url: str, params: dict) -> str:
    """Append params to url with ``?`` or ``&`` as needed, keeping its own query untouched."""
    parts = urlsplit(url)
    extra = urlencode(list(params.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def redirect(url: str, params: dict) -> web.Response:
    return web.Response(status=302, headers={"Location": add_query(url, params), "Cache-Control": "no-store"})


def valid_redirect_uri(uri: str | None) -> bool:
    if not uri:
        return False
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


def json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers, content_type="application/json")


def token_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    """RFC 6749 §5.1: token responses are never cached."""
    return json_response(body, status, {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})


async def read_form(request: web.Request) -> dict[str, str]:
    """Form fields (urlencoded or multipart); any other body (JSON...) reads as no fields."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {}
    data = await request.post()
    return {key: data.get(key) for key in set(data) if isinstance(data.get(key), str)}


async def read_json(request: web.Request) -> dict | None:
    if request.content_type != "application/json":
        return None
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def basic_credentials(request: web.Request) -> tuple[str, str] | None | bool:
    """(id, secret) from HTTP Basic; None when absent; False when malformed."""
    raw = auth_header(request, "Basic")
    if raw is None:
        return None
    try:
        decoded = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    if ":" not in decoded:
        return False
    user, _, password = decoded.partition(":")
    # RFC 6749 §2.3.1: both halves are form-urlencoded before base64.
    return unquote_plus(user), unquote_plus(password)


@dataclass
class ClientAuth:
    method: str | None  # "basic", "body", "both" or None (no client authentication at all)
    client_id: str | None
    client_secret: str | None
    malformed: bool = False


def client_auth(
    request: web.Request, params: dict, id_param: str = "client_id", secret_param: str = "client_secret"
) -> ClientAuth:
    basic = basic_credentials(request)
    body_id, body_secret = params.get(id_param), params.get(secret_param)
    if basic is False:
        return ClientAuth("basic", None, None, malformed=True)
    if basic:
        method = "both" if body_secret else "basic"
        return ClientAuth(method, basic[0], basic[1])
    if body_id or body_secret:
        return ClientAuth("body", body_id, body_secret)
    return ClientAuth(None, None, None)


def body_auth(params: dict, id_param: str = "client_id", secret_param: str = "client_secret") -> ClientAuth:
    """Client credentials read from the body only (for providers that ignore Authorization)."""
    present = params.get(id_param) or params.get(secret_param)
    return ClientAuth("body" if present else None, params.get(id_param), params.get(secret_param))


def check_client(p: Provider, auth: ClientAuth, accepts: tuple[str, ...]) -> str | None:
    """None when the client authenticated the way the provider wants; else "method", "client_id" or "secret"."""
    if auth.malformed or auth.method not in accepts:
        return "method"
    if auth.client_id != p.client_id:
        return "client_id"
    if auth.client_secret != p.client_secret:
        return "secret"
    return None


# --- authorization endpoint -------------------------------------------------


@dataclass(frozen=True)
class AuthorizeSpec:
    client_param: str = "client_id"
    response_type: str | None = "code"  # required value; None: the provider takes none
    response_type_optional: bool = False  # Facebook defaults it to "code"
    scope_sep: str | None = " "  # " ", ",", "either" (both accepted) or None (no scope parameter)
    scope_required: bool = True
    pkce: str = "optional"  # "none" (ignored, as unknown params are), "optional", "required"
    code_params: tuple[str, ...] = ("code",)
    required: tuple[tuple[str, str | None], ...] = ()  # extra params: (name, exact value or None = any)
    allowed_scopes: frozenset | None = None


def parse_scope(raw: str | None, sep: str | None) -> tuple[list[str], str | None]:
    if sep is None or raw is None or raw == "":
        return [], None
    if sep == " " and "," in raw:
        return [], f"scope must be space-separated, got {raw!r}"
    if sep == "," and " " in raw.strip():
        return [], f"scope must be comma-separated, got {raw!r}"
    if sep == "either":
        items = re.split(r"[ ,]+", raw.strip())
    else:
        items = raw.split(sep)
    items = [s.strip() for s in items]
    if any(not s for s in items):
        return [], f"empty item in scope {raw!r}"
    return items, None


def check_authorize(p: Provider, request: web.Request, spec: AuthorizeSpec) -> tuple[str | None, dict]:
    q = request.query
    for key in set(q.keys()):
        if len(q.getall(key)) > 1 and not key.endswith("[]"):
            return f"parameter {key} given more than once", {}
    client_id = q.get(spec.client_param)
    if not client_id:
        return f"missing {spec.client_param}", {}
    if not p.knows_client(client_id):
        return f"unknown {spec.client_param} {client_id!r}", {}
    if spec.response_type is not None:
        rt = q.get("response_type")
        if rt is None and not spec.response_type_optional:
            return "missing response_type", {}
        if rt is not None and rt != spec.response_type:
            return f"unsupported response_type {rt!r}", {}
    redirect_uri = q.get("redirect_uri")
    if not valid_redirect_uri(redirect_uri):
        return f"missing or invalid redirect_uri {redirect_uri!r}", {}
    if not p.redirect_registered(redirect_uri):
        return f"{p.REDIRECT_ERROR}: redirect_uri {redirect_uri!r} is not registered for this app", {}
    state = q.get("state")
    if not state:
        return "missing state", {}
    for name, value in spec.required:
        if not q.get(name):
            return f"missing {name}", {}
        if value is not None and q.get(name) != value:
            return f"{name} must be {value!r}", {}
    scope, problem = parse_scope(q.get("scope"), spec.scope_sep)
    if problem:
        return problem, {}
    if spec.scope_required and spec.scope_sep is not None and not scope:
        return "missing scope", {}
    if spec.allowed_scopes is not None and not set(scope) <= spec.allowed_scopes:
        return f"invalid scope {sorted(set(scope) - spec.allowed_scopes)}", {}
    challenge = method = None
    if spec.pkce == "none" and q.get("code_challenge") and q.get("code_challenge_method") != "S256":
        return "code_challenge_method must be S256", {}  # otherwise PKCE is ignored, like any unknown parameter
    if spec.pkce != "none":
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method")
        if spec.pkce == "required" and not challenge:
            return "code_challenge is required", {}
        if challenge:
            if method != "S256":
                return f"code_challenge_method must be S256, got {method!r}", {}
            if not CHALLENGE_RE.fullmatch(challenge):
                return "code_challenge is not a base64url SHA-256 digest", {}
        elif method:
            return "code_challenge_method without code_challenge", {}
    return None, {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": scope,
        "challenge": challenge,
        "method": method if challenge else None,
    }


async def authorize(
    p: Provider,
    request: web.Request,
    spec: AuthorizeSpec,
    *,
    data=None,
    extra_params=None,
    deny_params=None,
    check=None,
) -> web.StreamResponse:
    """The whole authorization endpoint: gate, validate, deny or consent, 302."""
    fault = await p.gate("authorize")
    if fault is not None:
        return fault
    problem, req = check_authorize(p, request, spec)
    if problem is None and check is not None:
        problem = check(request)
    if problem:
        error = p.REDIRECT_ERROR if problem.startswith(p.REDIRECT_ERROR + ":") else "invalid_request"
        return json_response({"error": error, "error_description": problem}, status=400)
    refused = p.unapproved(req["scope"])
    if refused:  # an approval-only scope the app lacks: the provider refuses the whole consent
        return redirect(
            req["redirect_uri"],
            {
                "error": p.APPROVAL_ERROR,
                "state": req["state"],
                "error_description": f"Scope {', '.join(refused)} is not authorized for your application",
            },
        )
    denied = p.take_deny()
    if denied:
        params = (
            deny_params(denied, req["state"])
            if deny_params
            else {"error": denied, "error_description": "The user denied the request.", "state": req["state"]}
        )
        return redirect(req["redirect_uri"], params)
    withheld = p.take_withheld()
    extra = dict(data(request) if callable(data) else (data or {}))
    account = p.take_sign_in()
    if account is not None:  # a test's sign_in_as: the grant made from this code acts for that account
        extra["account"] = account
    code = p.new_code(
        client_id=req["client_id"],
        redirect_uri=req["redirect_uri"],
        scope=[s for s in req["scope"] if s not in withheld],
        challenge=req["challenge"],
        method=req["method"],
        **extra,
    )
    params = {name: code.value for name in spec.code_params}
    params["state"] = req["state"]
    if extra_params is not None:
        params.update(extra_params(code, request))
    return redirect(req["redirect_uri"], params)


# --- codes ------------------------------------------------------------------


def redeem(
    p: Provider,
    value: str | None,
    *,
    client_id: str | None,
    redirect_uri: str | None = None,
    check_redirect: bool = True,
    verifier: str | None = None,
) -> tuple[Code | None, str]:
    """Consume a code. Reasons: ok, missing, unknown, used, expired, client, redirect,
    verifier_missing, verifier_invalid, verifier_mismatch. Only "ok" marks it used."""
    if not value:
        return None, "missing"
    with p.lock:
        code = p.codes.get(value)
        if code is None:
            return None, "unknown"
        if code.used:
            return code, "used"
        if p.now() >= code.expires:
            return code, "expired"
        if client_id != code.client_id:
            return code, "client"
        if check_redirect and redirect_uri != code.redirect_uri:
            return code, "redirect"
        if code.challenge:
            if not verifier:
                return code, "verifier_missing"
            if not VERIFIER_RE.fullmatch(verifier):
                return code, "verifier_invalid"
            if s256(verifier) != code.challenge:
                return code, "verifier_mismatch"
        code.used = True
        return code, "ok"


def grant_for(p: Provider, code: Code, **data):
    """The grant a successful code exchange creates (remembered on the code)."""
    grant = p.new_grant(code.scope, **{**code.data, **data})
    code.grant = grant
    return grant


def rotate(p: Provider, old, ttl: float | None = None, value: str | None = None, **data):
    """Single-use refresh tokens: the old one dies (as "rotated"), a new one joins the same grant."""
    p.kill(old, rotated=True)
    return p.issue(old.grant, "refresh", ttl, value=value, **data)


def revoke_token(p: Provider, token) -> None:
    """RFC 7009 default: a revoked refresh token takes its grant with it; an access token dies alone."""
    p.kill(token, grant=token.kind == "refresh")


# --- token endpoint ---------------------------------------------------------


class TokenGrants:
    """The token endpoint's grant dispatch, shared by every emulator with a token endpoint (RFC 6749 §4.1.3 code
    exchange, §6 refresh, and a provider's own grants); mixed into a ``Provider`` that overrides only where
    its provider differs.

    ``authorize`` is the generic authorization endpoint with the provider's ``SPEC``. ``token`` reads the
    parameters, plays the gate (``GATES`` by grant type, else ``token``), checks the client (before or after
    the grant type: ``GRANT_TYPE_FIRST``), then exchanges a code (``exchange_code``), a refresh token
    (``exchange_refresh``) or the provider's own grant (``exchange_other``) and answers what that returned
    (a dict as a no-store token response, or a finished response). The hooks, with their defaults:

    - ``token_params``: the form (it may answer None for a body not in the provider's format: then
      ``client_error`` refuses it); ``GRANT_TYPE_DEFAULT``: the grant type of a request naming none;
      ``client_error``: ``CLIENT_REFUSAL`` (401) unless the client authenticated as ``CLIENT_METHODS`` allows;
    - ``unsupported_grant``: 400 ``unsupported_grant_type``;
    - ``redeem_code``: the code bound to the client, redirect URI and PKCE verifier (``CODE_*`` say which);
      ``code_error(code, reason, params)``: 400 ``invalid_grant``; ``exchange_code``: ``code_grant``
      (``grant_for``), ``first_refresh`` (a refresh token that never expires; None: none is issued),
      ``new_access`` and ``token_body``;
    - ``refresh_error(token, status, params)``: 400 ``invalid_grant``; ``exchange_refresh``: ``next_refresh``
      (rotated; return the old one to keep it, None to answer without one), ``new_access`` and ``token_body``;
    - ``new_access``: an access token of ``ACCESS_TTL`` seconds.

    A provider whose token route has parameters (Shopify's shop) keeps them in the request's storage for its
    hooks (``request[REQUEST_SHOP]``).
    """

    GRANT_TYPES = ("authorization_code", "refresh_token")
    GRANT_TYPE_FIRST = False  # an unsupported grant type is refused before the client is checked
    CLIENT_METHODS: tuple[str, ...] | None = None  # how the client may authenticate ("basic", "body"); None: any
    CLIENT_REFUSAL: dict = {"error": "invalid_client"}  # the 401 answer's body when it does not
    CODE_PARAM = "code"  # the code exchange's parameter holding the code
    CODE_CLIENT_PARAM: str | None = None  # the code exchange's parameter naming the client (None: our id)
    CODE_REDIRECT = True  # the code exchange must repeat the authorization request's redirect URI
    CODE_VERIFIER = True  # the code exchange checks the PKCE verifier (False: a challenged code fails)
    GRANT_TYPE_DEFAULT: str | None = None  # the grant type of a request that names none (None: unsupported)
    GATES = {"refresh_token": "refresh"}  # the gate a grant type plays (any other: "token")

    async def token(self, request):
        params = await self.token_params(request)
        grant_type = (params or {}).get("grant_type", self.GRANT_TYPE_DEFAULT)
        fault = await self.gate(self.GATES.get(grant_type, "token"))
        if fault is not None:
            return fault
        if self.GRANT_TYPE_FIRST and grant_type not in self.GRANT_TYPES:
            return self.unsupported_grant(grant_type)
        error = self.client_error(request, params)
        if error is not None:
            return error
        if grant_type not in self.GRANT_TYPES:
            return self.unsupported_grant(grant_type)
        if grant_type == "authorization_code":
            code, reason = self.redeem_code(request, params)
            answer = (
                self.exchange_code(request, code, params) if reason == "ok" else self.code_error(code, reason, params)
            )
        elif grant_type == "refresh_token":
            old, status = self.status(params.get("refresh_token"), "refresh")
            answer = (
                self.exchange_refresh(request, old, params)
                if status == "ok"
                else self.refresh_error(old, status, params)
            )
        else:
            answer = self.exchange_other(request, grant_type, params)
        return answer if isinstance(answer, web.StreamResponse) else token_response(answer)

    def exchange_code(self, request, code, params) -> dict | web.StreamResponse:
        grant = self.code_grant(code)
        refresh = self.first_refresh(grant)
        return self.token_body(grant, self.new_access(grant), refresh, "authorization_code")

    def exchange_refresh(self, request, old, params) -> dict | web.StreamResponse:
        grant, refresh = old.grant, self.next_refresh(old)
        return self.token_body(grant, self.new_access(grant), refresh, "refresh_token")

    def exchange_other(self, request, grant_type: str, params) -> dict | web.StreamResponse:
        raise NotImplementedError(f"{type(self).__name__} lists grant type {grant_type} without exchanging it")

    async def authorize(self, request):
        return await authorize(self, request, self.SPEC)

    async def token_params(self, request) -> dict:
        return await read_form(request)

    def client_error(self, request, params) -> web.StreamResponse | None:
        if self.CLIENT_METHODS is None:
            return None
        if check_client(self, client_auth(request, params), self.CLIENT_METHODS):
            return token_response(dict(self.CLIENT_REFUSAL), 401)
        return None

    def unsupported_grant(self, grant_type) -> web.StreamResponse:
        return token_response({"error": "unsupported_grant_type"}, 400)

    def redeem_code(self, request, params):
        client_id = params.get(self.CODE_CLIENT_PARAM) if self.CODE_CLIENT_PARAM else self.client_id
        return redeem(
            self,
            params.get(self.CODE_PARAM),
            client_id=client_id,
            redirect_uri=params.get("redirect_uri"),
            check_redirect=self.CODE_REDIRECT,
            verifier=params.get("code_verifier") if self.CODE_VERIFIER else None,
        )

    def code_error(self, code, reason: str, params) -> web.StreamResponse:
        return token_response({"error": "invalid_grant"}, 400)

    def code_grant(self, code):
        return grant_for(self, code)

    def first_refresh(self, grant):
        return self.issue(grant, "refresh", None)

    def refresh_error(self, token, status: str, params) -> web.StreamResponse:
        return token_response({"error": "invalid_grant"}, 400)

    def next_refresh(self, old):
        return rotate(self, old)

    def new_access(self, grant):
        return self.issue(grant, "access", self.ACCESS_TTL)

    def token_body(self, grant, access, refresh, grant_type: str) -> dict:
        raise NotImplementedError

    async def client_call(self, request, endpoint: str):
        """(params, refusal) of another client-authenticated call (revoke, introspect): ``endpoint``'s gate,
        then ``client_error``; the refusal is None when the call may go on."""
        params = await self.token_params(request)
        fault = await self.gate(endpoint)
        if fault is not None:
            return params, fault
        return params, self.client_error(request, params)
