"""Mailchimp (fetch_lists, fetch_campaigns) and SendGrid (fetch_lists, fetch_campaigns).

Mailchimp: the API lives on the account's data centre, ``api_endpoint`` from
the OAuth metadata call (stored as ``apiEndpoint``) + ``/3.0``. Lists and
campaigns page by ``count`` (at most 1,000) and ``offset`` against
``total_items``; both are read oldest first (``sort_field=date_created`` /
``create_time``, ``sort_dir=ASC``) so an offset stays valid while new ones are
created. Errors are problem-detail JSON; a refused token is 401 "API Key
Invalid"; throttling is a bare 429 (a concurrency limit: no wait is given).

SendGrid (an API key sent as Bearer): ``GET /v3/marketing/lists?page_size=
&page_token=`` and, for campaigns, the current Marketing Campaigns' Single
Sends ``GET /v3/marketing/singlesends?page_size=&page_token=`` (the legacy
``/v3/campaigns`` is retired). Both page with ``_metadata.next``, a full URL
whose ``page_token`` is the resume state (only the token is kept: the calls
stay on the configured API host). 429 carries ``X-RateLimit-Reset`` (epoch).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from nexusctl.errors import ProviderError
from nexusctl.providers.sync.base import Item, Page, SyncAction

MAILCHIMP_PAGE = 500
SENDGRID_LISTS_PAGE = 1000  # the lists endpoint's maximum
SENDGRID_SINGLESENDS_PAGE = 100  # the single sends endpoint's maximum


def _mailchimp_pages(kind: str, sort_field: str, to_item):
    async def pages(api, resume):
        endpoint = str(api.metadata.get("apiEndpoint") or "").rstrip("/")
        if not endpoint:
            raise ProviderError(
                "MAILCHIMP: the integration has no apiEndpoint (data centre); connect it again", provider="MAILCHIMP"
            )
        offset = int((resume or {}).get("offset") or 0)
        while True:
            reply = await api.get(
                f"{endpoint}/3.0/{kind}",
                params={"count": MAILCHIMP_PAGE, "offset": offset, "sort_field": sort_field, "sort_dir": "ASC"},
            )
            body = reply.body if isinstance(reply.body, dict) else {}
            rows = body.get(kind)
            if not isinstance(rows, list):
                raise ProviderError(f"MAILCHIMP: /{kind} answered without {kind}", provider="MAILCHIMP")
            items = [to_item(r) for r in rows if isinstance(r, dict) and r.get("id")]
            offset += len(rows)
            total = body.get("total_items")
            more = bool(rows) and isinstance(total, int) and offset < total
            yield Page(items, {"offset": offset} if more else None, meta={"total": total})
            if not more:
                return

    return pages


def _mailchimp_list(r: dict) -> Item:
    stats = r.get("stats") or {}
    return Item(
        str(r["id"]),
        {
            "id": r["id"],
            "webId": r.get("web_id"),
            "name": r.get("name"),
            "createdAt": r.get("date_created"),
            "visibility": r.get("visibility"),
            "members": stats.get("member_count"),
            "unsubscribed": stats.get("unsubscribe_count"),
            "cleaned": stats.get("cleaned_count"),
            "lastSubAt": stats.get("last_sub_date"),
        },
    )


def _mailchimp_campaign(r: dict) -> Item:
    settings, recipients = r.get("settings") or {}, r.get("recipients") or {}
    return Item(
        str(r["id"]),
        {
            "id": r["id"],
            "webId": r.get("web_id"),
            "type": r.get("type"),
            "status": r.get("status"),
            "title": settings.get("title"),
            "subject": settings.get("subject_line"),
            "listId": recipients.get("list_id"),
            "createdAt": r.get("create_time"),
            "sentAt": r.get("send_time") or None,
            "emailsSent": r.get("emails_sent"),
        },
    )


def _sendgrid_pages(path: str, size: int, to_item):
    async def pages(api, resume):
        token = (resume or {}).get("pageToken")
        while True:
            reply = await api.get(path, params={"page_size": size, "page_token": token})
            body = reply.body if isinstance(reply.body, dict) else {}
            rows = body.get("result")
            if not isinstance(rows, list):
                raise ProviderError(f"SENDGRID: {path} answered without result", provider="SENDGRID")
            items = [to_item(r) for r in rows if isinstance(r, dict) and r.get("id")]
            following = (body.get("_metadata") or {}).get("next")
            token = (parse_qs(urlsplit(following).query).get("page_token") or [None])[0] if following else None
            yield Page(
                items,
                {"pageToken": token} if token else None,
                meta={"count": (body.get("_metadata") or {}).get("count")},
            )
            if not token:
                return

    return pages


def _sendgrid_list(r: dict) -> Item:
    return Item(str(r["id"]), {"id": r["id"], "name": r.get("name"), "contacts": r.get("contact_count")})


def _sendgrid_singlesend(r: dict) -> Item:
    return Item(
        str(r["id"]),
        {
            "id": r["id"],
            "name": r.get("name"),
            "status": r.get("status"),
            "categories": r.get("categories") or [],
            "sendAt": r.get("send_at"),
            "abTest": r.get("is_abtest", False),
            "createdAt": r.get("created_at"),
            "updatedAt": r.get("updated_at"),
        },
    )


ACTIONS = {
    "MAILCHIMP": [
        SyncAction(
            "fetch_lists",
            "list",
            _mailchimp_pages("lists", "date_created", _mailchimp_list),
            description="Audiences (3.0/lists)",
        ),
        SyncAction(
            "fetch_campaigns",
            "campaign",
            _mailchimp_pages("campaigns", "create_time", _mailchimp_campaign),
            description="Campaigns (3.0/campaigns)",
        ),
    ],
    "SENDGRID": [
        SyncAction(
            "fetch_lists",
            "list",
            _sendgrid_pages("v3/marketing/lists", SENDGRID_LISTS_PAGE, _sendgrid_list),
            description="Marketing contact lists (v3/marketing/lists)",
        ),
        SyncAction(
            "fetch_campaigns",
            "campaign",
            _sendgrid_pages("v3/marketing/singlesends", SENDGRID_SINGLESENDS_PAGE, _sendgrid_singlesend),
            description="Single Sends, the Marketing Campaigns emails (v3/marketing/singlesends)",
        ),
    ],
}
