"""ZAPIER (Workflow/Partner API) and SLACK (OAuth v2).

ZAPIER quirks enforced:
- authorize needs ``response_mode=query``; codes are valid for 2 minutes;
- credentials in the body or HTTP Basic; errors in django-oauth-toolkit form
  (``{"error":"invalid_grant"}`` 400, ``{"error":"invalid_client"}`` 401,
  "Mismatching redirect URI.");
- refresh returns a new refresh token and the old one dies (treated as rotating);
- no revocation endpoint; ``/v1/profiles/me`` needs the ``profile`` scope;
- ``GET /v2/zaps`` (gate ``zaps``): ``limit`` 1-100 (default 10), ``offset``,
  ``links.next``/``prev`` (null at the ends), ``meta.count``; needs ``zap`` or
  ``zap:all`` (else 403 permission_denied); rows from ``records_of("zaps")``.

SLACK quirks enforced:
- ``scope`` and ``user_scope`` are comma-separated; PKCE is not used;
- ``oauth.v2.access`` always answers HTTP 200; errors are ``{ok:false, error}``
  (``invalid_client_id``, ``bad_client_secret``, ``invalid_code``,
  ``code_already_used``, ``bad_redirect_uri``, ``invalid_refresh_token`` ...);
- without rotation the bot token ``xoxb-…`` never expires and there is no
  refresh token; with ``rotation`` (default on) tokens are ``xoxe.xoxb-1-…``
  with ``expires_in`` 43200 and a ``xoxe-1-…`` refresh token that is revoked
  once used; user tokens (``user_scope``) sit under ``authed_user``;
- ``auth.test`` / ``auth.revoke`` take the token as Bearer or ``token``
  parameter; errors ``not_authed``/``invalid_auth``/``token_revoked``/``token_expired``;
- throttling: 429 + Retry-After, body ``{ok:false, error:"ratelimited"}``.
- workspaces: a token acts in its grant's workspace (``team_id`` of the
  account that consented, see ``sign_in_as``); ``records_of("channels")``
  rows belong to the workspace in their ``context_team_id`` (none: the
  default account's). ``conversations.list`` lists the token's workspace
  only, the ``types`` asked for (default public_channel; a row is private
  with ``is_private``), each type needing its scope (public ``channels:read``,
  private ``groups:read``, else ``missing_scope`` with ``needed``), and
  ``chat.postMessage`` to a channel of another workspace (by id or name)
  answers ``channel_not_found``, as Slack does for a bot token.
- slash commands (Slack calling the app): ``slash_command(url, text)`` posts the
  form Slack posts, signed with the app's ``signing_secret`` (``X-Slack-Signature``
  ``v0=`` hex HMAC-SHA256 of ``v0:{timestamp}:{body}``), and gives up after 3 s
  as Slack does; ``command_form`` + ``sign`` + ``send_command`` let a test
  tamper with or replay one.

``account``: ZAPIER the profile object; SLACK ``{team_id, team, url, app_id,
bot_user_id, bot_user, bot_id, user_id, user}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from .base import Provider
from .oauth2 import (
    AuthorizeSpec,
    TokenGrants,
    auth_header,
    authorize,
    check_client,
    client_auth,
    grant_for,
    json_response,
    parse_scope,
    read_form,
    rotate,
    token_response,
)


class Zapier(TokenGrants, Provider):
    NAME = "ZAPIER"
    URLS = {
        "AUTH": "api.zapier.com/v2/authorize",
        "TOKEN": "zapier.com/oauth/token/",
        "API": "api.zapier.com",
    }
    ROUTES = (
        ("GET", r"api\.zapier\.com/v2/authorize", "authorize"),
        ("POST", r"zapier\.com/oauth/token/", "token"),
        ("GET", r"api\.zapier\.com/v1/profiles/me", "me"),
        ("GET", r"api\.zapier\.com/v2/zaps", "zaps"),
    )
    CODE_TTL = 120
    ACCESS_TTL = 36000
    ACCOUNT = {
        "id": 4120000,
        "full_name": "Demo Automator",
        "email": "zaps@example.com",
        "first_name": "Demo",
        "last_name": "Automator",
    }
    SPEC = AuthorizeSpec(scope_sep=" ", pkce="none", required=(("response_mode", "query"),))
    CODE_VERIFIER = False
    CLIENT_METHODS = ("basic", "body")

    @staticmethod
    def errors(status: int, code: str, title: str, detail: str, headers: dict | None = None):
        return json_response(
            {"errors": [{"status": str(status), "code": code, "title": title, "detail": detail}]}, status, headers
        )

    def rate_limited(self, endpoint, retry_after):
        headers = {"Retry-After": str(retry_after), "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0"}
        return self.errors(
            429,
            "throttled",
            "Throttled",
            f"Request was throttled. Expected available in {retry_after} seconds.",
            headers,
        )

    def code_error(self, code, reason, form):
        if reason == "redirect":
            return token_response({"error": "invalid_request", "error_description": "Mismatching redirect URI."}, 400)
        return token_response({"error": "invalid_grant"}, 400)

    def token_body(self, grant, access, refresh, grant_type):
        return {
            "access_token": access.value,
            "expires_in": self.ACCESS_TTL,
            "token_type": "Bearer",
            "scope": " ".join(grant.scope),
            "refresh_token": refresh.value,
        }

    def token_refused(self, endpoint, token, status):
        detail = "Authentication credentials were not provided." if status == "missing" else "Invalid or expired token."
        return self.errors(
            401, "not_authenticated", "NotAuthenticated", detail, {"WWW-Authenticate": 'Bearer realm="api"'}
        )

    def scope_refused(self, endpoint, token):
        scope = "profile" if endpoint == "whoami" else "zap"
        return self.errors(403, "permission_denied", "PermissionDenied", f"The token lacks the {scope} scope.")

    async def me(self, request):
        token, refusal = await self.api_token(request, "whoami", "profile")
        if refusal is not None:
            return refusal
        return json_response(dict(self.account))

    async def zaps(self, request):
        """``GET /v2/zaps``: ``limit`` (1-100, default 10) and ``offset``; ``links.next`` / ``links.prev`` are
        full URLs (null at the ends), ``meta`` ``{count, limit, offset}``; needs the ``zap`` (or ``zap:all``)
        scope; rows from ``records_of("zaps")`` in the order set."""
        token, refusal = await self.api_token(request, "zaps", {"zap", "zap:all"})
        if refusal is not None:
            return refusal
        try:
            limit, offset = int(request.query.get("limit", 10)), int(request.query.get("offset", 0))
        except ValueError:
            limit = offset = -1
        if not 1 <= limit <= 100 or offset < 0:
            return self.errors(400, "invalid", "ValidationError", "limit must be 1-100 and offset not negative")
        rows = self.records_of("zaps")
        here = f"{self.emu.base_url}/{self.prefix}/api.zapier.com/v2/zaps"
        links = {
            "next": f"{here}?limit={limit}&offset={offset + limit}" if offset + limit < len(rows) else None,
            "prev": f"{here}?limit={limit}&offset={max(0, offset - limit)}" if offset > 0 else None,
        }
        return json_response(
            {
                "links": links,
                "meta": {"count": len(rows), "limit": limit, "offset": offset},
                "data": rows[offset : offset + limit],
            }
        )


COMMAND_TIMEOUT = 3.0  # Slack shows the user "operation_timeout" when the app answers later
SLACKBOT = "Slackbot 1.0 (+https://api.slack.com/robots)"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class SlackAnswer:
    """What the app answered a slash command, and how fast."""

    status: int
    body: bytes
    seconds: float
    timed_out: bool = False

    def json(self):
        return json.loads(self.body)


class Slack(TokenGrants, Provider):
    NAME = "SLACK"
    URLS = {
        "AUTH": "slack.com/oauth/v2/authorize",
        "TOKEN": "slack.com/api/oauth.v2.access",
        "API": "slack.com/api",
        "REVOKE": "slack.com/api/auth.revoke",
    }
    ROUTES = (
        ("GET", r"slack\.com/oauth/v2/authorize", "authorize"),
        ("POST", r"slack\.com/api/oauth\.v2\.access", "token"),
        ("GET|POST", r"slack\.com/api/auth\.test", "auth_test"),
        ("GET|POST", r"slack\.com/api/auth\.revoke", "auth_revoke"),
        ("GET|POST", r"slack\.com/api/conversations\.list", "conversations_list"),
        ("POST", r"slack\.com/api/chat\.postMessage", "post_message"),
    )
    ROTATION = True
    ROTATING_TTL = 43200
    ACCOUNT = {
        "team_id": "T0DEMO1234",
        "team": "Demo Team",
        "url": "https://demo-team.slack.com/",
        "app_id": "A0DEMO1234",
        "bot_user_id": "U0BOT12345",
        "bot_user": "nexus-bot",
        "bot_id": "B0DEMO1234",
        "user_id": "U0DEMO1234",
        "user": "demo.user",
    }
    SPEC = AuthorizeSpec(response_type=None, scope_sep=",", scope_required=False, pkce="none")

    def make_client_id(self) -> str:
        return f"{secrets.randbelow(10**12):012d}.{secrets.randbelow(10**13):013d}"

    def make_client_secret(self) -> str:
        return secrets.token_hex(16)

    def rate_limited(self, endpoint, retry_after):
        return json_response({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(retry_after)})

    @staticmethod
    def fail(error: str):
        return json_response({"ok": False, "error": error})

    @staticmethod
    def _check(request):
        if not request.query.get("scope") and not request.query.get("user_scope"):
            return "scope or user_scope is required"
        return parse_scope(request.query.get("user_scope"), ",")[1]

    async def authorize(self, request):
        return await authorize(
            self,
            request,
            self.SPEC,
            check=self._check,
            data=lambda r: {"user_scope": parse_scope(r.query.get("user_scope"), ",")[0]},
        )

    def _access(self, grant, kind: str, rotating: bool):
        letter = "b" if kind == "bot" else "p"
        digits = f"{secrets.randbelow(10**12)}-{secrets.randbelow(10**13)}"
        value = (f"xoxe.xox{letter}-1-" if rotating else f"xox{letter}-") + f"{digits}-{secrets.token_hex(12)}"
        return self.issue(grant, "access", self.ROTATING_TTL if rotating else None, value=value, who=kind)

    def _pair(self, grant, kind: str):
        """An access token (and, with rotation, a refresh token) for the bot or the user."""
        rotating = self.rotation
        refresh = None
        if rotating:
            refresh = self.issue(grant, "refresh", None, value="xoxe-1-" + secrets.token_urlsafe(60), who=kind)
        return self._access(grant, kind, rotating), refresh

    def _describe(self, grant, kind, access, refresh) -> dict:
        scope = grant.scope if kind == "bot" else grant.data.get("user_scope", [])
        out = {"scope": ",".join(scope), "access_token": access.value, "token_type": "bot" if kind == "bot" else "user"}
        if refresh is not None:
            out.update({"refresh_token": refresh.value, "expires_in": self.ROTATING_TTL})
        return out

    # oauth.v2.access: HTTP 200 always, errors as {ok: false, error}; the client by Basic or in the form.
    GRANT_TYPE_DEFAULT = "authorization_code"

    def client_error(self, request, params):
        bad = check_client(self, client_auth(request, params), ("basic", "body"))
        if bad in ("method", "client_id"):
            return self.fail("invalid_client_id")
        return self.fail("bad_client_secret") if bad else None

    def unsupported_grant(self, grant_type):
        return self.fail("invalid_grant_type")

    def code_error(self, code, reason, params):
        return self.fail({"used": "code_already_used", "redirect": "bad_redirect_uri"}.get(reason, "invalid_code"))

    def refresh_error(self, token, status, params):
        return self.fail("invalid_refresh_token")

    def _answer(self, acc, **body) -> dict:
        team = {"team": {"id": acc["team_id"], "name": acc["team"]}, "enterprise": None, "is_enterprise_install": False}
        return {"ok": True, "app_id": self.account["app_id"], **body, **team}

    def exchange_code(self, request, code, params):
        """A bot token for ``scope`` and a user token for ``user_scope``, each with its refresh token."""
        grant = grant_for(self, code)
        acc = grant.data.get("account") or self.account
        authed = {"id": acc["user_id"]}
        if grant.data.get("user_scope"):
            authed.update(self._describe(grant, "user", *self._pair(grant, "user")))
        body = {"authed_user": authed}
        if grant.scope:
            bot = self._describe(grant, "bot", *self._pair(grant, "bot"))
            body.update(
                {
                    "scope": bot.pop("scope"),
                    "token_type": "bot",
                    "access_token": bot.pop("access_token"),
                    "bot_user_id": acc["bot_user_id"],
                }
            )
            bot.pop("token_type")
            body.update(bot)
        return self._answer(acc, **body)

    def exchange_refresh(self, request, old, params):
        """The bot's or the user's pair, rotated (the refresh token is single-use)."""
        acc = self.account_of(old)
        kind = old.data["who"]
        refresh = rotate(self, old, value="xoxe-1-" + secrets.token_urlsafe(60), who=kind)
        access = self._access(old.grant, kind, rotating=True)
        body = {"authed_user": {"id": acc["user_id"]}, **self._describe(old.grant, kind, access, refresh)}
        if kind == "bot":
            body["bot_user_id"] = acc["bot_user_id"]
        return self._answer(acc, **body)

    async def _token_of(self, request):
        form = await read_form(request)
        value = auth_header(request) or form.get("token") or request.query.get("token")
        return self.status(value, "access"), form

    def _auth_error(self, status: str):
        return self.fail(
            {"missing": "not_authed", "expired": "token_expired", "revoked": "token_revoked"}.get(
                status, "invalid_auth"
            )
        )

    async def auth_test(self, request):
        (token, status), _ = await self._token_of(request)
        fault = await self.gate("whoami")
        if fault is not None:
            return fault
        if status != "ok":
            return self._auth_error(status)
        acc = self.account_of(token)
        body = {"ok": True, "url": acc["url"], "team": acc["team"], "team_id": acc["team_id"]}
        if token.data.get("who") == "bot":
            body.update({"user": acc["bot_user"], "user_id": acc["bot_user_id"], "bot_id": acc["bot_id"]})
        else:
            body.update({"user": acc["user"], "user_id": acc["user_id"]})
        body["is_enterprise_install"] = False
        return json_response(body)

    def channels_of(self, token) -> list[dict]:
        """The channels of the token's workspace (a row without ``context_team_id`` is the default account's)."""
        team = self.account_of(token)["team_id"]
        return [c for c in self.records_of("channels") if c.get("context_team_id", self.account["team_id"]) == team]

    async def conversations_list(self, request):
        """conversations.list: ``limit`` (default 100, max 1000) and an opaque ``cursor``;
        ``response_metadata.next_cursor`` is "" on the last page (Slack's cursor pagination)."""
        (token, status), form = await self._token_of(request)
        fault = await self.gate("conversations.list")
        if fault is not None:
            return fault
        if status != "ok":
            return self._auth_error(status)
        args = {**request.query, **form}
        try:
            limit = min(int(args.get("limit", 100)), 1000)
            start = int(base64.b64decode(args["cursor"]).decode().removeprefix("team:")) if args.get("cursor") else 0
        except (ValueError, UnicodeDecodeError):
            return self.fail("invalid_cursor")
        user = token.data.get("who") == "user"
        granted = token.grant.data.get("user_scope", []) if user else token.grant.scope
        types = [t for t in str(args.get("types") or "public_channel").split(",") if t]
        needs = {
            "public_channel": "channels:read",
            "private_channel": "groups:read",
            "mpim": "mpim:read",
            "im": "im:read",
        }
        lacking = [needs[t] for t in types if t in needs and needs[t] not in granted]
        if lacking:  # Slack answers which scope the token needs and which it has
            return json_response(
                {"ok": False, "error": "missing_scope", "needed": ",".join(lacking), "provided": ",".join(granted)}
            )
        rows = [
            c
            for c in self.channels_of(token)
            if ("private_channel" if c.get("is_private") else "public_channel") in types
        ]
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        next_cursor = base64.b64encode(f"team:{start + limit}".encode()).decode() if more else ""
        return json_response({"ok": True, "channels": page, "response_metadata": {"next_cursor": next_cursor}})

    async def post_message(self, request):
        """chat.postMessage (JSON or form): needs ``chat:write``; ``channel`` by id or name among
        ``records_of("channels")``; the message is kept in ``records["messages"]``."""
        value = auth_header(request)
        if request.content_type == "application/json":
            try:
                args = await request.json()
            except ValueError:
                return self.fail("invalid_json")
        else:
            args = dict(await read_form(request))
            value = value or args.get("token")
        token, status = self.status(value, "access")
        fault = await self.gate("chat.postMessage")
        if fault is not None:
            return fault
        if status != "ok":
            return self._auth_error(status)
        if "chat:write" not in token.grant.scope:
            return json_response({"ok": False, "error": "missing_scope", "needed": "chat:write"})
        channel = next(
            (
                c
                for c in self.channels_of(token)
                if args.get("channel") in (c.get("id"), c.get("name"), "#" + str(c.get("name")))
            ),
            None,
        )
        if channel is None:
            return self.fail("channel_not_found")
        if not str(args.get("text") or "").strip():
            return self.fail("no_text")
        with self.lock:
            messages = self.records.setdefault("messages", [])
            ts = f"{1700000000 + len(messages)}.000100"
            messages.append({"channel": channel["id"], "text": args["text"], "ts": ts})
        return json_response(
            {
                "ok": True,
                "channel": channel["id"],
                "ts": ts,
                "message": {"type": "message", "text": args["text"], "ts": ts},
            }
        )

    # --- slash commands: Slack calls the app ---------------------------------------------------------------

    @property
    def signing_secret(self) -> str:
        """The app's signing secret (what SLACK_SIGNING_SECRET holds); constant for the emulator's life."""
        if not hasattr(self, "_signing_secret"):
            self._signing_secret = secrets.token_hex(16)
        return self._signing_secret

    def extra_env(self) -> dict[str, str]:
        return {"SLACK_SIGNING_SECRET": self.signing_secret}

    def command_form(self, text: str = "", *, command: str = "/nexus", account: dict | None = None, **fields) -> bytes:
        """The form Slack posts for a slash command typed in ``account``'s workspace (default: the default
        account's), by its user, in a channel of it; ``fields`` add or replace fields."""
        acc = account or self.account
        form = {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": acc["team_id"],
            "team_domain": acc["url"].split("//")[-1].split(".")[0],
            "channel_id": "C0DEMO0001",
            "channel_name": "general",
            "user_id": acc["user_id"],
            "user_name": acc["user"],
            "command": command,
            "text": text,
            "api_app_id": acc["app_id"],
            "is_enterprise_install": "false",
            "response_url": f"https://hooks.slack.com/commands/{acc['team_id']}/1234/{secrets.token_urlsafe(18)}",
            "trigger_id": f"13345224609.738474920.{secrets.token_hex(16)}",
            **fields,
        }
        return urlencode(form).encode()

    def sign(self, body: bytes, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        """The headers Slack adds: X-Slack-Request-Timestamp and X-Slack-Signature (v0, HMAC-SHA256 of
        ``v0:{timestamp}:{body}`` with the signing secret), timestamp now by the system clock: the product checks
        Slack's timestamps on the system clock too (nexusctl.clock: signatures checked by others are never moved),
        so a test that moved the shared clock still sends commands Slack would."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(
            (secret or self.signing_secret).encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
        return {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": SLACKBOT,
        }

    def send_command(self, url: str, body: bytes, headers: dict[str, str]) -> SlackAnswer:
        """POST the command as Slack does, giving up after 3 s as Slack does (then the user sees
        "operation_timeout"): the answer, with ``timed_out`` set when it came too late."""
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        started = time.monotonic()
        try:
            with _NO_PROXY.open(request, timeout=COMMAND_TIMEOUT) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (TimeoutError, urllib.error.URLError) as exc:
            if not isinstance(getattr(exc, "reason", exc), TimeoutError):
                raise
            return SlackAnswer(0, b"", time.monotonic() - started, timed_out=True)
        return SlackAnswer(status, raw, time.monotonic() - started)

    def slash_command(self, url: str, text: str = "", **kwargs) -> SlackAnswer:
        """A signed slash command, as Slack sends it when a user types ``/nexus text``."""
        body = self.command_form(text, **kwargs)
        return self.send_command(url, body, self.sign(body))

    async def auth_revoke(self, request):
        (token, status), form = await self._token_of(request)
        fault = await self.gate("revoke")
        if fault is not None:
            return fault
        if status != "ok":
            return self._auth_error(status)
        if (form.get("test") or request.query.get("test")) in ("1", "true"):
            return json_response({"ok": True, "revoked": False})
        self.kill(token, grant=token.data.get("who") == "bot")
        return json_response({"ok": True, "revoked": True})
