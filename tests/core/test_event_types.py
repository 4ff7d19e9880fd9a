"""Which event types a caller may emit (core.events.check): the families only this service writes are refused,
naming the type; the rest go through."""

from __future__ import annotations

import pytest

from nexusctl.core import events
from nexusctl.errors import UsageProblem
from nexusctl.providers.sync.registry import ACTIONS

SERVICE_ONLY = [
    "integration.connected",
    "integration.synced",
    "webhook.delivered",
    "sync.completed",
    "analytics.fetched",
    "media.created",
    "media.deleted",
    "comment.created",
    "comment.updated",
    "order.created",
    "campaign.updated",
    "inventory_item.updated",
    "user.deleted",
    "content.published",
    "slack.command",
]


def test_the_reserved_resources_are_those_the_syncs_write():
    """A new sync resource is reserved as soon as an action writes it: the tuple is the registry's."""
    written = {action.resource for actions in ACTIONS.values() for action in actions.values()}
    assert set(events.SYNC_RESOURCES) == written


@pytest.mark.parametrize("event_type", SERVICE_ONLY)
def test_what_only_the_service_writes_is_refused_naming_the_type(event_type):
    with pytest.raises(UsageProblem) as refused:
        events.check(event_type, {})
    assert refused.value.code == "VALIDATION_ERROR" and refused.value.details.get("field") == "type"
    assert event_type in refused.value.message and "reserved" in refused.value.message


@pytest.mark.parametrize("event_type", ["post.created", "review.created", "content.updated", "media_kit.sent"])
def test_a_callers_own_family_goes_through(event_type):
    events.check(event_type, {"n": 1})
