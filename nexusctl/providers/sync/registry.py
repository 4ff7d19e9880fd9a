"""Every provider's sync actions, by provider and action name."""

from __future__ import annotations

from nexusctl.enums import Provider
from nexusctl.errors import UsageProblem
from nexusctl.providers.sync import (
    ads,
    analytics,
    automation,
    chat,
    comments,
    commerce,
    crm,
    marketing,
    payments,
    social,
)
from nexusctl.providers.sync.base import SyncAction

# How each provider wants its access token sent (the rest: Authorization: Bearer).
AUTH_HEADER = {
    Provider.SHOPIFY: "X-Shopify-Access-Token",
    Provider.TIKTOK_ADS: "Access-Token",
    Provider.WOOCOMMERCE: "basic",
}  # WooCommerce: the consumer key and secret as HTTP Basic

ACTIONS: dict[Provider, dict[str, SyncAction]] = {}
for module in (chat, social, analytics, comments, ads, commerce, crm, marketing, payments, automation):
    for provider, actions in module.ACTIONS.items():
        ACTIONS.setdefault(Provider(provider), {}).update({a.name: a for a in actions})


def actions_of(provider: Provider) -> dict[str, SyncAction]:
    return ACTIONS.get(provider, {})


def action_of(provider: Provider, name: str | None) -> list[SyncAction]:
    """The named action, or every action of the provider when ``name`` is None."""
    actions = actions_of(provider)
    if not actions:
        raise UsageProblem(f"{provider.value} has no sync actions yet", field="action")
    if name is None:
        return list(actions.values())
    if name not in actions:
        raise UsageProblem(f"{provider.value} has no action {name!r}; it has: {', '.join(actions)}", field="action")
    return [actions[name]]
