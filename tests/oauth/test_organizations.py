"""The spec's Integration.organizationId: set at initiate (or with an API key), kept, shown, filtered by.

Real daemon and CLI on SQLite and PostgreSQL, connections made through the emulators' consent pages.
"""

from __future__ import annotations

import json
import uuid


def _connect(stack, provider: str, user, organization=None) -> str:
    extra = {"organizationId": str(organization)} if organization else {}
    result = stack.connect(provider, user, **extra)
    assert result["status"] == "success", result
    return result["integrationId"]


def _listed(stack, user, **query) -> list[str]:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    answer = stack.api("GET", f"/integrations/user/{user}" + (f"?{suffix}" if suffix else ""), user=user)
    assert answer.status == 200, answer.text
    return [row["id"] for row in answer.json()["data"]]


def test_an_organization_given_at_initiate_is_kept_shown_and_filtered_by(stack, fresh_emulators):
    user, acme, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    slack = _connect(stack, "SLACK", user, acme)
    discord = _connect(stack, "DISCORD", user)  # none given: none kept
    shown = stack.api("GET", f"/integrations/{slack}", user=user).json()["data"]
    assert shown["organizationId"] == str(acme)
    assert stack.api("GET", f"/integrations/{discord}", user=user).json()["data"]["organizationId"] is None

    assert _listed(stack, user, organizationId=acme) == [slack]
    assert _listed(stack, user, organizationId=other) == []
    assert sorted(_listed(stack, user)) == sorted([slack, discord])

    again = _connect(stack, "SLACK", user)  # a reconnect that names no organization keeps the one it has
    assert again == slack and _listed(stack, user, organizationId=acme) == [slack]

    listed = stack.cli("integrations", "list", "--organization", str(acme), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["organizationId"]) for r in json.loads(listed.stdout)] == [(slack, str(acme))]


def test_an_api_key_connection_takes_an_organization_too(stack, fresh_emulators):
    user, acme = uuid.uuid4(), uuid.uuid4()
    body = {
        "userId": str(user),
        "provider": "SENDGRID",
        "apiKey": stack.emulators.sendgrid_key(),
        "organizationId": str(acme),
    }
    answer = stack.api("POST", "/integrations/api-key", user=user, body=body)
    assert answer.status == 201, answer.text
    assert answer.json()["data"]["organizationId"] == str(acme)
    assert _listed(stack, user, organizationId=acme) == [answer.json()["data"]["id"]]


def test_a_bad_organization_is_a_400_naming_it(stack, fresh_emulators):
    user = uuid.uuid4()
    for bad in ("acme", "", 42, "123e4567-e89b-12d3-a456-42661417400"):
        answer = stack.initiate("SLACK", user, organizationId=bad)
        error = answer.json()["error"]
        assert answer.status == 400 and error["code"] == "VALIDATION_ERROR", (bad, answer.text)
        assert "organizationId" in error["message"], error
    key = {"userId": str(user), "provider": "SENDGRID", "apiKey": "SG.x", "organizationId": "acme"}
    answer = stack.api("POST", "/integrations/api-key", user=user, body=key)
    assert answer.status == 400 and "organizationId" in answer.json()["error"]["message"], answer.text
    listed = stack.api("GET", f"/integrations/user/{user}?organizationId=acme", user=user)
    assert listed.status == 400 and "organizationId" in listed.json()["error"]["message"], listed.text
    cli = stack.cli("integrations", "list", "--organization", "acme")
    assert cli.returncode != 0 and "organizationId" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
