"""What every publisher shares: the text a post carries, its limits, reading a reply header."""

from __future__ import annotations

import datetime as dt
import re

from nexusctl.errors import ProviderError, UsageProblem
from nexusctl.providers.http import may_have_sent

TWEET_MAX = 280
LINKEDIN_MAX = 3000  # commentary characters
# "little" text format: these are markup (mentions, hashtags, templates) unless backslash-escaped.
LITTLE_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
URL_TOKEN = re.compile(r"(https?://\S+)")
CLOCK_SKEW = dt.timedelta(minutes=1)  # how far our clock and a provider's may disagree


class NotReady(Exception):
    """The provider is still processing what a publisher sent (an Instagram reel's container): the run is
    deferred and looks again later. ``state`` (ids only, never a token) is kept in the log's metadata as
    ``pending`` and handed back to the publisher as ``api.pending`` on the next run."""

    def __init__(self, message: str, state: dict) -> None:
        super().__init__(message)
        self.message, self.state = message, state


async def creating(call):
    """Await the call that makes the post. A failure after the request may have reached the provider (a timeout,
    a dropped connection, a 5xx) is marked ``mayHavePosted``: the engine looks the post up where the provider
    allows it (publish_reconcile) and otherwise says the post may exist, so nobody blindly posts it again."""
    try:
        return await call
    except ProviderError as exc:
        if may_have_sent(exc):
            exc.details["mayHavePosted"] = True
        raise


def compose(content: dict, limit: int | None = None) -> str:
    """Title, then the URL: the text a post carries."""
    title = (content.get("title") or content.get("description") or "").strip()
    url = (content.get("url") or "").strip()
    if limit is not None and url and len(title) + 1 + len(url) > limit:
        title = title[: max(0, limit - len(url) - 2)].rstrip() + "…"
    text = "\n".join(part for part in (title, url) if part)
    if not text:
        raise UsageProblem("the content has neither a title nor a URL to post", field="content")
    return text[:limit] if limit else text


def _header(reply, name: str) -> str | None:
    return next((v for k, v in reply.headers.items() if k.lower() == name), None)


def made_since(stamp, since: dt.datetime | None) -> bool:
    """Whether a post's creation time (ISO 8601, as X and Graph give it) is not before ``since``;
    a post without a readable time counts (the lookup cannot tell)."""
    if since is None or not isinstance(stamp, str):
        return True
    try:
        made = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("+0000", "+00:00"))
    except ValueError:
        return True
    if made.tzinfo is None:
        made = made.replace(tzinfo=dt.timezone.utc)
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return made >= since - CLOCK_SKEW
