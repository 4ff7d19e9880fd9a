"""A paused webhook's deliveries are parked, and unparked when it resumes, in pages along its (webhook, created_at,
id) index, whatever the table's statistics say: taken just before a pause of a large backlog (every delivery due,
none parked), they once made PostgreSQL read every parked row and sort them for each page of the unpark (a page
of 1,000 out of 100,000 parked: 115 ms; unparking 200,000 took 20-30 s)."""

from __future__ import annotations

import pytest
from support.plans import EXPLAIN, nodes, plan_of

from nexusctl.core import deliveries, events, webhooks
from nexusctl.db.models import WebhookDelivery

# PostgreSQL only: the database fixtures' SQLite half is left out (the plan is PostgreSQL's).
pytestmark = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

BACKLOG = 1200  # deliveries queued by emits
PAGE = 100


def _parked(hook_id) -> int:
    return (
        WebhookDelivery.select()
        .where((WebhookDelivery.webhook == hook_id) & WebhookDelivery.next_attempt_at.is_null())
        .count()
    )


def test_a_resumes_pages_read_about_the_rows_they_move_when_the_statistics_know_none_parked(
    database, keyring, make_integration
):
    integration = make_integration()
    hook, _ = webhooks.create(keyring, integration_id=integration.id, url="https://hooks.example.com/x", events=["*"])
    for start in range(0, BACKLOG, 100):
        outcomes = events.emit_many([(integration.id, "post.created", {"n": start + k}, None) for k in range(100)])
        assert all(isinstance(o, dict) for o in outcomes), outcomes
    database.execute_sql("ANALYZE webhook_deliveries")  # every delivery due: the statistics know none parked
    webhooks.update(hook.id, is_active=False)  # the pause parks them
    assert _parked(hook.id) == BACKLOG

    # A page of the resume's unpark halfway through, as it asks for it, EXPLAIN ANALYZEd.
    queued = WebhookDelivery.status.in_(deliveries._QUEUED)
    halfway = deliveries._page(hook.id, queued, None, BACKLOG // 2)[-1]
    sql, params = deliveries._page_query(hook.id, queued, halfway, PAGE).sql()
    plan = plan_of(database.execute_sql(EXPLAIN + sql, params).fetchone()[0])
    scans = [n for n in nodes(plan) if n.get("Relation Name") == "webhook_deliveries"]
    assert scans, plan
    for node in scans:  # the page's rows and about no more, not the parked backlog
        read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        assert read <= 2 * PAGE, (node["Node Type"], node.get("Index Name"), read)
    assert plan["Actual Rows"] == PAGE

    webhooks.update(hook.id, is_active=True)  # the resume makes every one of them due again
    assert _parked(hook.id) == 0
