"""PostgreSQL's plans, as EXPLAIN (ANALYZE, FORMAT JSON) gives them, for the tests that hold a query to its index."""

from __future__ import annotations

import json

EXPLAIN = "EXPLAIN (ANALYZE, FORMAT JSON) "


def plan_of(answer) -> dict:
    """The top node of an EXPLAIN (FORMAT JSON) answer's one row (text or, read by the driver, JSON already)."""
    return (json.loads(answer) if isinstance(answer, str) else answer)[0]["Plan"]


def nodes(plan: dict):
    """Every node of ``plan``, itself first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)
