"""Providers accept only the redirect URIs registered for the app (issue 18: the emulators accepted any).

The stack registers the daemon's callback URLs with every emulated app
(``Emulators.register_callback_base``), as an operator does in each provider's
app settings. A daemon whose PUBLIC_URL names a callback the app has not
registered cannot connect: the provider's authorize page refuses the request
(400 ``redirect_uri_mismatch``, never a redirect, so no code is issued). A flow
begun under one registered callback and finished under another fails the code
exchange (the token request must repeat the authorize's redirect_uri exactly),
and the browser lands on the frontend with ``status=error``.
"""

from __future__ import annotations

import urllib.parse
import uuid

import pytest
from emulators.testkit import call

PROVIDERS = ["GOOGLE_ADS", "SLACK", "FACEBOOK", "HUBSPOT"]


@pytest.fixture
def elsewhere(stack):
    """The same daemon reached as localhost: a callback base no app has registered. Restored afterwards."""
    registered = stack.env["PUBLIC_URL"]
    other = registered.replace("127.0.0.1", "localhost")
    yield other
    if stack.env["PUBLIC_URL"] != registered:
        stack.restart(PUBLIC_URL=registered)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_callback_the_app_did_not_register_is_refused_at_the_provider(stack, fresh_emulators, elsewhere, provider):
    stack.restart(PUBLIC_URL=elsewhere)
    emu = stack.emulators[provider]
    user = uuid.uuid4()
    started = stack.initiate(provider, user)
    assert started.status == 200, started.text
    at_provider = call("GET", started.json()["data"]["authorizationUrl"])
    assert at_provider.status == 400, (at_provider.status, at_provider.location)
    assert not at_provider.location  # the provider never sends the browser to an untrusted URI
    assert at_provider.json()["error"] == "redirect_uri_mismatch"
    assert f"{elsewhere}/integrations/oauth/callback/{provider.lower()}" in at_provider.json()["error_description"]
    assert not emu.codes and emu.calls["token"] == 0
    assert stack.api("GET", f"/integrations/user/{user}", user=user).json()["data"] == []


def test_the_code_exchange_must_repeat_the_authorize_redirect_uri(stack, fresh_emulators, elsewhere):
    """Both callbacks registered; the flow starts under one and the daemon finishes it under the other."""
    provider = "GOOGLE_ADS"
    fresh_emulators.register_callback_base(elsewhere)
    try:
        user = uuid.uuid4()
        started = stack.initiate(provider, user)
        assert started.status == 200, started.text
        at_provider = call("GET", started.json()["data"]["authorizationUrl"])
        assert at_provider.status == 302, at_provider.text[:300]
        stack.restart(PUBLIC_URL=elsewhere)  # the daemon's callback changes while the user is at the provider
        final = call("GET", at_provider.location)
        assert final.status == 302, final.text[:300]
        assert final.location.startswith(f"{stack.env['FRONTEND_URL']}/connected?"), final.location
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final.location).query))
        assert query["status"] == "error", query
        assert "integrationId" not in query
        assert fresh_emulators[provider].calls["token"] == 1
        assert stack.api("GET", f"/integrations/user/{user}", user=user).json()["data"] == []
    finally:
        for name, app in fresh_emulators.providers.items():
            app.unregister_redirect(f"{elsewhere}/integrations/oauth/callback/{name.lower()}")
