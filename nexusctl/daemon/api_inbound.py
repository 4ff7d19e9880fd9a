"""What providers send this service on their own: Slack's slash commands.

Public (Slack carries no token of ours): the request is authenticated by its
Slack signature instead (nexusctl.core.slack_commands). The answer is Slack's
own format, not the API envelope: Slack shows ``text`` to the user.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import with_config
from typing_extensions import Required, TypedDict

from nexusctl.core import slack_commands
from nexusctl.daemon import responses as out
from nexusctl.daemon.answers import json_response
from nexusctl.daemon.fields import BODY, Text
from nexusctl.daemon.keys import SERVICES
from nexusctl.daemon.routing import Route, read_raw
from nexusctl.errors import PayloadTooLarge

FORM = slack_commands.FORM


# Documents what Slack sends (see Slack's "Enabling interactivity with Slash Commands"); extra fields are
# tolerated, and response_url is never kept or published.
@with_config(BODY)
class SlackCommand(TypedDict, total=False):
    team_id: Required[
        Text(max_length=64, description="the workspace: the command is published to its Slack integrations")
    ]
    team_domain: Text(max_length=255)
    enterprise_id: Text(max_length=64)
    channel_id: Text(max_length=64)
    channel_name: Text(max_length=255)
    user_id: Text(max_length=64)
    user_name: Text(max_length=255)
    command: Required[Text(max_length=64, description="e.g. /nexus")]
    text: Text(max_length=4000)
    api_app_id: Text(max_length=64)
    is_enterprise_install: Text(max_length=8)
    trigger_id: Text(max_length=255)
    response_url: Text(max_length=2048, description="dropped: a capability URL")


async def slack_command(request: web.Request) -> web.Response:

    if request.content_length is not None and request.content_length > slack_commands.BODY_MAX_BYTES:
        raise PayloadTooLarge(f"a slash command is at most {slack_commands.BODY_MAX_BYTES // 1024} KiB")
    body = await read_raw(request)  # bounded by the app's client_max_size, then by the check below
    if len(body) > slack_commands.BODY_MAX_BYTES:
        raise PayloadTooLarge(f"a slash command is at most {slack_commands.BODY_MAX_BYTES // 1024} KiB")
    headers = request.headers
    answer = await slack_commands.receive(
        request.app[SERVICES],
        timestamp=headers.get("X-Slack-Request-Timestamp"),
        signature=headers.get("X-Slack-Signature"),
        body=body,
        content_type=request.content_type,
    )
    return json_response(answer)


ROUTES = [
    Route(
        "POST",
        "/integrations/inbound/slack/commands",
        slack_command,
        "Slack slash commands (the command's Request URL): verified with SLACK_SIGNING_SECRET "
        "(X-Slack-Signature, X-Slack-Request-Timestamp), published as slack.command; answers Slack's "
        "ephemeral JSON",
        "inbound",
        public=True,
        body=SlackCommand,
        body_type=FORM,
        envelope=False,
        data=out.SlackAnswer,
        errors=("UNAUTHORIZED", "VALIDATION_ERROR", "PROVIDER_NOT_CONFIGURED", "PAYLOAD_TOO_LARGE"),
    ),
]
