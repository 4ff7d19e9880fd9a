"""Replying to a comment at the provider: what `POST /integrations/{id}/comments/{commentId}/replies` and
`nexusctl integrations reply` run.

One provider call that creates the reply (nexusctl/providers/sync/comments.py REPLIERS), made at once (not queued):
the caller waits for the provider's reply id. The grant is checked first (MISSING_SCOPES naming the scope,
before any call, like a sync); a refused token is refreshed once (single-flight) and the call retried; a
provider's throttle answers RATE_LIMITED with its wait, nothing retried (the reply may not be made twice).
"""

from __future__ import annotations

import logging

from nexusctl.core import integrations, key_usage, sync_runs
from nexusctl.core.health import REPLY_COMMENT
from nexusctl.db.models import Integration
from nexusctl.errors import SyncNotStarted, TokenExpired
from nexusctl.providers import scopes as needed_scopes
from nexusctl.providers.adapters.tiktok import unavailable
from nexusctl.providers.sync.comments import REPLIERS, check_reply

log = logging.getLogger(__name__)


def _load(integration_id, owner_id, keyring):
    """The integration (the owner's, unless elevated), active and readable with this process's keys."""
    integration = integrations.get(integration_id, owner_id=owner_id)
    if keyring is not None:
        key_usage.require_keys(keyring, Integration, integration.id, ("access_token", "refresh_token"))
    if not integration.is_active:
        raise SyncNotStarted(
            f"integration {integration.id} is inactive ({integration.last_error or 'disconnected'}); "
            "reconnect it first",
            id=str(integration.id),
        )
    return integration


async def reply(svc, integration_id, comment_id, text, *, owner_id=None, video_id: str | None = None) -> dict:
    """Post ``text`` as a reply to ``comment_id``; returns ``{integrationId, provider, commentId, replyId, ...}``."""
    integration = await svc.run(_load, integration_id, owner_id, svc.keyring)
    provider = integration.provider
    comment_id, text = check_reply(provider.value, comment_id, text)
    approved = svc.settings.providers[provider].approved_scopes
    refused = unavailable(provider.value, REPLY_COMMENT, (integration.metadata or {}).get("provider"))
    if refused is not None:
        raise refused
    refused = needed_scopes.refusal(provider, REPLY_COMMENT, integration.scope or [], approved)
    if refused is not None:
        raise refused
    replier = REPLIERS[provider.value]
    row, tokens = await sync_runs._fresh_tokens(svc, integration.id)
    api = sync_runs._api(svc, row, tokens, "reply")
    hint = {"videoId": video_id} if video_id else {}
    try:
        result = await replier(api, comment_id, text, hint)
    except TokenExpired:
        _row, api = await sync_runs._refreshed(svc, integration.id, api)
        result = await replier(api, comment_id, text, hint)
    log.info("replied to %s comment %s on integration %s", provider.value, comment_id, integration.id)
    return {"integrationId": str(integration.id), "provider": provider.value, "commentId": comment_id, **result}
