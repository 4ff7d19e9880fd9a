"""Was it posted after all? Looking a post up when its creating call got no clean answer.

A publisher's creating call that timed out, lost its connection or got a 5xx
is marked ``mayHavePosted`` (publish_common.creating): the provider may well
have made the post. Where reading the account's latest posts is cheap and
allowed by the scopes the connection already has, a reconciler looks for the
content there, right after such a failure and before a re-publish of the same
content posts again (nexusctl.core.sync_runs). It answers the post's ids, or
None when it is not among the latest posts. Only posts made since the uncertain
attempt began count (``since``, less a minute for clocks that disagree): the
same link shared last week is not this post.

- TWITTER: ``GET /2/users/me`` then ``GET /2/users/{id}/tweets`` (the 10
  latest, ``tweet.read`` + ``users.read``): the text we post, or the content's
  URL among the tweet's expanded URLs (X shows links as t.co).
- FACEBOOK: the page's 10 latest posts (``GET /{page-id}/posts`` with its page
  token from /me/accounts, never stored): the content's link, or its message.
- INSTAGRAM and YOUTUBE settle it inside their publishers (a container is
  published at most once and says whether it was; an upload session answers
  a status query with the video).
- SLACK, DISCORD, LINKEDIN, TIKTOK: no lookup (reading needs scopes or a
  publish id the connection does not have): the log says the post may exist.
"""

from __future__ import annotations

import datetime as dt

from nexusctl.providers.sync.graph import graph_check
from nexusctl.providers.sync.publish_common import TWEET_MAX, compose, made_since
from nexusctl.providers.sync.publish_posts import facebook_page

LATEST = 10


async def twitter(api, content: dict, metadata: dict, since: dt.datetime | None = None) -> dict | None:
    me = (await api.get("2/users/me")).get("data", "id")
    if not me:
        return None
    reply = await api.get(f"2/users/{me}/tweets", params={"max_results": LATEST, "tweet.fields": "entities,created_at"})
    text, url = compose(content, TWEET_MAX), (content.get("url") or "").strip()
    for tweet in reply.get("data") or []:
        expanded = {
            u.get("expanded_url") for u in (tweet.get("entities") or {}).get("urls") or [] if isinstance(u, dict)
        }
        if made_since(tweet.get("created_at"), since) and (tweet.get("text") == text or (url and url in expanded)):
            return {"postId": str(tweet["id"])}
    return None


async def facebook(api, content: dict, metadata: dict, since: dt.datetime | None = None) -> dict | None:
    page_id, page_token = await facebook_page(api, metadata)
    reply = await api.get(
        f"{page_id}/posts",
        params={"fields": "id,message,link,created_time", "limit": LATEST},
        token=page_token,
        check=graph_check("FACEBOOK"),
    )
    url = (content.get("url") or "").strip()
    message = (content.get("title") or content.get("description") or "").strip()
    for post in reply.get("data") or []:
        if not made_since(post.get("created_time"), since):
            continue
        if (url and post.get("link") == url) or (not url and message and post.get("message") == message):
            return {"postId": str(post["id"])}
    return None


RECONCILERS = {"TWITTER": twitter, "FACEBOOK": facebook}
