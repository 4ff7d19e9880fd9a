"""A snapshot's event and log summary stay bounded whatever the provider answered (nexusctl.core.snapshots)."""

from __future__ import annotations

import json

from nexusctl.core import snapshots
from nexusctl.providers.sync.base import Report


def _report(posts: int, title: str = "t") -> Report:
    return Report(
        {"followers": 10, "name": "x" * 5000, "flag": True},
        [
            {
                "id": str(i),
                "createdAt": "2026-12-01T00:00:00Z",
                "title": title,
                "metrics": {"views": i, "likes": 2, "label": "n/a"},
            }
            for i in range(posts)
        ],
        {"since": "2026-11-01", "until": "2026-11-28"},
        ["a note"] * 20,
    )


def test_the_event_carries_at_most_the_50_latest_posts_and_cut_strings():
    data = snapshots.event_data(_report(80, "y" * 10_000), action="fetch_analytics", log_id="L1")
    assert data["postCount"] == 50 and [p["id"] for p in data["posts"]] == [str(i) for i in range(50)]
    assert len(data["posts"][0]["title"]) == snapshots.TEXT_MAX and len(data["account"]["name"]) == snapshots.TEXT_MAX
    assert data["account"]["flag"] is None  # a boolean is no metric
    assert len(data["notes"]) == snapshots.NOTES_MAX and data["syncLogId"] == "L1"
    assert len(json.dumps(data)) < 40_000


def test_the_summary_totals_numeric_metrics_of_the_measured_posts():
    summary = snapshots.summary(_report(3))
    assert summary["posts"] == 3 and summary["postTotals"] == {"views": 0 + 1 + 2, "likes": 6}
    assert summary["account"]["followers"] == 10 and summary["window"]["until"] == "2026-11-28"
    assert snapshots.summary(_report(0))["postTotals"] == {}
