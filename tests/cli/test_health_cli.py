"""`nexusctl integrations health` against real SQLite and PostgreSQL: the piped table worst first, --json,
--status, paging by the printed cursor, one integration, exit 22 when a broken one is listed, bad input.
The list shows what the checks stored (`jobs run integration-health` here does the daemon's job)."""

from __future__ import annotations

import json
import uuid

from nexusctl.db.models import OutboxEvent
from nexusctl.enums import Provider

HEADER = "STATUS\tPROVIDER\tNAME\tID\tUSER\tREASONS\tCHECKED"


def test_lists_worst_first_and_exits_22_when_one_is_broken(cli, make_integration):
    user = uuid.uuid4()
    healthy = make_integration(user_id=user, provider=Provider.DISCORD, name="fine")
    broken = make_integration(user_id=user, provider=Provider.SLACK, is_active=False, last_error="token revoked")
    # Not checked yet: the list says so (and, nothing being broken as far as it knows, exits 0).
    unchecked = cli("integrations", "health", "--user", user)
    assert unchecked.exit_code == 0, unchecked.stderr
    assert [line.split("\t")[0] for line in unchecked.stdout.splitlines()[1:]] == ["unknown", "unknown"]
    assert cli("jobs", "run", "integration-health").exit_code == 0  # the daemon's job, run once
    result = cli("integrations", "health", "--user", user)
    assert result.exit_code == 22, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == HEADER
    assert lines[1].startswith(f"broken\tSLACK\t@someone\t{broken.id}") and "token revoked" in lines[1]
    assert lines[2].startswith(f"healthy\tDISCORD\tfine\t{healthy.id}\t{user}\t-\t")
    assert "1 broken integration(s) listed" in result.stderr
    # The change was announced once, by the check; listing again announces nothing.
    cli("integrations", "health", "--user", user)
    assert (
        OutboxEvent.select()
        .where((OutboxEvent.integration_id == broken.id) & (OutboxEvent.type == "integration.error"))
        .count()
        == 1
    )

    only_healthy = cli("integrations", "health", "--user", user, "--status", "healthy", "--json")
    assert only_healthy.exit_code == 0, only_healthy.stderr
    assert [r["integrationId"] for r in json.loads(only_healthy.stdout)] == [str(healthy.id)]


def test_pages_follow_the_printed_cursor(cli, make_integration):
    user = uuid.uuid4()
    made = {str(make_integration(user_id=user, provider=Provider.DISCORD).id) for _ in range(5)}
    assert cli("jobs", "run", "integration-health").exit_code == 0
    seen, args = [], ["integrations", "health", "--user", user, "--limit", "2", "--json"]
    cursor = None
    while True:
        result = cli(*args, *(["--cursor", cursor] if cursor else []))
        assert result.exit_code == 0, result.stderr
        seen += [r["integrationId"] for r in json.loads(result.stdout)]
        if "--cursor" not in result.stderr:
            break
        cursor = result.stderr.split("--cursor ")[1].split()[0]
    assert sorted(seen) == sorted(made)


def test_one_integration_and_bad_input(cli, make_integration):
    row = make_integration(provider=Provider.YOUTUBE, refresh_token=None, scope=[])
    result = cli("integrations", "health", row.id, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "healthy" and record["token"]["renewable"] is False
    text = result.stdout
    assert "access_token" not in text and "nx1." not in text  # no token, no ciphertext
    table = cli("integrations", "health", row.id)
    assert "status" in table.stdout and table.exit_code == 0
    assert cli("integrations", "health", "--status", "sick").exit_code == 2
    assert cli("integrations", "health", "00000000-0000-0000-0000-000000000000").exit_code == 10
    assert cli("integrations", "health", row.id, "--user", uuid.uuid4()).exit_code == 2
    assert cli("integrations", "health", "--cursor", "junk").exit_code == 2
    too_many = cli("integrations", "health", "--limit", "101")
    assert too_many.exit_code == 2 and "1 to 100" in too_many.stderr


def test_help_ends_with_an_example(cli):
    result = cli("integrations", "health", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout and "--status degraded,broken" in result.stdout
