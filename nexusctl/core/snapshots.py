"""What a snapshot run (fetch_analytics) records: the sync log's summary and the ``<resource>.fetched`` event.

The event carries the account's metrics and each measured post's (at most ``POSTS_MAX``, newest first), the
reporting window and notes; the log carries the account's metrics, the number of posts and their totals per
metric. Both are bounded: strings are cut, metric maps limited, so a provider answering more than expected
cannot make an oversized event or log.
"""

from __future__ import annotations

POSTS_MAX = 50
METRICS_MAX = 40  # metric names per account or post
TEXT_MAX = 200  # an id, title or URL
NOTES_MAX = 5
PAGES_MAX = 25  # Facebook's per-page breakdown


def _text(value):
    return None if value is None else str(value)[:TEXT_MAX]


def _metric(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return _metrics(value)
    if isinstance(value, list):  # a breakdown (Facebook's pages)
        return [_metrics(v) if isinstance(v, dict) else _metric(v) for v in value[:PAGES_MAX]]
    return _text(value)


def _metrics(values: dict) -> dict:
    return {str(k)[:64]: _metric(v) for k, v in list(values.items())[:METRICS_MAX]}


def _post(post: dict) -> dict:
    return {
        "id": _text(post.get("id")),
        "createdAt": _text(post.get("createdAt")),
        "title": _text(post.get("title")),
        "url": _text(post.get("url")),
        "metrics": _metrics(post.get("metrics") or {}),
    }


def event_data(report, *, action: str, log_id) -> dict:
    """The ``analytics.fetched`` payload's data (the engine adds integrationId, userId, provider)."""
    posts = [_post(p) for p in report.posts[:POSTS_MAX]]
    return {
        "action": action,
        "syncLogId": str(log_id),
        "account": _metrics(report.account or {}),
        "posts": posts,
        "postCount": len(posts),
        "window": _metrics(report.window) if report.window else None,
        "notes": [_text(n) for n in report.notes[:NOTES_MAX]],
    }


def summary(report) -> dict:
    """For the sync log's metadata: the account's metrics, how many posts were measured, their totals."""
    totals: dict = {}
    for post in report.posts[:POSTS_MAX]:
        for name, value in (post.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return {
        "account": _metrics(report.account or {}),
        "posts": min(len(report.posts), POSTS_MAX),
        "postTotals": _metrics(totals),
        "window": _metrics(report.window) if report.window else None,
        "notes": [_text(n) for n in report.notes[:NOTES_MAX]],
    }
