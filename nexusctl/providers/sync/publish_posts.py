"""Publishing posts: X, LinkedIn and Facebook pages. See publish.py."""

from __future__ import annotations

from nexusctl.errors import ProviderError, UsageProblem
from nexusctl.providers.http import describe
from nexusctl.providers.sync.graph import graph_all, graph_post_check
from nexusctl.providers.sync.publish_common import (
    LINKEDIN_MAX,
    LITTLE_RESERVED,
    TWEET_MAX,
    URL_TOKEN,
    _header,
    compose,
    creating,
)
from nexusctl.providers.sync.social import LINKEDIN_HEADERS


async def twitter(api, content: dict, metadata: dict) -> dict:
    reply = await creating(api.post("2/tweets", json_body={"text": compose(content, TWEET_MAX)}))
    post_id = (reply.body or {}).get("data", {}).get("id") if isinstance(reply.body, dict) else None
    if not post_id:
        raise ProviderError("TWITTER: the post was not confirmed (no id in the answer)", provider="TWITTER")
    return {"postId": post_id}


def little_text(text: str) -> str:
    """Plain text as LinkedIn "little" text: reserved characters escaped; URLs left whole (LinkedIn links them)."""
    return "".join(
        part if URL_TOKEN.fullmatch(part) else LITTLE_RESERVED.sub(r"\\\1", part) for part in URL_TOKEN.split(text)
    )


def _linkedin_check(secrets: tuple):
    def check(reply) -> None:
        if reply.status == 403:
            raise ProviderError(
                f"LINKEDIN: the post was refused (HTTP 403){describe(reply, secrets, ': ')}; "
                "posting needs the w_member_social scope: reconnect LinkedIn",
                provider="LINKEDIN",
                status=403,
            )

    return check


async def linkedin(api, content: dict, metadata: dict) -> dict:
    sub = (await api.get("v2/userinfo")).get("sub")
    if not sub:
        raise ProviderError("LINKEDIN: the userinfo answer has no subject", provider="LINKEDIN")
    text = little_text(compose(content, LINKEDIN_MAX))
    if len(text) > LINKEDIN_MAX:  # the escapes made it longer: cut the title further
        text = little_text(compose(content, 2 * LINKEDIN_MAX - len(text)))
    body: dict = {
        "author": f"urn:li:person:{sub}",
        "commentary": text,
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }
    url = (content.get("url") or "").strip()
    if url:
        # The Posts API does not scrape the link: the card shows what is sent (title is required).
        article = {"source": url, "title": (content.get("title") or "").strip() or url}
        if (content.get("description") or "").strip():
            article["description"] = content["description"].strip()
        body["content"] = {"article": article}
    reply = await creating(
        api.post(
            "rest/posts", json_body=body, headers=LINKEDIN_HEADERS, check=_linkedin_check((api.tokens.access_token,))
        )
    )
    urn = _header(reply, "x-restli-id") or (reply.get("id") if isinstance(reply.body, dict) else None)
    if not urn:
        raise ProviderError("LINKEDIN: the post was not confirmed (no x-restli-id in the answer)", provider="LINKEDIN")
    return {"postUrn": urn}


def _facebook_check(secrets: tuple):
    return graph_post_check(
        "FACEBOOK",
        secrets,
        "the page refused the post",
        "posting needs the pages_manage_posts and pages_read_engagement permissions and a page "
        "role that can create content: reconnect Facebook",
    )


async def facebook_page(api, metadata: dict) -> tuple[str, str]:
    """(page id, that page's token from /me/accounts): ``metadata.publishPageId`` or the user's only page."""
    pages = await graph_all(api, "me/accounts", {"fields": "id,name,access_token", "limit": 100}, "FACEBOOK")
    wanted = str(metadata.get("publishPageId") or "").strip()
    if wanted:
        page = next((p for p in pages if str(p["id"]) == wanted), None)
        if page is None:
            raise UsageProblem(
                f"metadata.publishPageId {wanted} is not a page this Facebook user manages (their "
                f"pages: {', '.join(str(p['id']) for p in pages) or 'none'})",
                field="metadata.publishPageId",
            )
    elif len(pages) == 1:
        page = pages[0]
    elif not pages:
        raise UsageProblem(
            "this Facebook user manages no page (or did not grant pages_show_list): there is nowhere to publish",
            field="metadata.publishPageId",
        )
    else:
        raise UsageProblem(
            f"this Facebook user manages {len(pages)} pages: set the integration's "
            f"metadata.publishPageId to the one to publish to "
            f"({', '.join(str(p['id']) for p in pages)})",
            field="metadata.publishPageId",
        )
    page_token = page.get("access_token")
    if not page_token:
        raise ProviderError(
            f"FACEBOOK: /me/accounts gave no access token for page {page['id']}: the user needs "
            "a role on it that can create content",
            provider="FACEBOOK",
        )
    return str(page["id"]), page_token


async def facebook(api, content: dict, metadata: dict) -> dict:
    page_id, page_token = await facebook_page(api, metadata)
    url = (content.get("url") or "").strip()
    message = (content.get("title") or content.get("description") or "").strip()
    if not message and not url:
        compose(content)  # raises the usual "nothing to post"
    body = {k: v for k, v in (("message", message), ("link", url)) if v}
    reply = await creating(
        api.post(f"{page_id}/feed", json_body=body, token=page_token, check=_facebook_check((page_token,)))
    )
    post_id = reply.get("id") if isinstance(reply.body, dict) else None
    if not post_id:
        raise ProviderError("FACEBOOK: the post was not confirmed (no id in the answer)", provider="FACEBOOK")
    return {"postId": str(post_id)}


# --- Media posts: Instagram, TikTok ----------------------------------------------------------------------
