"""Zapier: fetch_zaps.

``GET https://api.zapier.com/v2/zaps?limit=&offset=`` (the Workflow API v2,
scope ``zap``) pages by offset: ``links.next`` is the next page's URL (null on
the last page) and ``meta.count`` the total. Only the next page's ``offset``
is kept as the resume state, so calls stay on the configured API host.
Errors are JSON:API ``{"errors": [{status, code, title, detail}]}``; 429
carries Retry-After.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from nexusctl.errors import ProviderError
from nexusctl.providers.sync.base import Item, Page, SyncAction

ZAPIER_PAGE = 100


async def zapier_zaps(api, resume):
    offset = int((resume or {}).get("offset") or 0)
    while True:
        reply = await api.get("v2/zaps", params={"limit": ZAPIER_PAGE, "offset": offset})
        body = reply.body if isinstance(reply.body, dict) else {}
        rows = body.get("data")
        if not isinstance(rows, list):
            raise ProviderError("ZAPIER: /v2/zaps answered without data", provider="ZAPIER")
        items = [_zap(z) for z in rows if isinstance(z, dict) and z.get("id")]
        following = (body.get("links") or {}).get("next")
        if following and rows:
            given = (parse_qs(urlsplit(following).query).get("offset") or [None])[0]
            offset = int(given) if given and given.isascii() and given.isdigit() else offset + len(rows)
        else:
            following = None
        yield Page(
            items, {"offset": offset} if following else None, meta={"count": (body.get("meta") or {}).get("count")}
        )
        if not following:
            return


def _zap(z: dict) -> Item:
    steps = [s for s in z.get("steps") or [] if isinstance(s, dict)]
    apps = []
    for step in steps:
        action = step.get("action") or {}
        app = (action.get("app") or {}) if isinstance(action, dict) else {}
        title = app.get("title") if isinstance(app, dict) else None
        if title and title not in apps:
            apps.append(title)
    return Item(
        str(z["id"]),
        {
            "id": str(z["id"]),
            "title": z.get("title"),
            "enabled": z.get("is_enabled"),
            "lastSuccessfulRunAt": z.get("last_successful_run_date"),
            "updatedAt": z.get("updated_at"),
            "steps": len(steps),
            "apps": apps,
            "url": (z.get("links") or {}).get("html_editor"),
        },
    )


ACTIONS = {
    "ZAPIER": [SyncAction("fetch_zaps", "zap", zapier_zaps, description="Zaps (v2/zaps)")],
}
