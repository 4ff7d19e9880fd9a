"""Ad platforms: fetch_campaigns, with each campaign's metrics, for Meta Ads, TikTok Ads and Google Ads.

Every campaign item carries ``insights``: the campaign's totals over the
last ``INSIGHTS_DAYS`` full days (yesterday back, today excluded since it is
still counting), ``{"window": {"since", "until", "days"}, "impressions",
"clicks", "spend", ...}``; counts are integers, money a decimal string in the
account's currency, ratios floats. A campaign that did not deliver in the
window has zeros. Metrics change every day, so ``insights`` is a *volatile*
key (``Item.volatile``): it is left out of the fingerprint, so a campaign is
``campaign.updated`` only when its settings or status change, and its
created / updated events carry the metrics as of that run. Metrics alone
never make an event.

- META_ADS: the user's ad accounts (``/me/adaccounts``, ids ``act_<n>``), then
  ``GET /act_{id}/campaigns`` for each, Graph cursor paging (``graph.py``).
  The metrics come in the same call, by field expansion of the campaigns'
  insights edge: ``fields=...,insights.date_preset(last_30d){impressions,
  clicks,spend,reach,ctr,cpc,date_start,date_stop}``. No extra call at all
  (one ``/act_{id}/insights?level=campaign`` call per page would need a
  campaign-id filter and paging of its own, and joining). A campaign without
  delivery in the window has no ``insights`` in the answer.
- TIKTOK_ADS: ``GET /open_api/v1.3/campaign/get/?advertiser_id=&page=&page_size=``
  for each advertiser the token was granted (``advertiserIds`` in the token
  metadata, from the token answer's ``advertiser_ids``); page numbers up to
  ``data.page_info.total_page``; every answer is HTTP 200 with ``code``
  (0 = OK, 40100 = throttled, mapped by the adapter; 40104/40105 = token).
  Then one synchronous report per page of campaigns:
  ``GET /open_api/v1.3/report/integrated/get/`` with ``report_type=BASIC``,
  ``data_level=AUCTION_CAMPAIGN``, ``dimensions=["campaign_id"]``, the
  metrics, ``start_date``/``end_date`` and ``filtering`` on the page's
  ``campaign_ids`` (list parameters JSON-encoded in the query, as TikTok's
  GET endpoints take them).
- GOOGLE_ADS: every call sends the application's developer token
  (``developer-token``, GOOGLE_ADS_DEVELOPER_TOKEN; never shown in a message)
  and, when set, ``login-customer-id`` (GOOGLE_ADS_LOGIN_CUSTOMER_ID, the
  manager account). The API base is GOOGLE_ADS_API_URL
  (googleads.googleapis.com/vNN). ``GET customers:listAccessibleCustomers``,
  then for each customer ``POST customers/{cid}/googleAds:search`` with one
  GAQL query selecting the campaigns' id / name / status and their metrics
  for the window (``segments.date BETWEEN``), paged by ``nextPageToken``
  without ``pageSize`` (fixed 10,000 rows; v17+ refuses it). The resume
  state keeps the window with the page token (a page token only continues
  the same query); a token the API no longer takes restarts that customer.
  Customers that have no campaign metrics to give (manager accounts,
  cancelled accounts) are skipped. No developer token configured or one the
  API refuses: PROVIDER_NOT_CONFIGURED naming the variable.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from nexusctl import clock
from nexusctl.errors import ProviderError, ProviderNotConfigured, TokenExpired
from nexusctl.providers.sync.base import Item, Page, SyncAction
from nexusctl.providers.sync.graph import edges_of_each, graph_all

INSIGHTS_DAYS = 30
META_PAGE = 100
META_FIELDS = "id,name,status,effective_status,objective,daily_budget,lifetime_budget,created_time,updated_time"
META_PRESET = "last_30d"  # the last 30 full days, today excluded, in the ad account's time zone
META_METRICS = "impressions,clicks,spend,reach,ctr,cpc,date_start,date_stop"
TIKTOK_ADS_PAGE = 100
TIKTOK_ADS_TOKEN_CODES = {40102, 40104, 40105}  # token expired / missing / invalid or revoked [M: 40102]
TIKTOK_METRICS = ["spend", "impressions", "clicks", "ctr", "cpc", "reach", "conversion"]
GOOGLE_DEVELOPER_TOKEN_CODES = {
    "DEVELOPER_TOKEN_INVALID",
    "DEVELOPER_TOKEN_PARAMETER_MISSING",
    "DEVELOPER_TOKEN_PROHIBITED",
    "DEVELOPER_TOKEN_HEADER_INVALID",
}
GOOGLE_SKIP_CODES = {"REQUESTED_METRICS_FOR_MANAGER", "CUSTOMER_NOT_ENABLED"}  # no campaign metrics to read there
GOOGLE_STALE_TOKEN_CODES = {"INVALID_PAGE_TOKEN", "EXPIRED_PAGE_TOKEN"}


# --- the metrics window and number shapes -------------------------------------------------------


def _today() -> dt.date:
    return clock.now().date()


def insights_window() -> tuple[str, str]:
    """(since, until) of the last INSIGHTS_DAYS full days (UTC): until is yesterday."""
    until = _today() - dt.timedelta(days=1)
    return (until - dt.timedelta(days=INSIGHTS_DAYS - 1)).isoformat(), until.isoformat()


def _window(since: str | None, until: str | None, **extra) -> dict:
    return {"since": since, "until": until, "days": INSIGHTS_DAYS, **extra}


def _count(value) -> int:
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return 0


def _ratio(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _money(value) -> str:
    try:
        return str(Decimal(str(value))) if value not in (None, "") else "0"
    except InvalidOperation:
        return "0"


# --- Meta Ads -----------------------------------------------------------------------------------


def _act(account: dict) -> str:
    raw = str(account["id"])
    return raw if raw.startswith("act_") else f"act_{raw}"


def _meta_insights(c: dict) -> dict:
    edge = c.get("insights")
    rows = (edge.get("data") or []) if isinstance(edge, dict) else []
    row = rows[0] if rows and isinstance(rows[0], dict) else {}
    since, until = (row.get("date_start"), row.get("date_stop")) if row else insights_window()
    return {
        "window": _window(since, until, preset=META_PRESET),
        "impressions": _count(row.get("impressions")),
        "clicks": _count(row.get("clicks")),
        "spend": _money(row.get("spend")),
        "reach": _count(row.get("reach")),
        "ctr": _ratio(row.get("ctr")),
        "cpc": _money(row["cpc"]) if row.get("cpc") not in (None, "") else None,
    }


def _meta_campaign(account: dict, c: dict) -> Item:
    return Item(
        str(c["id"]),
        {
            "id": str(c["id"]),
            "accountId": _act(account),
            "name": c.get("name"),
            "status": c.get("status"),
            "effectiveStatus": c.get("effective_status"),
            "objective": c.get("objective"),
            "dailyBudget": c.get("daily_budget"),
            "lifetimeBudget": c.get("lifetime_budget"),
            "createdTime": c.get("created_time"),
            "updatedTime": c.get("updated_time"),
            "insights": _meta_insights(c),
        },
        volatile=("insights",),
    )


async def meta_campaigns(api, resume):
    accounts = await graph_all(api, "me/adaccounts", {"fields": "id,account_id,name", "limit": META_PAGE}, "META_ADS")
    fields = f"{META_FIELDS},insights.date_preset({META_PRESET}){{{META_METRICS}}}"
    async for page in edges_of_each(
        api,
        resume,
        accounts,
        lambda a: f"{_act(a)}/campaigns",
        {"fields": fields, "limit": META_PAGE},
        "META_ADS",
        _meta_campaign,
    ):
        yield page


# --- TikTok Ads ---------------------------------------------------------------------------------


def _tiktok_ads_check(what: str):
    def check(reply) -> None:
        code = reply.get("code")
        if code == 0:
            return
        message = str(reply.get("message") or "no message")[:200]
        if code in TIKTOK_ADS_TOKEN_CODES:
            raise TokenExpired(f"TIKTOK_ADS: the access token was refused (code {code})", provider="TIKTOK_ADS")
        raise ProviderError(
            f"TIKTOK_ADS: {what} failed (code {code}): {message}", provider="TIKTOK_ADS", status=reply.status
        )

    return check


def _tiktok_campaign(advertiser: str, c: dict, insights: dict) -> Item:
    return Item(
        str(c["campaign_id"]),
        {
            "id": str(c["campaign_id"]),
            "advertiserId": advertiser,
            "name": c.get("campaign_name"),
            "objective": c.get("objective_type"),
            "status": c.get("operation_status"),
            "secondaryStatus": c.get("secondary_status"),
            "budget": c.get("budget"),
            "budgetMode": c.get("budget_mode"),
            "createTime": c.get("create_time"),
            "modifyTime": c.get("modify_time"),
            "insights": insights,
        },
        volatile=("insights",),
    )


def _tiktok_insights(metrics: dict, since: str, until: str) -> dict:
    return {
        "window": _window(since, until),
        "impressions": _count(metrics.get("impressions")),
        "clicks": _count(metrics.get("clicks")),
        "spend": _money(metrics.get("spend")),
        "reach": _count(metrics.get("reach")),
        "ctr": _ratio(metrics.get("ctr")),
        "cpc": _money(metrics["cpc"]) if metrics.get("cpc") not in (None, "") else None,
        "conversions": _count(metrics.get("conversion")),
    }


async def _tiktok_report(api, advertiser: str, ids: list[str], since: str, until: str) -> dict[str, dict]:
    """campaign id -> its metrics over [since, until], for the given campaigns (one call; more pages if any)."""
    found: dict[str, dict] = {}
    page = 1
    while True:
        reply = await api.get(
            "open_api/v1.3/report/integrated/get/",
            check=_tiktok_ads_check("report/integrated/get"),
            params={
                "advertiser_id": advertiser,
                "report_type": "BASIC",
                "data_level": "AUCTION_CAMPAIGN",
                "dimensions": json.dumps(["campaign_id"]),
                "metrics": json.dumps(TIKTOK_METRICS),
                "start_date": since,
                "end_date": until,
                "filtering": json.dumps(
                    [{"field_name": "campaign_ids", "filter_type": "IN", "filter_value": json.dumps(ids)}]
                ),
                "page": page,
                "page_size": max(len(ids), 1),
            },
        )
        for row in reply.get("data", "list") or []:
            if isinstance(row, dict):
                campaign = str((row.get("dimensions") or {}).get("campaign_id") or "")
                if campaign:
                    found[campaign] = row.get("metrics") or {}
        if page >= int(reply.get("data", "page_info", "total_page", default=1) or 1):
            return found
        page += 1


async def tiktok_ads_campaigns(api, resume):
    advertisers = [str(a) for a in api.metadata.get("advertiserIds") or []]
    if not advertisers:
        raise ProviderError(
            "TIKTOK_ADS: this connection has no advertiser ids (the token answer listed none); "
            "reconnect with an advertiser account",
            provider="TIKTOK_ADS",
        )
    resume = resume or {}
    index = advertisers.index(resume["advertiser"]) if resume.get("advertiser") in advertisers else 0
    page = int(resume.get("page") or 1) if resume.get("advertiser") in advertisers else 1
    since, until = insights_window()
    while True:
        advertiser = advertisers[index]
        reply = await api.get(
            "open_api/v1.3/campaign/get/",
            check=_tiktok_ads_check("campaign/get"),
            params={"advertiser_id": advertiser, "page": page, "page_size": TIKTOK_ADS_PAGE},
        )
        data = reply.get("data") or {}
        rows = [c for c in data.get("list") or [] if isinstance(c, dict) and c.get("campaign_id")]
        metrics = (
            await _tiktok_report(api, advertiser, [str(c["campaign_id"]) for c in rows], since, until) if rows else {}
        )
        items = [
            _tiktok_campaign(advertiser, c, _tiktok_insights(metrics.get(str(c["campaign_id"]), {}), since, until))
            for c in rows
        ]
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


class _SkipCustomer(Exception):
    """This customer has no campaign metrics to give (a manager account, a cancelled account)."""


class _StalePageToken(Exception):
    """The stored page token is no longer taken: read the customer again from its first page."""


def _google_failure(reply) -> tuple[str, str, str]:
    """(kind, code, message) of the first GoogleAdsFailure error, or ("", "", "")."""
    for detail in reply.get("error", "details") or []:
        if not isinstance(detail, dict):
            continue
        for error in detail.get("errors") or []:
            if isinstance(error, dict) and isinstance(error.get("errorCode"), dict) and error["errorCode"]:
                kind, code = next(iter(error["errorCode"].items()))
                return str(kind), str(code), str(error.get("message") or "")
    return "", "", ""


def _scrub(text: str, secrets: tuple) -> str:
    text = " ".join(text.split())[:200]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _google_ads_check(what: str, secrets: tuple, login: str | None):
    def check(reply) -> None:
        if reply.status < 400:
            return
        kind, code, message = _google_failure(reply)
        if code in GOOGLE_DEVELOPER_TOKEN_CODES:
            raise ProviderNotConfigured(
                f"GOOGLE_ADS: the Google Ads API refused the developer token of GOOGLE_ADS_DEVELOPER_TOKEN ({code}); "
                "set the one shown in the API Center of the Google Ads manager account",
                provider="GOOGLE_ADS",
            )
        if code == "DEVELOPER_TOKEN_NOT_APPROVED":
            raise ProviderError(
                "GOOGLE_ADS: the developer token of GOOGLE_ADS_DEVELOPER_TOKEN is approved for test "
                "accounts only (DEVELOPER_TOKEN_NOT_APPROVED); apply for Basic or Standard access",
                provider="GOOGLE_ADS",
                status=reply.status,
            )
        if login and code in (
            "CLIENT_CUSTOMER_ID_INVALID",
            "INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION",
        ):
            raise ProviderNotConfigured(
                f"GOOGLE_ADS: the Google Ads API refused GOOGLE_ADS_LOGIN_CUSTOMER_ID {login} ({code})",
                provider="GOOGLE_ADS",
            )
        if code in GOOGLE_SKIP_CODES:
            raise _SkipCustomer(code)
        if code in GOOGLE_STALE_TOKEN_CODES:
            raise _StalePageToken(code)
        if code and reply.status != 401:  # 401 without a developer-token code: the OAuth token (generic handling)
            text = _scrub(message, secrets)
            raise ProviderError(
                f"GOOGLE_ADS: {what} answered HTTP {reply.status}: {kind} {code}{': ' + text if text else ''}",
                provider="GOOGLE_ADS",
                status=reply.status,
            )

    return check


def _google_campaign(customer: str, row: dict, since: str, until: str) -> Item:
    campaign, metrics = row.get("campaign") or {}, row.get("metrics") or {}
    micros = _count(metrics.get("costMicros"))
    insights = {
        "window": _window(since, until),
        "impressions": _count(metrics.get("impressions")),
        "clicks": _count(metrics.get("clicks")),
        "spend": str(Decimal(micros) / Decimal(1_000_000)),
        "costMicros": micros,
        "conversions": float(metrics.get("conversions") or 0),
    }
    return Item(
        str(campaign["id"]),
        {
            "id": str(campaign["id"]),
            "customerId": customer,
            "resourceName": campaign.get("resourceName"),
            "name": campaign.get("name"),
            "status": campaign.get("status"),
            "insights": insights,
        },
        volatile=("insights",),
    )


def _gaql(since: str, until: str) -> str:
    return (
        "SELECT campaign.id, campaign.name, campaign.status, metrics.impressions, metrics.clicks, "
        "metrics.cost_micros, metrics.conversions FROM campaign "
        f"WHERE segments.date BETWEEN '{since}' AND '{until}' ORDER BY campaign.id"
    )


async def google_ads_campaigns(api, resume):
    settings = api.settings
    developer = getattr(settings, "google_ads_developer_token", None)
    if developer is None:
        raise ProviderNotConfigured(
            "GOOGLE_ADS fetch_campaigns needs the application's Google Ads developer token: set "
            "GOOGLE_ADS_DEVELOPER_TOKEN (the API Center of the Google Ads manager account shows it)",
            provider="GOOGLE_ADS",
        )
    login = getattr(settings, "google_ads_login_customer_id", None)
    headers = {"developer-token": developer.get(), **({"login-customer-id": login} if login else {})}
    secrets = (developer.get(),)
    reply = await api.get(
        "customers:listAccessibleCustomers",
        headers=headers,
        secrets=secrets,
        check=_google_ads_check("customers:listAccessibleCustomers", secrets, login),
    )
    customers = sorted(
        str(name).rsplit("/", 1)[-1] for name in reply.get("resourceNames") or [] if str(name).startswith("customers/")
    )
    resume = resume or {}
    index, token = 0, None
    since, until = insights_window()
    if resume.get("customer") in customers:
        index, token = customers.index(resume["customer"]), resume.get("pageToken")
        if token and resume.get("since") and resume.get("until"):
            since, until = resume["since"], resume["until"]  # the page token continues that query only
    elif resume:
        index = min(int(resume.get("index") or 0), len(customers))  # the customer is gone: carry on at its place
    while index < len(customers):
        customer = customers[index]
        body = {"query": _gaql(since, until), **({"pageToken": token} if token else {})}
        try:
            reply = await api.post(
                f"customers/{customer}/googleAds:search",
                json_body=body,
                headers=headers,
                secrets=secrets,
                check=_google_ads_check("googleAds:search", secrets, login),
            )
        except _StalePageToken:
            if not token:
                raise ProviderError(
                    "GOOGLE_ADS: googleAds:search refused a first page as a stale page token", provider="GOOGLE_ADS"
                ) from None
            token = None
            since, until = insights_window()
            continue
        except _SkipCustomer:
            reply, token = None, None
        items = [
            _google_campaign(customer, row, since, until)
            for row in (reply.get("results") if reply else None) or []
            if isinstance(row, dict) and (row.get("campaign") or {}).get("id")
        ]
        token = (reply.get("nextPageToken") if reply else None) or None
        if token is None:
            index += 1
        if index >= len(customers):
            yield Page(items, None)
            return
        yield Page(
            items, {"customer": customers[index], "index": index, "pageToken": token, "since": since, "until": until}
        )
    yield Page([], None)  # no customer to read (none accessible, or the resumed position is past the end)


ACTIONS = {
    "META_ADS": [
        SyncAction(
            "fetch_campaigns",
            "campaign",
            meta_campaigns,
            description="Campaigns of every ad account the user can read, with their last 30 days' insights",
        )
    ],
    "TIKTOK_ADS": [
        SyncAction(
            "fetch_campaigns",
            "campaign",
            tiktok_ads_campaigns,
            description="Campaigns of every authorized advertiser (campaign/get), with their "
            "last 30 days' report metrics",
        )
    ],
    "GOOGLE_ADS": [
        SyncAction(
            "fetch_campaigns",
            "campaign",
            google_ads_campaigns,
            description="Campaigns of every accessible customer with their last 30 days' metrics "
            "(needs GOOGLE_ADS_DEVELOPER_TOKEN)",
        )
    ],
}
