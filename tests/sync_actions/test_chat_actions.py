"""Slack and Discord fetch_channels against their emulators: every page, the real cursors, errors."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import MissingScopes, ProviderError, RateLimited, TokenExpired


def _channels(n):
    return [
        {
            "id": f"C{i:08d}",
            "name": f"chan-{i}",
            "is_private": i % 5 == 0,
            "num_members": i,
            "topic": {"value": f"topic {i}"},
        }
        for i in range(n)
    ]


def test_slack_reads_every_channel_across_cursor_pages(fresh_emulators):
    fresh_emulators["SLACK"].set_records("channels", _channels(450))
    token = mint(fresh_emulators, "SLACK")
    pages, calls = read_all(fresh_emulators, "SLACK", "fetch_channels", token=token)
    assert calls == 3 and [len(p.items) for p in pages] == [200, 200, 50]
    assert [i.external_id for p in pages for i in p.items] == [f"C{i:08d}" for i in range(450)]
    assert pages[0].resume and pages[-1].resume is None
    assert pages[0].items[5].data["isPrivate"] is True and pages[0].items[7].data["topic"] == "topic 7"


def test_slack_resumes_from_a_stored_cursor(fresh_emulators):
    fresh_emulators["SLACK"].set_records("channels", _channels(450))
    token = mint(fresh_emulators, "SLACK")
    first, _ = read_all(fresh_emulators, "SLACK", "fetch_channels", token=token, max_pages=1)
    rest, calls = read_all(fresh_emulators, "SLACK", "fetch_channels", token=token, resume=first[0].resume)
    assert calls == 2 and rest[0].items[0].external_id == "C00000200"


def test_slack_errors_in_a_200_answer_are_errors(fresh_emulators):
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "SLACK", "fetch_channels", token="not-a-token")
    fresh_emulators["SLACK"].rate_limit_next("conversations.list", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        read_all(fresh_emulators, "SLACK", "fetch_channels", token=mint(fresh_emulators, "SLACK", []))
    assert caught.value.retry_after == 7


def test_discord_pages_guilds_with_the_snowflake_after_cursor(fresh_emulators):
    guilds = [
        {"id": str(80351110224678912 + i * 7), "name": f"guild {i}", "owner": i == 3, "permissions": "2147483647"}
        for i in range(401)
    ]
    fresh_emulators["DISCORD"].set_records("guilds", list(reversed(guilds)))  # the API sorts by id itself
    token = mint(fresh_emulators, "DISCORD", ["identify", "guilds"])
    pages, calls = read_all(fresh_emulators, "DISCORD", "fetch_channels", token=token)
    assert calls == 3 and [len(p.items) for p in pages] == [200, 200, 1]
    assert [i.external_id for p in pages for i in p.items] == [g["id"] for g in guilds]
    assert pages[1].resume == {"after": guilds[399]["id"]} and pages[2].resume is None


def test_discord_refuses_a_token_without_the_guilds_scope(fresh_emulators):
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "DISCORD", "fetch_channels", token=mint(fresh_emulators, "DISCORD", ["identify"]))
    fresh_emulators["DISCORD"].fail_next("guilds", 502)
    with pytest.raises(ProviderError):
        read_all(fresh_emulators, "DISCORD", "fetch_channels", token=mint(fresh_emulators, "DISCORD", ["guilds"]))


def test_slack_private_channels_need_groups_read(fresh_emulators):
    fresh_emulators["SLACK"].set_records("channels", _channels(10))
    # A grant without groups:read (the user's workspace policy dropped it): Slack names the scope it needs.
    with pytest.raises(MissingScopes) as caught:
        read_all(
            fresh_emulators,
            "SLACK",
            "fetch_channels",
            token=mint(fresh_emulators, "SLACK", ["channels:read", "chat:write", "team:read"]),
        )
    assert caught.value.details["scopes"] == ["groups:read"] and "groups:read" in caught.value.message
    pages, _ = read_all(fresh_emulators, "SLACK", "fetch_channels", token=mint(fresh_emulators, "SLACK"))
    assert [i.data["isPrivate"] for i in pages[0].items].count(True) == 2  # channels 0 and 5
