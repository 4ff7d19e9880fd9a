"""fetch_analytics: the account's metrics and its recent posts' metrics, as each provider reports them.

A snapshot, not a list: the run returns one ``Report`` (providers.sync.base) that the engine records as the
sync log's summary and one ``analytics.fetched`` event; metrics change all the time, so nothing here is tracked
per item (no ``media.updated`` for a new like). At most ``POSTS_MAX`` recent posts are measured.

- TIKTOK (Display API): ``GET /v2/user/info/?fields=follower_count,following_count,likes_count,video_count``
  (scope ``user.info.stats``) and ``POST /v2/video/list/`` with ``view_count,like_count,comment_count,
  share_count`` (scope ``video.list``). Lifetime totals; ``scope_not_authorized`` (HTTP 401) names the scope.
- INSTAGRAM (Instagram API with Instagram Login): ``GET /me?fields=followers_count,follows_count,media_count``;
  ``GET /me/insights?metric=reach,views,...&period=day&metric_type=total_value&since=&until=`` (scope
  ``instagram_business_manage_insights``; ``since``/``until`` at most 30 days apart, at most 2 years back: the
  last ``WINDOW_DAYS``); ``/me/media`` with ``like_count,comments_count`` and ``GET /{media-id}/insights?metric=
  views,reach,saved,shares,total_interactions`` (lifetime). A metric a media type does not support (Graph code
  100) leaves that post's insights out, with a note.
- FACEBOOK: every page of ``/me/accounts`` (its ``followers_count``), read with that page's own token (never
  stored): ``GET /{page-id}/insights?metric=page_media_view,page_total_media_view_unique,page_post_engagements&
  period=day&since=&until=`` (scope ``read_insights``; daily values summed over the window, at most 93 days
  apart: ``WINDOW_DAYS``) and its posts' ``GET /{post-id}/insights?metric=post_media_view,
  post_total_media_view_unique,post_clicks,post_reactions_by_type_total`` (lifetime). Views, not impressions:
  Meta retired the impressions metrics of Page Insights for every API version on 2025-11-15 (the ``_unique``
  ones on 2025-06-15), answering them with an invalid-metric error; ``page_media_view`` / ``post_media_view``
  (views) and ``page_total_media_view_unique`` / ``post_total_media_view_unique`` (viewers) replace them.
- YOUTUBE: Data API ``channels?part=statistics&mine=true`` (lifetime views, subscribers, videos) and
  ``videos?part=statistics&id=...`` for the latest uploads (scope ``youtube.readonly``); YouTube Analytics API
  ``GET youtubeanalytics.googleapis.com/v2/reports?ids=channel==MINE&metrics=views,likes,comments,shares,
  subscribersGained,subscribersLost,estimatedMinutesWatched&startDate=&endDate=`` (scope
  ``yt-analytics.readonly``): its data lags about two days, so the window ends ``YOUTUBE_LAG_DAYS`` ago.
  Throttling is 403 ``rateLimitExceeded`` / ``quotaExceeded`` (the adapter).
- TWITTER (X API v2): ``GET /2/users/me?user.fields=public_metrics`` and ``GET /2/users/{id}/tweets?
  tweet.fields=public_metrics,created_at`` (scopes ``tweet.read users.read``; lifetime public metrics; the
  per-15-minute limits answer 429 with ``x-rate-limit-reset``).
- LINKEDIN: Member Post Analytics (Community Management API), ``GET /rest/memberCreatorPostAnalytics?q=me&
  queryType=<IMPRESSION|MEMBERS_REACHED|REACTION|COMMENT|RESHARE>&aggregation=TOTAL``, one metric per call, for
  all the member's posts together. Its scope ``r_member_postAnalytics`` is granted only to apps LinkedIn approved
  for that API (partners): the service asks for it only with ``LINKEDIN_APPROVED_SCOPES``. Per-post statistics
  (``q=entity``) need the member's post list too (``r_member_social``, partners) and a call per metric and post:
  not read here, the report says so.
"""

from __future__ import annotations

import datetime as dt

from nexusctl import clock
from nexusctl.errors import MissingScopes, ProviderError
from nexusctl.providers.http import describe
from nexusctl.providers.sync.base import Report, SyncAction
from nexusctl.providers.sync.graph import GRAPH_PERMISSION_CODES, graph_all, graph_check, graph_edge
from nexusctl.providers.sync.social import LINKEDIN_HEADERS, TIKTOK_PAGE

POSTS_MAX = 50  # the most recent posts measured per run: bounds the calls and the event's size
PAGES_MAX = 25  # Facebook pages measured per run
TITLE_MAX = 100  # enough of a caption or title to recognise the post
WINDOW_DAYS = 28  # windowed metrics cover the last 28 days (within Instagram's 30 and Facebook's 93)
YOUTUBE_LAG_DAYS = 2  # YouTube Analytics data is complete about two days later
INSTAGRAM_ACCOUNT_METRICS = "reach,views,accounts_engaged,total_interactions,likes,comments,shares,saves"
INSTAGRAM_MEDIA_METRICS = "views,reach,saved,shares,total_interactions"
FACEBOOK_PAGE_METRICS = "page_media_view,page_total_media_view_unique,page_post_engagements"
FACEBOOK_POST_METRICS = "post_media_view,post_total_media_view_unique,post_clicks,post_reactions_by_type_total"
YOUTUBE_METRICS = "views,likes,comments,shares,subscribersGained,subscribersLost,estimatedMinutesWatched"
LINKEDIN_METRICS = ("IMPRESSION", "MEMBERS_REACHED", "REACTION", "COMMENT", "RESHARE")
_G = "https://www.googleapis.com/auth/"


def _num(value):
    """A metric as a number (Google sends int64 as strings); anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return int(str(value))
    except ValueError:
        try:
            return float(str(value))
        except ValueError:
            return None


def _title(value) -> str | None:
    return None if value is None else str(value)[:TITLE_MAX]


def _post(post_id, created, title, metrics: dict, url=None) -> dict:
    return {
        "id": str(post_id),
        "createdAt": created,
        "title": _title(title),
        "url": url,
        "metrics": {k: _num(v) for k, v in metrics.items()},
    }


async def once(got: dict, key: str, read):
    """``read()``'s result, kept in ``got`` so a retried report (after a throttle) does not read it again."""
    if key not in got:
        got[key] = await read()
    return got[key]


def _today() -> dt.date:
    return clock.now().date()  # the product's clock (the system's in production): reporting windows end today


def _days_window(lag: int = 0) -> tuple[dt.date, dt.date]:
    until = _today() - dt.timedelta(days=lag)
    return until - dt.timedelta(days=WINDOW_DAYS - 1), until


def _epoch(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())


def _refused(provider: str, what: str, scope: str, status: int | None = None) -> MissingScopes:
    """The provider refused a call for a permission the grant lacks (one the user removed at the provider later,
    or a grant that lists no scopes, such as Facebook's): MISSING_SCOPES, as when the grant shows it."""
    return MissingScopes(
        f"{provider}: {what} was refused: this connection lacks {scope}; connect it again and allow it",
        scopes=[scope],
        action="fetch_analytics",
        provider=provider,
        status=status,
    )


# --- TikTok -------------------------------------------------------------------------------------

TIKTOK_USER_FIELDS = "open_id,follower_count,following_count,likes_count,video_count"
TIKTOK_VIDEO_FIELDS = "id,title,create_time,share_url,view_count,like_count,comment_count,share_count"


def _tiktok_check(scope: str, what: str):
    def check(reply) -> None:
        code = reply.get("error", "code")
        if code == "scope_not_authorized":
            raise _refused("TIKTOK", what, scope, reply.status)
        if reply.status < 400 and code not in (None, "ok"):
            raise ProviderError(f"TIKTOK: {what} failed{describe(reply, (), ': ')}", provider="TIKTOK")

    return check


async def _tiktok_account(api) -> dict:
    reply = await api.get(
        "v2/user/info/",
        params={"fields": TIKTOK_USER_FIELDS},
        check=_tiktok_check("user.info.stats", "user/info (stats)"),
    )
    user = reply.get("data", "user") or {}
    return {
        "followers": _num(user.get("follower_count")),
        "following": _num(user.get("following_count")),
        "likes": _num(user.get("likes_count")),
        "videos": _num(user.get("video_count")),
    }


async def _tiktok_videos(api) -> list[dict]:
    posts, cursor = [], None
    while len(posts) < POSTS_MAX:
        body = {"max_count": min(TIKTOK_PAGE, POSTS_MAX - len(posts))}
        if cursor is not None:
            body["cursor"] = cursor
        reply = await api.post(
            "v2/video/list/",
            params={"fields": TIKTOK_VIDEO_FIELDS},
            json_body=body,
            check=_tiktok_check("video.list", "video/list"),
        )
        data = reply.get("data") or {}
        for v in data.get("videos") or []:
            if isinstance(v, dict) and v.get("id"):
                posts.append(
                    _post(
                        v["id"],
                        v.get("create_time"),
                        v.get("title"),
                        {
                            "views": v.get("view_count"),
                            "likes": v.get("like_count"),
                            "comments": v.get("comment_count"),
                            "shares": v.get("share_count"),
                        },
                        v.get("share_url"),
                    )
                )
        cursor = data.get("cursor")
        if not data.get("has_more") or cursor is None:
            break
    return posts[:POSTS_MAX]


async def tiktok_report(api, got: dict) -> Report:
    account = await once(got, "account", lambda: _tiktok_account(api))
    posts = await once(got, "posts", lambda: _tiktok_videos(api))
    return Report(account, posts)


# --- Instagram and Facebook (Graph) ------------------------------------------------------------


class _Unsupported(Exception):
    """A metric this media (or post) does not report (Graph code 100): its insights are left out."""


def _insights_check(provider: str, scope: str, *, unsupported_ok: bool = False):
    dead = graph_check(provider)

    def check(reply) -> None:
        dead(reply)
        code = reply.get("error", "code")
        if reply.status >= 400 and code in GRAPH_PERMISSION_CODES:
            raise _refused(provider, "reading insights", scope, reply.status)
        if unsupported_ok and reply.status == 400 and code == 100:
            raise _Unsupported

    return check


def _graph_metrics(reply, *, daily_sum: bool = False) -> dict:
    """``{name: value}`` from an insights answer: ``total_value.value``, the sum of the daily ``values``
    (``daily_sum``), or the single lifetime value; a dict value (reactions by type) is summed."""
    out = {}
    for row in reply.get("data") or []:
        if not isinstance(row, dict) or not row.get("name"):
            continue
        if isinstance(row.get("total_value"), dict):
            value = row["total_value"].get("value")
        else:
            values = [v.get("value") for v in row.get("values") or [] if isinstance(v, dict)]
            values = [sum(_num(x) or 0 for x in v.values()) if isinstance(v, dict) else _num(v) for v in values]
            numbers = [v for v in values if v is not None]
            value = (sum(numbers) if daily_sum else numbers[-1]) if numbers else None
        out[str(row["name"])] = _num(value)
    return out


async def _instagram_profile(api) -> dict:
    profile = await api.get(
        "me",
        params={"fields": "user_id,username,followers_count,follows_count,media_count"},
        check=graph_check("INSTAGRAM"),
    )
    return {
        "followers": _num(profile.get("followers_count")),
        "follows": _num(profile.get("follows_count")),
        "media": _num(profile.get("media_count")),
    }


async def _instagram_insights(api, since: dt.date, until: dt.date) -> dict:
    reply = await api.get(
        "me/insights",
        check=_insights_check("INSTAGRAM", "instagram_business_manage_insights"),
        params={
            "metric": INSTAGRAM_ACCOUNT_METRICS,
            "period": "day",
            "metric_type": "total_value",
            "since": _epoch(since),
            "until": _epoch(until + dt.timedelta(days=1)),
        },
    )
    return _graph_metrics(reply)


async def _instagram_media(api) -> list[dict]:
    rows, _after = await graph_edge(
        api,
        "me/media",
        {"fields": "id,caption,media_type,timestamp,permalink,like_count,comments_count", "limit": POSTS_MAX},
        None,
        "INSTAGRAM",
    )
    return rows[:POSTS_MAX]


async def instagram_report(api, got: dict) -> Report:
    since, until = _days_window()
    account = {
        **await once(got, "profile", lambda: _instagram_profile(api)),
        **await once(got, "account", lambda: _instagram_insights(api, since, until)),
    }
    media = await once(got, "media", lambda: _instagram_media(api))
    insights = got.setdefault("insights", {})
    check = _insights_check("INSTAGRAM", "instagram_business_manage_insights", unsupported_ok=True)
    for m in media:
        if m["id"] in insights:
            continue
        try:
            reply = await api.get(f"{m['id']}/insights", params={"metric": INSTAGRAM_MEDIA_METRICS}, check=check)
            insights[m["id"]] = _graph_metrics(reply)
        except _Unsupported:
            insights[m["id"]] = None
    posts, notes = [], []
    for m in media:
        metrics = {"likes": m.get("like_count"), "comments": m.get("comments_count"), **(insights[m["id"]] or {})}
        posts.append(_post(m["id"], m.get("timestamp"), m.get("caption"), metrics, m.get("permalink")))
    skipped = [m["id"] for m in media if insights[m["id"]] is None]
    if skipped:
        notes.append(f"{len(skipped)} media report no insights for these metrics (Instagram answered code 100)")
    return Report(
        account,
        posts,
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "period": "day",
            "metrics": INSTAGRAM_ACCOUNT_METRICS.split(","),
        },
        notes,
    )


async def _facebook_page(api, page: dict, since: dt.date, until: dt.date) -> dict:
    token = page.get("access_token") or None
    reply = await api.get(
        f"{page['id']}/insights",
        token=token,
        check=_insights_check("FACEBOOK", "read_insights"),
        params={
            "metric": FACEBOOK_PAGE_METRICS,
            "period": "day",
            "since": _epoch(since),
            "until": _epoch(until + dt.timedelta(days=1)),
        },
    )
    return {
        "id": str(page["id"]),
        "name": page.get("name"),
        "followers": _num(page.get("followers_count")),
        **_graph_metrics(reply, daily_sum=True),
    }


async def _facebook_posts(api, page: dict) -> list[dict]:
    rows, _after = await graph_edge(
        api,
        f"{page['id']}/posts",
        {"fields": "id,message,created_time,permalink_url", "limit": POSTS_MAX},
        None,
        "FACEBOOK",
        page.get("access_token") or None,
    )
    return [{**r, "page": str(page["id"])} for r in rows]


def _facebook_post_metrics(insights: dict | None) -> dict:
    named = {
        "post_media_view": "views",
        "post_total_media_view_unique": "viewers",
        "post_clicks": "clicks",
        "post_reactions_by_type_total": "reactions",
    }
    return {named.get(k, k): v for k, v in (insights or {}).items()}


async def facebook_report(api, got: dict) -> Report:
    since, until = _days_window()
    # The pages and their tokens live in this run's memory only (``got``), never in the log or the event.
    pages = await once(
        got,
        "pages",
        lambda: graph_all(
            api, "me/accounts", {"fields": "id,name,access_token,followers_count", "limit": 100}, "FACEBOOK"
        ),
    )
    pages = pages[:PAGES_MAX]
    by_id = {str(p["id"]): p for p in pages}
    measured = got.setdefault("pageMetrics", {})
    listed = got.setdefault("pagePosts", {})
    for page in pages:
        if str(page["id"]) not in measured:
            measured[str(page["id"])] = await _facebook_page(api, page, since, until)
        if str(page["id"]) not in listed:
            listed[str(page["id"])] = await _facebook_posts(api, page)
    recent = sorted(
        (p for rows in listed.values() for p in rows), key=lambda p: str(p.get("created_time") or ""), reverse=True
    )[:POSTS_MAX]
    insights = got.setdefault("insights", {})
    for post in recent:
        if post["id"] not in insights:
            try:
                reply = await api.get(
                    f"{post['id']}/insights",
                    token=by_id[post["page"]].get("access_token") or None,
                    params={"metric": FACEBOOK_POST_METRICS},
                    check=_insights_check("FACEBOOK", "read_insights", unsupported_ok=True),
                )
                insights[post["id"]] = _graph_metrics(reply)
            except _Unsupported:
                insights[post["id"]] = None
    page_rows = [measured[str(p["id"])] for p in pages]
    totals = {}
    for row in page_rows:
        for key, value in row.items():
            if key not in ("id", "name") and isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0) + value
    posts = [
        _post(
            p["id"],
            p.get("created_time"),
            p.get("message"),
            _facebook_post_metrics(insights[p["id"]]),
            p.get("permalink_url"),
        )
        for p in recent
    ]
    notes = [] if pages else ["the user manages no Facebook page"]
    return Report(
        {**totals, "pages": page_rows},
        posts,
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "period": "day",
            "metrics": FACEBOOK_PAGE_METRICS.split(","),
        },
        notes,
    )


# --- YouTube ------------------------------------------------------------------------------------


def _youtube_check(scope: str, what: str):
    def check(reply) -> None:
        errors = reply.get("error", "errors") or []
        if reply.status == 403 and any(
            isinstance(e, dict) and e.get("reason") == "insufficientPermissions" for e in errors
        ):
            raise _refused("YOUTUBE", what, scope, 403)

    return check


async def _youtube_channel(api) -> dict:
    reply = await api.get(
        "youtube/v3/channels",
        params={"part": "statistics,contentDetails", "mine": "true"},
        check=_youtube_check(_G + "youtube.readonly", "channels"),
    )
    channel = reply.get("items", 0)
    if not isinstance(channel, dict):
        raise ProviderError("YOUTUBE: this account has no channel", provider="YOUTUBE")
    return channel


async def _youtube_uploads(api, playlist: str) -> list[dict]:
    reply = await api.get(
        "youtube/v3/playlistItems", params={"part": "snippet", "playlistId": playlist, "maxResults": POSTS_MAX}
    )
    out = []
    for row in reply.get("items") or []:
        snippet = (row or {}).get("snippet") if isinstance(row, dict) else None
        video = ((snippet or {}).get("resourceId") or {}).get("videoId")
        if video:
            out.append({"id": str(video), "title": snippet.get("title"), "publishedAt": snippet.get("publishedAt")})
    return out[:POSTS_MAX]


async def _youtube_statistics(api, ids: list[str]) -> dict:
    if not ids:
        return {}
    reply = await api.get(
        "youtube/v3/videos",
        params={"part": "statistics", "id": ",".join(ids), "maxResults": POSTS_MAX},
        check=_youtube_check(_G + "youtube.readonly", "videos"),
    )
    return {
        str(v["id"]): v.get("statistics") or {} for v in reply.get("items") or [] if isinstance(v, dict) and v.get("id")
    }


async def _youtube_analytics(api, since: dt.date, until: dt.date) -> dict:
    base = (api.adapter.url("ANALYTICS") or "").rstrip("/")
    reply = await api.get(
        f"{base}/v2/reports",
        check=_youtube_check(_G + "yt-analytics.readonly", "reports"),
        params={
            "ids": "channel==MINE",
            "startDate": since.isoformat(),
            "endDate": until.isoformat(),
            "metrics": YOUTUBE_METRICS,
        },
    )
    names = [str(h.get("name")) for h in reply.get("columnHeaders") or [] if isinstance(h, dict)]
    rows = reply.get("rows") or []
    values = rows[0] if rows and isinstance(rows[0], list) else [None] * len(names)
    return {name: _num(value) for name, value in zip(names, values)}


async def youtube_report(api, got: dict) -> Report:
    since, until = _days_window(YOUTUBE_LAG_DAYS)
    channel = await once(got, "channel", lambda: _youtube_channel(api))
    stats = channel.get("statistics") or {}
    window = await once(got, "window", lambda: _youtube_analytics(api, since, until))
    playlist = ((channel.get("contentDetails") or {}).get("relatedPlaylists") or {}).get("uploads")
    uploads = await once(got, "uploads", lambda: _youtube_uploads(api, playlist)) if playlist else []
    statistics = await once(got, "statistics", lambda: _youtube_statistics(api, [u["id"] for u in uploads]))
    account = {
        "views": _num(stats.get("viewCount")),
        "videos": _num(stats.get("videoCount")),
        "subscribers": None if stats.get("hiddenSubscriberCount") else _num(stats.get("subscriberCount")),
        "window": window,
    }
    posts = []
    for upload in uploads:
        counts = statistics.get(upload["id"], {})  # a video the Data API no longer shows: no counts
        posts.append(
            _post(
                upload["id"],
                upload.get("publishedAt"),
                upload.get("title"),
                {
                    "views": counts.get("viewCount"),
                    "likes": counts.get("likeCount"),
                    "comments": counts.get("commentCount"),
                },
                f"https://www.youtube.com/watch?v={upload['id']}",
            )
        )
    return Report(
        account,
        posts,
        {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "metrics": YOUTUBE_METRICS.split(","),
            "lagDays": YOUTUBE_LAG_DAYS,
        },
    )


# --- X (Twitter) --------------------------------------------------------------------------------


def _twitter_check(reply) -> None:
    if reply.status != 403:
        return
    detail = describe(reply, (), ": ")
    if "scope" in detail.lower():  # X names the scopes in the problem's detail
        raise MissingScopes(
            f"TWITTER: the API refused the call{detail}; this connection needs tweet.read and "
            "users.read: connect it again and allow them",
            scopes=["tweet.read", "users.read"],
            action="fetch_analytics",
            provider="TWITTER",
            status=403,
        )
    raise ProviderError(f"TWITTER: the API refused the call (HTTP 403){detail}", provider="TWITTER", status=403)


async def _twitter_me(api) -> dict:
    reply = await api.get("2/users/me", params={"user.fields": "public_metrics"}, check=_twitter_check)
    user = reply.get("data") or {}
    if not user.get("id"):
        raise ProviderError("TWITTER: the users/me answer has no id", provider="TWITTER")
    return user


async def _twitter_tweets(api, user_id: str) -> list[dict]:
    reply = await api.get(
        f"2/users/{user_id}/tweets",
        check=_twitter_check,
        params={"max_results": POSTS_MAX, "tweet.fields": "public_metrics,created_at"},
    )
    return [t for t in reply.get("data") or [] if isinstance(t, dict) and t.get("id")][:POSTS_MAX]


async def twitter_report(api, got: dict) -> Report:
    me = await once(got, "me", lambda: _twitter_me(api))
    tweets = await once(got, "tweets", lambda: _twitter_tweets(api, str(me["id"])))
    m = me.get("public_metrics") or {}
    account = {
        "followers": _num(m.get("followers_count")),
        "following": _num(m.get("following_count")),
        "posts": _num(m.get("tweet_count")),
        "listed": _num(m.get("listed_count")),
        "likes": _num(m.get("like_count")),
    }
    posts = []
    for t in tweets:
        p = t.get("public_metrics") or {}
        posts.append(
            _post(
                t["id"],
                t.get("created_at"),
                t.get("text"),
                {
                    "impressions": p.get("impression_count"),
                    "likes": p.get("like_count"),
                    "replies": p.get("reply_count"),
                    "reposts": p.get("retweet_count"),
                    "quotes": p.get("quote_count"),
                    "bookmarks": p.get("bookmark_count"),
                },
                f"https://x.com/i/web/status/{t['id']}",
            )
        )
    return Report(account, posts)


# --- LinkedIn -----------------------------------------------------------------------------------


def _linkedin_check(reply) -> None:
    if reply.status == 403:
        raise _refused("LINKEDIN", "memberCreatorPostAnalytics", "r_member_postAnalytics (approval-only)", 403)


async def _linkedin_metric(api, metric: str):
    reply = await api.get(
        "rest/memberCreatorPostAnalytics",
        headers=LINKEDIN_HEADERS,
        check=_linkedin_check,
        params={"q": "me", "queryType": metric, "aggregation": "TOTAL"},
    )
    elements = [e for e in reply.get("elements") or [] if isinstance(e, dict)]
    return _num(elements[0].get("count")) if elements else 0


async def linkedin_report(api, got: dict) -> Report:
    account = got.setdefault("account", {})
    for metric in LINKEDIN_METRICS:
        if metric not in account:
            account[metric] = await _linkedin_metric(api, metric)
    named = {
        "impressions": account["IMPRESSION"],
        "membersReached": account["MEMBERS_REACHED"],
        "reactions": account["REACTION"],
        "comments": account["COMMENT"],
        "reshares": account["RESHARE"],
    }
    return Report(
        named,
        [],
        None,
        [
            "LinkedIn reports per-post statistics only per post and metric (q=entity), "
            "which also needs r_member_social: the account's totals over all its posts "
            "are given instead"
        ],
    )


def _action(report, description: str) -> SyncAction:
    return SyncAction("fetch_analytics", "analytics", None, report=report, description=description)


ACTIONS = {
    "TIKTOK": [
        _action(
            tiktok_report,
            "Followers, likes and videos (user/info stats) and the latest videos' views, "
            "likes, comments, shares (lifetime)",
        )
    ],
    "INSTAGRAM": [
        _action(
            instagram_report,
            "Followers and the last 28 days' reach, views, interactions "
            "(/me/insights); the latest media's likes, comments and insights",
        )
    ],
    "FACEBOOK": [
        _action(
            facebook_report,
            "Each page's followers and last 28 days' views, viewers and engagements "
            "(page insights); the latest posts' views, viewers, clicks, reactions",
        )
    ],
    "YOUTUBE": [
        _action(
            youtube_report,
            "Channel views, subscribers and videos; the 28 days ending 2 days ago "
            "(YouTube Analytics); the latest uploads' views, likes, comments",
        )
    ],
    "TWITTER": [
        _action(
            twitter_report,
            "The user's public metrics and the latest posts' impressions, likes, replies, reposts, quotes, bookmarks",
        )
    ],
    "LINKEDIN": [
        _action(
            linkedin_report,
            "The member's impressions, members reached, reactions, comments and "
            "reshares over all posts (partners only: r_member_postAnalytics); no "
            "per-post figures",
        )
    ],
}
