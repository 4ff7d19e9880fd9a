"""Meta Graph API list edges (Instagram, Facebook, Meta Ads): cursor paging and error shapes.

An edge answers ``{"data": [...], "paging": {"cursors": {"before", "after"},
"next"}}``; ``next`` is absent on the last page (``after`` may still be
there), so a page is the last one when it has no ``next``. Errors are
``{"error": {"message", "type", "code", "error_subcode"}}``: code 190 (and
102) is a dead token, sent with HTTP 400, so it needs reading here; the
throttling codes 4/17/32/613/80000+ are turned into RateLimited by the
adapter (``nexusctl.providers.adapters.meta._Graph.rate_limit``) before this runs.
"""

from __future__ import annotations

from nexusctl.errors import ProviderError, TokenExpired
from nexusctl.providers.http import describe
from nexusctl.providers.sync.base import Page

GRAPH_DEAD_CODES = {190, 102}
GRAPH_PERMISSION_CODES = {10, 200}


def graph_check(provider: str):
    def check(reply) -> None:
        if reply.status >= 400 and reply.get("error", "code") in GRAPH_DEAD_CODES:
            raise TokenExpired(
                f"{provider}: the access token was refused (Graph error "
                f"{reply.get('error', 'code')}/{reply.get('error', 'error_subcode', default='-')})",
                provider=provider,
            )

    return check


def graph_post_check(provider: str, secrets: tuple, refused: str, needs: str):
    """For Graph "create" calls: a dead token as graph_check says, and a permission error (codes 10, 200)
    as a ProviderError that says what the post needs (``secrets`` are kept out of the message)."""
    dead = graph_check(provider)

    def check(reply) -> None:
        dead(reply)  # code 190/102: TokenExpired (throttling codes were turned into RateLimited before)
        if reply.status >= 400 and reply.get("error", "code") in GRAPH_PERMISSION_CODES:
            raise ProviderError(
                f"{provider}: {refused}{describe(reply, secrets, ': ')}; {needs}",
                provider=provider,
                status=reply.status,
            )

    return check


async def graph_edge(api, path: str, params: dict, after: str | None, provider: str, token: str | None = None):
    """One page of an edge: (rows, the cursor of the next page or None). ``token``: read with this one (a
    page's own token) instead of the integration's."""
    reply = await api.get(path, params={**params, "after": after}, check=graph_check(provider), token=token)
    rows = [r for r in reply.get("data") or [] if isinstance(r, dict) and r.get("id")]
    after = reply.get("paging", "cursors", "after")
    more = bool(reply.get("paging", "next")) and bool(after)
    return rows, (str(after) if more else None)


async def graph_all(api, path: str, params: dict, provider: str) -> list[dict]:
    """Every row of a short edge (a user's pages, ad accounts)."""
    rows, after = [], None
    while True:
        page, after = await graph_edge(api, path, params, after, provider)
        rows += page
        if after is None:
            return rows


def _start(containers: list[dict], resume: dict | None) -> tuple[int, str | None]:
    """Where a resumed run starts: the stored container (found by id, it may have moved) and cursor."""
    if not resume:
        return 0, None
    ids = [str(c["id"]) for c in containers]
    if resume.get("container") in ids:
        return ids.index(resume["container"]), resume.get("after")
    # The container is gone: carry on at its old position, from the start of whatever is there now.
    return min(int(resume.get("index") or 0), len(containers)), None


async def edges_of_each(
    api, resume, containers: list[dict], path_of, params: dict, provider: str, item_of, token_of=None
):
    """Pages of one edge for each container in turn (a user's pages' posts, ad accounts' campaigns).

    ``resume`` is ``{"container": id, "index": i, "after": cursor}``: the container being read (its id and
    position) and the cursor inside it (None: its first page). ``token_of(container)``: the token to read it
    with (a Facebook page's own), else the integration's; it never enters ``resume`` nor the items.
    """
    index, after = _start(containers, resume)
    if index >= len(containers):
        yield Page([], None)
        return
    while index < len(containers):
        container = containers[index]
        rows, after = await graph_edge(
            api, path_of(container), params, after, provider, token_of(container) if token_of else None
        )
        items = [item_of(container, r) for r in rows]
        if after is None:
            index += 1
        if index >= len(containers):
            yield Page(items, None)
            return
        yield Page(items, {"container": str(containers[index]["id"]), "index": index, "after": after})
