"""Slack slash commands: verified, answered at once, published as ``slack.command``.

Slack POSTs a form (``application/x-www-form-urlencoded``) to the Request URL
configured for the command, ``POST /integrations/inbound/slack/commands``, and
shows the user an error unless it gets an answer within 3 seconds. So:

1. Verify (Slack's "Verifying requests from Slack"): ``X-Slack-Signature`` must be
   ``v0=`` + hex HMAC-SHA256, keyed with the app's signing secret
   (SLACK_SIGNING_SECRET), of ``v0:{X-Slack-Request-Timestamp}:{raw body}``, and
   the timestamp within 5 minutes of now. Otherwise 401 UNAUTHORIZED, nothing
   published.
2. Refuse a replay: a signature is accepted once. It is remembered for twice the
   window (a timestamp older than the window is refused anyway): in Redis when
   REDIS_URL is set (SET NX with a TTL, shared by every daemon), else as a
   ``consumed_events`` row written in the transaction that publishes the event.
3. Publish: one ``slack.command`` event (outbox + the webhooks subscribed to it)
   per active Slack integration of that workspace (``team_id``; a Slack
   integration's account id is its workspace), written before answering.
   ``response_url`` is left out: it lets anyone holding it post into the
   channel for 30 minutes, a secret the event bus must not carry.
4. Answer 200 with a short ephemeral message (only the user who typed the
   command sees it). A workspace with no active Slack integration gets a polite
   "not connected" answer and nothing is published.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from urllib.parse import parse_qsl

import peewee

from nexusctl.core import events
from nexusctl.core.storable import check_storable
from nexusctl.db.database import database_proxy
from nexusctl.db.models import ConsumedEvent, Integration
from nexusctl.enums import Provider
from nexusctl.errors import DatabaseUnavailable, ProviderNotConfigured, Unauthorized, UsageProblem

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300  # Slack's advice: refuse a request more than five minutes from now
REMEMBER_SECONDS = 2 * TOLERANCE_SECONDS  # a signature is refused again for as long as its timestamp could pass
BODY_MAX_BYTES = 16 * 1024  # a command's form is a few hundred bytes; its text is at most 4,000 characters
FIELDS_MAX = 40
FORM = "application/x-www-form-urlencoded"
REDIS_PREFIX = "nexusctl:slack-command:"
REPLAY_KEY_PREFIX = "slack.command:"
_TIMESTAMP = re.compile(r"\d{1,12}", re.ASCII)  # unix seconds as Slack sends them: \d alone takes '١٧' too
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# What the event carries, as the API names it. response_url is deliberately absent (see above).
PUBLISHED = {
    "command": "command",
    "text": "text",
    "team_domain": "teamDomain",
    "enterprise_id": "enterpriseId",
    "channel_id": "channelId",
    "channel_name": "channelName",
    "user_id": "slackUserId",
    "user_name": "slackUserName",
    "api_app_id": "apiAppId",
    "trigger_id": "triggerId",
}
NOT_CONNECTED = (
    "This Slack workspace is not connected to Nexus yet, so the command was not run. "
    "Connect it from the Nexus app, then try again."
)


def signature_of(secret: str, timestamp: str, body: bytes) -> str:
    """What Slack sends in X-Slack-Signature for this timestamp and body."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> str:
    """The signature, if the request is Slack's and recent; Unauthorized otherwise."""
    if not timestamp or not signature:
        raise Unauthorized("missing X-Slack-Request-Timestamp or X-Slack-Signature: not a request from Slack")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized("X-Slack-Request-Timestamp must be unix seconds")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("X-Slack-Request-Timestamp is more than 5 minutes from now: refused (a replay?)")
    expected = signature_of(secret, timestamp, body)
    # Compared as bytes of the same alphabet: a header with other characters simply does not match.
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(expected, signature):
        raise Unauthorized("X-Slack-Signature does not match this request (check SLACK_SIGNING_SECRET)")
    return signature


def parse(body: bytes) -> dict[str, str]:
    """The command's form fields; UsageProblem if it is not one."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=FIELDS_MAX, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise UsageProblem("the body must be a URL-encoded form (what Slack sends for a slash command)") from None
    form = dict(pairs)
    check_storable(form, "body")
    team = form.get("team_id", "")
    if not team or len(team) > 64:
        raise UsageProblem("team_id is required: the workspace the command was typed in", field="team_id")
    if not form.get("command", "").startswith("/") or len(form["command"]) > 64:
        raise UsageProblem("command must be the slash command, e.g. /nexus", field="command")
    return form


def event_data(form: dict[str, str]) -> dict:
    data = {"teamId": form["team_id"]}
    data.update({name: form[field] for field, name in PUBLISHED.items() if form.get(field)})
    data["isEnterpriseInstall"] = form.get("is_enterprise_install") == "true"
    return data


async def receive(
    svc,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    content_type: str = FORM,
    now: float | None = None,
) -> dict:
    """Handle one slash command; returns Slack's answer (ephemeral JSON)."""
    secret = svc.settings.slack_signing_secret
    if secret is None:
        raise ProviderNotConfigured(
            "SLACK_SIGNING_SECRET is not set: slash commands cannot be verified", provider=Provider.SLACK.value
        )
    signature = verify(secret.get(), timestamp, signature, body, now)  # first: others learn nothing more
    if content_type != FORM:
        raise UsageProblem(f"a slash command is a form ({FORM})", field="Content-Type")
    form = parse(body)
    if svc.redis is not None:
        await _remember_in_redis(svc.redis, signature)
        replay_key = None
    else:
        replay_key = REPLAY_KEY_PREFIX + signature
    published = await svc.run(_publish, event_data(form), replay_key)
    log.info(
        "slack command %s from workspace %s: %s",
        form["command"][:64],
        form["team_id"],
        f"published to {published} integration(s)" if published else "workspace not connected, not published",
    )
    if not published:
        return {"response_type": "ephemeral", "text": NOT_CONNECTED}
    return {"response_type": "ephemeral", "text": f"Got it: {form['command'][:64]} is on its way."}


async def _remember_in_redis(client, signature: str) -> None:
    # start-up: redis loads only where Redis is used
    from redis.exceptions import RedisError

    try:
        fresh = await client.set(REDIS_PREFIX + signature, "1", nx=True, ex=REMEMBER_SECONDS)
    except RedisError as exc:
        raise DatabaseUnavailable(
            f"Redis (where seen Slack requests are kept) is unreachable: {type(exc).__name__}"
        ) from None
    if not fresh:
        raise Unauthorized("this Slack request was already received: refused as a replay")


def _publish(data: dict, replay_key: str | None) -> int:
    """Record the command once (without Redis) and publish it to each integration of the workspace."""
    with database_proxy.atomic():
        if replay_key is not None:
            try:
                with database_proxy.atomic():
                    ConsumedEvent.create(
                        key=replay_key, stream="slack", type=events.SLACK_COMMAND, outcome={"teamId": data["teamId"]}
                    )
            except peewee.IntegrityError:
                raise Unauthorized("this Slack request was already received: refused as a replay") from None
        targets = list(
            Integration.select(Integration.id, Integration.user_id, Integration.provider)
            .where(
                (Integration.provider == Provider.SLACK)
                & (Integration.account_id == data["teamId"])
                & Integration.is_active
            )
            .order_by(Integration.created_at)
            .limit(100)
        )
        for integration in targets:
            events.record(events.SLACK_COMMAND, integration, **data)
    return len(targets)
