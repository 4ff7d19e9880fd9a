"""Ad platforms: fetch_campaigns for Meta Ads, TikTok Ads and Google Ads.

- META_ADS: the user's ad accounts (``/me/adaccounts``, ids ``act_<n>``), then
  ``GET /act_{id}/campaigns`` for each, Graph cursor paging (``graph.py``).
- TIKTOK_ADS: ``GET /open_api/v1.3/campaign/get/?advertiser_id=&page=&page_size=``
  for each advertiser the token was granted (``advertiserIds`` in the token
  metadata, from the token answer's ``advertiser_ids``); page numbers up to
  ``data.page_info.total_page``; every answer is HTTP 200 with ``code``
  (0 = OK, 40100 = throttled, mapped by the adapter; 40104/40105 = token).
- GOOGLE_ADS: needs a developer token (``developer-token`` header) that our
  configuration cannot hold yet, and an API base (googleads.googleapis.com)
  that GOOGLE_ADS_API_URL does not name (it points at the userinfo host): the
  action refuses with ProviderNotConfigured until both exist.

Campaign metrics (insights / reports) are not fetched: items are the
campaigns' settings and status only.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError, ProviderNotConfigured, TokenExpired
from providers.sync.base import Item, Page, SyncAction
from providers.sync.graph import edges_of_each, graph_all

META_PAGE = 100
META_FIELDS = "id,name,status,effective_status,objective,daily_budget,lifetime_budget,created_time,updated_time"
TIKTOK_ADS_PAGE = 100
TIKTOK_ADS_TOKEN_CODES = {40102, 40104, 40105}  # token expired / missing / invalid or revoked [M: 40102]


# --- Meta Ads -----------------------------------------------------------------------------------


def _act(account: dict) -> str:
    raw = str(account["id"])
    return raw if raw.startswith("act_") else f"act_{raw}"


def _meta_campaign(account: dict, c: dict) -> Item:
    return Item(str(c["id"]), {"id": str(c["id"]), "accountId": _act(account), "name": c.get("name"),
                               "status": c.get("status"), "effectiveStatus": c.get("effective_status"),
                               "objective": c.get("objective"), "dailyBudget": c.get("daily_budget"),
                               "lifetimeBudget": c.get("lifetime_budget"), "createdTime": c.get("created_time"),
                               "updatedTime": c.get("updated_time")})


async def meta_campaigns(api, resume):
    accounts = await graph_all(api, "me/adaccounts", {"fields": "id,account_id,name", "limit": META_PAGE},
                               "META_ADS")
    async for page in edges_of_each(api, resume, accounts, lambda a: f"{_act(a)}/campaigns",
                                    {"fields": META_FIELDS, "limit": META_PAGE}, "META_ADS", _meta_campaign):
        yield page


# --- TikTok Ads ---------------------------------------------------------------------------------


def _tiktok_ads_check(reply) -> None:
    code = reply.get("code")
    if code == 0:
        return
    message = str(reply.get("message") or "no message")[:200]
    if code in TIKTOK_ADS_TOKEN_CODES:
        raise TokenExpired(f"TIKTOK_ADS: the access token was refused (code {code})", provider="TIKTOK_ADS")
    raise ProviderError(f"TIKTOK_ADS: campaign/get failed (code {code}): {message}", provider="TIKTOK_ADS",
                        status=reply.status)


def _tiktok_campaign(advertiser: str, c: dict) -> Item:
    return Item(str(c["campaign_id"]), {
        "id": str(c["campaign_id"]), "advertiserId": advertiser, "name": c.get("campaign_name"),
        "objective": c.get("objective_type"), "status": c.get("operation_status"),
        "secondaryStatus": c.get("secondary_status"), "budget": c.get("budget"), "budgetMode": c.get("budget_mode"),
        "createTime": c.get("create_time"), "modifyTime": c.get("modify_time")})


async def tiktok_ads_campaigns(api, resume):
    advertisers = [str(a) for a in api.metadata.get("advertiserIds") or []]
    if not advertisers:
        raise ProviderError("TIKTOK_ADS: this connection has no advertiser ids (the token answer listed none); "
                            "reconnect with an advertiser account", provider="TIKTOK_ADS")
    resume = resume or {}
    index = advertisers.index(resume["advertiser"]) if resume.get("advertiser") in advertisers else 0
    page = int(resume.get("page") or 1) if resume.get("advertiser") in advertisers else 1
    while True:
        advertiser = advertisers[index]
        reply = await api.get("open_api/v1.3/campaign/get/", check=_tiktok_ads_check, params={
            "advertiser_id": advertiser, "page": page, "page_size": TIKTOK_ADS_PAGE})
        data = reply.get("data") or {}
        items = [_tiktok_campaign(advertiser, c) for c in data.get("list") or []
                 if isinstance(c, dict) and c.get("campaign_id")]
        total = int(reply.get("data", "page_info", "total_page", default=0) or 0)
        if page < total:
            page += 1
        else:
            index, page = index + 1, 1
        if index >= len(advertisers):
            yield Page(items, None)
            return
        yield Page(items, {"advertiser": advertisers[index], "page": page})


# --- Google Ads ---------------------------------------------------------------------------------


async def google_ads_campaigns(api, resume):
    raise ProviderNotConfigured(
        "GOOGLE_ADS fetch_campaigns needs a Google Ads developer token (the developer-token header) and the "
        "googleads.googleapis.com API base; neither is part of the configuration yet", provider="GOOGLE_ADS")
    yield  # an async generator, like every action  # pragma: no cover


ACTIONS = {
    "META_ADS": [SyncAction("fetch_campaigns", "campaign", meta_campaigns,
                            description="Campaigns of every ad account the user can read (no insights)")],
    "TIKTOK_ADS": [SyncAction("fetch_campaigns", "campaign", tiktok_ads_campaigns,
                              description="Campaigns of every authorized advertiser (campaign/get, no reports)")],
    "GOOGLE_ADS": [SyncAction("fetch_campaigns", "campaign", google_ads_campaigns,
                              description="Not available yet: needs a developer token in the configuration")],
}
