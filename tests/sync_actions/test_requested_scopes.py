"""Every action a provider offers asks for what it needs: the scopes the service requests cover each sync
action's (and publishing's) needs, and a need outside the spec's scopes is an approval-only scope the operator
turns on (<PROVIDER>_APPROVED_SCOPES), never one asked for by default."""

from __future__ import annotations

import pytest
from synckit import settings_for

from nexusctl import config
from nexusctl.config import APPROVAL_SCOPES
from nexusctl.enums import Provider
from nexusctl.errors import ConfigError
from nexusctl.providers import scopes
from nexusctl.providers.adapters import tiktok
from nexusctl.providers.registry import SPECS
from nexusctl.providers.sync.publish import PUBLISHERS
from nexusctl.providers.sync.registry import actions_of


def _offered(provider: Provider) -> list[str]:
    return ["account", *actions_of(provider), *(["publish"] if provider.value in PUBLISHERS else [])]


@pytest.mark.parametrize("provider", [p for p in Provider if SPECS[p].scopes], ids=lambda p: p.value)
def test_every_offered_action_has_its_scopes_requested(provider):
    approved = APPROVAL_SCOPES.get(provider, ())
    asked = set(scopes.requested(provider, approved))
    for action in _offered(provider):
        if action != "account":
            assert action in scopes.NEEDS[provider], f"{provider.value} {action}: needed scopes unknown"
        # TikTok's comment actions are offered by a TikTok API for Business app only (TIKTOK_APP=business),
        # whose consent asks for that API's scopes; the others by the default Login Kit app.
        app = "business" if provider is Provider.TIKTOK and action in tiktok.BUSINESS_ONLY else None
        lacking = set(scopes.needed(provider, action)) - set(scopes.requested(provider, approved, app=app))
        assert not lacking, f"{provider.value} {action} needs {sorted(lacking)}, never requested"
        base = scopes.requested(provider, (), app=app) if app else SPECS[provider].scopes
        beyond_spec = set(scopes.needed(provider, action)) - set(base)
        assert beyond_spec <= set(approved), f"{provider.value} {action}: {sorted(beyond_spec)} requested nowhere"
    for action, (scope, _note) in scopes.WIDENING.get(provider, {}).items():
        assert action in actions_of(provider) and scope in asked


def test_approval_only_scopes_are_asked_for_only_when_the_operator_says_so():
    assert {p: tuple(reasons) for p, reasons in scopes.APPROVAL.items()} == APPROVAL_SCOPES
    for provider, approval in APPROVAL_SCOPES.items():
        assert not set(approval) & set(SPECS[provider].scopes), provider  # never by default
        assert set(scopes.requested(provider, approval)) - set(SPECS[provider].scopes) == set(approval)


def test_the_consent_asks_for_the_approved_scopes(emulators):
    settings = settings_for(emulators, {"LINKEDIN_APPROVED_SCOPES": "r_member_social"})
    assert settings.providers[Provider.LINKEDIN].approved_scopes == ("r_member_social",)
    from nexusctl.providers.registry import adapter_for

    url = adapter_for(Provider.LINKEDIN, settings).authorization_url("s", None)
    assert "r_member_social" in url
    plain = adapter_for(Provider.LINKEDIN, settings_for(emulators)).authorization_url("s", None)
    assert "r_member_social" not in plain
    with pytest.raises(ConfigError, match="LINKEDIN_APPROVED_SCOPES.*w_organization_social"):
        settings_for(emulators, {"LINKEDIN_APPROVED_SCOPES": "r_member_social w_organization_social"})
    assert "SHOPIFY_APPROVED_SCOPES" in config.variable_names()


def test_the_readme_lists_each_sync_actions_scopes():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    for provider, actions in scopes.NEEDS.items():
        for action in actions_of(provider):
            row = rows.get(provider.value, "")
            assert f"`{action}`: " in row, f"README's scopes table lacks {provider.value} {action}"
            part = row.split(f"`{action}`: ", 1)[1].split(";")[0]
            for scope in scopes.needed(provider, action):
                assert f"`{scope}`" in part, f"README: {provider.value} {action} needs {scope}"
            if set(scopes.needed(provider, action)) & set(APPROVAL_SCOPES.get(provider, ())):
                assert "approval-only" in part, f"README: {provider.value} {action}"


def test_a_scope_that_includes_another_counts_as_granting_it():
    assert scopes.refusal(Provider.SALESFORCE, "fetch_contacts", ["full", "refresh_token"]) is None
    assert scopes.refusal(Provider.ZAPIER, "fetch_zaps", ["profile", "zap:all"]) is None
    refused = scopes.refusal(Provider.ZAPIER, "fetch_zaps", ["profile"])
    assert refused.code == "MISSING_SCOPES" and refused.details["scopes"] == ["zap"]
    assert scopes.refusal(Provider.ZAPIER, "fetch_zaps", []) is None  # the provider did not say: not judged
