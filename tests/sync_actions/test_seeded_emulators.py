"""The records `python -m tests.emulators` starts with (tests.emulators.seed) are what each sync action reads.

Every action of every provider, run against the seeded emulators, reads at least one item: a manual
run by hand never syncs 0 items because a seed row lacks a field the action needs, or belongs to
an account the emulator does not list for the connected user.
"""

from __future__ import annotations

import pytest
from emulators.seed import seed
from synckit import mint, read_all
from test_commerce_actions import LOCAL_STORE, SHOP, shopify_token, woo_key
from test_crm_actions import sf_metadata
from test_marketing_actions import mc_metadata

from nexusctl.enums import Provider
from nexusctl.providers.adapters.tiktok import BUSINESS_ONLY, BUSINESS_SCOPES
from nexusctl.providers.sync.registry import ACTIONS

# The scopes only apps the provider approved get (nexusctl/providers/scopes.py APPROVAL): the seeded run plays such
# an app, as an operator who set <PROVIDER>_APPROVED_SCOPES would have; every other grant is what the service requests.
APPROVED = {
    "LINKEDIN": ["r_member_social", "r_member_postAnalytics"],
    "PAYPAL": ["https://uri.paypal.com/services/reporting/search/read"],
}


def _connection(emu, provider: str, action: str) -> dict:
    """What read_all needs to act as a connected integration of this provider."""
    if provider == "TIKTOK" and action in BUSINESS_ONLY:  # a TikTok API for Business connection (TIKTOK_APP)
        tiktok, open_id = emu["TIKTOK"], emu["TIKTOK"].account["open_id"]
        grant = tiktok.new_grant(list(BUSINESS_SCOPES), open_id=open_id, api="business")
        return {
            "token": tiktok.issue(grant, "access", 3600).value,
            "metadata": {"openId": open_id, "tiktokApp": "business"},
            "env": {"TIKTOK_APP": "business"},
        }
    if provider == "SHOPIFY":
        return {"token": shopify_token(emu), "tenant": SHOP}
    if provider == "WOOCOMMERCE":
        return {"token": woo_key(emu), "tenant": emu.woocommerce_store_url, "env": LOCAL_STORE}
    if provider == "SENDGRID":
        return {"token": emu.sendgrid_key()}
    extra = {
        "SALESFORCE": {"metadata": sf_metadata(emu)},
        "MAILCHIMP": {"metadata": mc_metadata(emu)},
        "TIKTOK_ADS": {"metadata": {"advertiserIds": emu["TIKTOK_ADS"].advertiser_ids}},
        "GOOGLE_ADS": {"env": {"GOOGLE_ADS_DEVELOPER_TOKEN": emu["GOOGLE_ADS"].developer_token}},
    }
    if provider in APPROVED:
        emu[provider].approve_scopes(*APPROVED[provider])
    return {"token": mint(emu, provider), **extra.get(provider, {})}


@pytest.mark.parametrize("provider, action", [(p.value, a) for p, actions in ACTIONS.items() for a in actions])
def test_every_action_reads_seeded_records(fresh_emulators, provider, action):
    seed(fresh_emulators)
    pages, _ = read_all(fresh_emulators, provider, action, **_connection(fresh_emulators, provider, action))
    if ACTIONS[Provider(provider)][action].report is not None:  # a snapshot: metrics of the account and its posts
        (report,) = pages
        assert [v for v in report.account.values() if v], report.account
        # LinkedIn gives a member's totals only (per-post statistics are per post and metric)
        assert report.posts or provider == "LINKEDIN", report
        assert all(any(v for v in p["metrics"].values()) for p in report.posts), report.posts
        return
    assert sum(len(page.items) for page in pages) > 0
