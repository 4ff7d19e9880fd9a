"""A customer publishes only to a channel, workspace or page of their own (issue 17, item 2).

Through `nexusctl daemon` (SQLite and PostgreSQL) with the emulators: two
users each connect their own provider account by the browser journey (the
emulator signs each in as a different account), name where to publish in the
integration's metadata (at initiate, or later with PATCH, as a client can),
and a service ingests content.published. A target of the other customer's
makes the publish log FAILED with the reason and nothing lands there; a
target of one's own still gets the post.

- Discord posts as the one application bot, which is in both customers'
  servers: the channel's server must be one the connected user is in and
  manages (owner, Manage Server or Administrator); the bot must see it.
- Slack posts with the workspace's own bot token: a channel of another
  workspace (by id or by name) is refused by Slack itself (channel_not_found),
  reported as such.
- Facebook posts with a page token from the user's own /me/accounts: another
  user's page is not among them.
- LinkedIn has no target to name: each post is authored by the connected
  member (the userinfo subject), whatever the metadata says.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

A_ID, B_ID = "100000000000000001", "200000000000000002"  # the two Discord / Facebook users


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def daemon(request, emulators, tmp_path_factory, pg_template, stack_launcher):
    env = {"DISCORD_BOT_TOKEN": emulators["DISCORD"].bot_token}
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("publish-targets"), emulators, pg_template, env
    ) as stack:
        yield stack


def _connect(stack, provider: str, account: dict, metadata: dict | None = None) -> tuple[uuid.UUID, str]:
    """A new user connects ``account`` at ``provider``; (their id, the integration id)."""
    stack.emulators[provider].sign_in_as(**account)
    user = uuid.uuid4()
    result = stack.connect(provider, user, **({"metadata": metadata} if metadata else {}))
    assert result["status"] == "success", result
    return user, result["integrationId"]


def _aim(stack, user, integration: str, metadata: dict) -> None:
    answer = stack.api("PATCH", f"/integrations/{integration}", user=user, body={"metadata": metadata})
    assert answer.status == 200, answer.text


def _publish(stack, user, title: str) -> tuple[str, dict, str | None]:
    """content.published for ``user``; waits for its publish log to end: (status, metadata, error)."""
    content_id, _ = stack.ingest_content(user, title)
    deadline, seen = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        rows = stack.sql("SELECT status, metadata, error FROM integration_sync_logs WHERE resource_id = %s", content_id)
        if rows and rows[0][0] in ("COMPLETED", "FAILED"):
            status, metadata, error = rows[0]
            return status, json.loads(metadata) if isinstance(metadata, str) else metadata, error
        seen = rows
        time.sleep(0.1)  # polling what the daemon does on its own
    raise AssertionError(f"the publish log did not end: {seen}\n{stack.logs()[-3000:]}")


# --- Discord ----------------------------------------------------------------------------------------------

OWNED = {"A": "900000000000000010", "B": "900000000000000020"}  # each customer's own server
COMMUNITY, BOTLESS = "900000000000000030", "900000000000000040"
CHANNEL = {
    "A": "910000000000000011",
    "B": "910000000000000021",
    "community": "910000000000000031",
    "botless": "910000000000000041",
}
SEND_MESSAGES, MANAGE_GUILD = str(1 << 11), str(1 << 5)


def _discord_servers(dc) -> None:
    dc.set_records(
        "guilds",
        [
            {"id": OWNED["A"], "name": "A's studio", "owner_id": A_ID, "members": {A_ID: "2147483647"}},
            {"id": OWNED["B"], "name": "B's studio", "owner_id": B_ID, "members": {B_ID: "2147483647"}},
            # B runs a public community A has joined; B also made A a manager of nothing there.
            {
                "id": COMMUNITY,
                "name": "B's community",
                "owner_id": B_ID,
                "members": {B_ID: "2147483647", A_ID: SEND_MESSAGES},
            },
            {
                "id": BOTLESS,
                "name": "A's side project",
                "owner_id": A_ID,
                "members": {A_ID: "2147483647"},
                "bot": False,
            },
        ],
    )
    dc.set_records(
        "channels",
        [
            {"id": CHANNEL[k], "name": f"news-{k}", "guild_id": g}
            for k, g in (("A", OWNED["A"]), ("B", OWNED["B"]), ("community", COMMUNITY), ("botless", BOTLESS))
        ],
    )


def _messages_in(dc, channel: str) -> list[str]:
    return [m["content"] for m in dc.records_of("messages") if m["channel_id"] == channel]


def test_discord_publishes_only_into_a_server_the_account_is_in_and_manages(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    _discord_servers(dc)
    user_a, on_a = _connect(daemon, "DISCORD", {"id": A_ID, "username": "alice"}, {"publishChannel": CHANNEL["A"]})
    user_b, on_b = _connect(daemon, "DISCORD", {"id": B_ID, "username": "bob"}, {"publishChannel": CHANNEL["B"]})

    status, metadata, error = _publish(daemon, user_a, "A's own news")
    assert status == "COMPLETED", error
    assert _messages_in(dc, CHANNEL["A"]) == [f"A's own news\nhttps://nexus.test/p/{metadata['content']['contentId']}"]
    # The bot's spent message bucket (Remaining 0) is the bot's limit, not A's: A's own calls go on at once.
    me = daemon.api("GET", f"/integrations/{on_a}/proxy/v10/users/@me", user=user_a)
    assert me.status == 200, me.text

    # A aims at B's channel: the bot is in B's server and could post there, but A is not.
    _aim(daemon, user_a, on_a, {"publishChannel": CHANNEL["B"]})
    status, _, error = _publish(daemon, user_a, "spam from A")
    assert status == "FAILED" and error.startswith(
        f"VALIDATION_ERROR: Discord channel {CHANNEL['B']} is not in a Discord server that this account belongs to"
    ), error
    foreign = error.replace(CHANNEL["B"], "<channel>")
    assert "B's studio" not in error and OWNED["B"] not in error  # nothing about the other customer's server
    assert _messages_in(dc, CHANNEL["B"]) == []

    # Joining B's public community does not make its channels A's to publish to.
    _aim(daemon, user_a, on_a, {"publishChannel": CHANNEL["community"]})
    status, _, error = _publish(daemon, user_a, "more spam from A")
    assert status == "FAILED" and "neither Manage Server nor Administrator" in error, error
    assert _messages_in(dc, CHANNEL["community"]) == []

    # A's own server the bot was never added to: the bot cannot see the channel.
    _aim(daemon, user_a, on_a, {"publishChannel": CHANNEL["botless"]})
    status, _, error = _publish(daemon, user_a, "side project")
    assert status == "FAILED" and "add the bot to one of your servers" in error, error
    # The same words as for another customer's channel: the answer tells nobody where the shared bot is.
    assert error.replace(CHANNEL["botless"], "<channel>") == foreign

    # B still publishes into B's channel, and, as B manages the community, there too.
    assert _publish(daemon, user_b, "B's news")[0] == "COMPLETED"
    _aim(daemon, user_b, on_b, {"publishChannel": CHANNEL["community"]})
    assert _publish(daemon, user_b, "B's community news")[0] == "COMPLETED"
    assert [m["channel_id"] for m in dc.records_of("messages")] == [CHANNEL["A"], CHANNEL["B"], CHANNEL["community"]]
    assert dc.bot_token not in daemon.logs()


def test_a_manager_who_is_not_the_owner_may_publish(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    _discord_servers(dc)
    dc.set_records(
        "guilds",
        [
            {
                "id": COMMUNITY,
                "name": "B's community",
                "owner_id": B_ID,
                "members": {B_ID: "2147483647", A_ID: str(int(SEND_MESSAGES) | int(MANAGE_GUILD))},
            }
        ],
    )
    user_a, _ = _connect(daemon, "DISCORD", {"id": A_ID}, {"publishChannel": CHANNEL["community"]})
    status, _, error = _publish(daemon, user_a, "a moderator's announcement")
    assert status == "COMPLETED", error
    assert len(_messages_in(dc, CHANNEL["community"])) == 1


def test_a_discord_grant_without_guilds_cannot_publish_and_says_to_reconnect(daemon, fresh_emulators):
    dc = daemon.emulators["DISCORD"]
    _discord_servers(dc)
    dc.withhold_next_grant("guilds")  # the user unticked "know what servers you're in"
    user_a, _ = _connect(daemon, "DISCORD", {"id": A_ID}, {"publishChannel": CHANNEL["A"]})
    status, _, error = _publish(daemon, user_a, "A's own news")
    assert status == "FAILED" and "did not grant the guilds scope" in error and "reconnect Discord" in error, error
    assert dc.records_of("messages") == [] and dc.calls["guilds"] == 0


# --- Slack ------------------------------------------------------------------------------------------------


def _slack_workspaces(sl) -> tuple[dict, dict]:
    a = {
        "team_id": "T0AAAAAAAA",
        "team": "Team A",
        "url": "https://team-a.slack.com/",
        "user_id": "U0AAAAAAAA",
        "bot_user_id": "U0BOTAAAAA",
    }
    b = {
        "team_id": "T0BBBBBBBB",
        "team": "Team B",
        "url": "https://team-b.slack.com/",
        "user_id": "U0BBBBBBBB",
        "bot_user_id": "U0BOTBBBBB",
    }
    sl.set_records(
        "channels",
        [
            {"id": "C0AGENERAL", "name": "general", "context_team_id": a["team_id"]},
            {"id": "C0BGENERAL", "name": "general", "context_team_id": b["team_id"]},
            {"id": "C0BSECRETS", "name": "secret-plans", "context_team_id": b["team_id"]},
        ],
    )
    return a, b


def test_slack_posts_only_into_the_connected_workspace(daemon, fresh_emulators):
    sl = daemon.emulators["SLACK"]
    team_a, team_b = _slack_workspaces(sl)
    user_a, on_a = _connect(daemon, "SLACK", team_a, {"publishChannel": "general"})
    user_b, _ = _connect(daemon, "SLACK", team_b, {"publishChannel": "C0BSECRETS"})

    status, _, error = _publish(daemon, user_a, "A's news")
    assert status == "COMPLETED", error
    assert [m["channel"] for m in sl.records_of("messages")] == ["C0AGENERAL"]  # A's #general, not B's

    for foreign in ("C0BSECRETS", "#secret-plans"):  # B's channel by id, then by name
        _aim(daemon, user_a, on_a, {"publishChannel": foreign})
        status, _, error = _publish(daemon, user_a, "spam from A")
        assert status == "FAILED" and error == (
            f"VALIDATION_ERROR: Slack channel {foreign} is not in the "
            "connected workspace (Team A), or the app cannot see it: nothing "
            "was posted"
        ), error
    assert _publish(daemon, user_b, "B's plans")[0] == "COMPLETED"
    assert [m["channel"] for m in sl.records_of("messages")] == ["C0AGENERAL", "C0BSECRETS"]


# --- Facebook ---------------------------------------------------------------------------------------------

PAGE_A, PAGE_B = "104000000000000011", "104000000000000022"


def test_facebook_posts_only_to_a_page_of_the_users_own(daemon, fresh_emulators):
    fb = daemon.emulators["FACEBOOK"]
    fb.set_records(
        "pages",
        [{"id": PAGE_A, "name": "A's page", "admins": [A_ID]}, {"id": PAGE_B, "name": "B's page", "admins": [B_ID]}],
    )
    user_a, on_a = _connect(daemon, "FACEBOOK", {"id": A_ID, "name": "Alice"})
    user_b, _ = _connect(daemon, "FACEBOOK", {"id": B_ID, "name": "Bob"})

    status, _, error = _publish(daemon, user_a, "A's news")  # A's only page
    assert status == "COMPLETED", error
    _aim(daemon, user_a, on_a, {"publishPageId": PAGE_B})
    status, _, error = _publish(daemon, user_a, "spam from A")
    assert status == "FAILED" and error == (
        f"VALIDATION_ERROR: metadata.publishPageId {PAGE_B} is not a page "
        f"this Facebook user manages (their pages: {PAGE_A})"
    ), error
    assert _publish(daemon, user_b, "B's news")[0] == "COMPLETED"
    assert [p["page_id"] for p in fb.records_of("posts")] == [PAGE_B, PAGE_A]  # newest first


# --- LinkedIn ---------------------------------------------------------------------------------------------


def test_linkedin_posts_are_authored_by_the_connected_member_only(daemon, fresh_emulators):
    li = daemon.emulators["LINKEDIN"]
    user_a, on_a = _connect(daemon, "LINKEDIN", {"sub": "memberAAAA", "name": "Alice"})
    user_b, _ = _connect(daemon, "LINKEDIN", {"sub": "memberBBBB", "name": "Bob"})
    # No metadata names a LinkedIn author: keys a client might try change nothing.
    _aim(
        daemon,
        user_a,
        on_a,
        {"publishAuthor": "urn:li:person:memberBBBB", "publishOrganization": "urn:li:organization:2414183"},
    )
    assert _publish(daemon, user_a, "A's news")[0] == "COMPLETED"
    assert _publish(daemon, user_b, "B's news")[0] == "COMPLETED"
    assert [(p["author"], p["text"].split("\n")[0]) for p in li.records_of("posts")] == [
        ("urn:li:person:memberBBBB", "B's news"),
        ("urn:li:person:memberAAAA", "A's news"),
    ]
