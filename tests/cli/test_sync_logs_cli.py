"""`nexusctl sync logs INTEGRATION_ID` against real SQLite and PostgreSQL.

One integration's sync history, newest first, in the API's camelCase shape;
`--status` in any case; `--limit` pages that end in a cursor to follow;
an unknown integration is exit 10 and a bad argument exit 2, each as one
`error:` line and nothing on stdout.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from nexusctl.db.models import IntegrationSyncLog
from nexusctl.enums import SyncStatus

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MISSING = "00000000-0000-0000-0000-000000000000"
LOG_KEYS = {
    "id",
    "integrationId",
    "action",
    "resourceType",
    "resourceId",
    "status",
    "itemsProcessed",
    "itemsFailed",
    "error",
    "metadata",
    "startedAt",
    "completedAt",
    "runAfter",
    "createdAt",
    "updatedAt",
}
HEADER = "ID\tACTION\tSTATUS\tITEMS\tFAILED\tSTARTED\tCOMPLETED\tERROR"


def _error_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def _ids(result) -> list[str]:
    assert result.exit_code == 0, result.stdout + result.stderr
    return [item["id"] for item in json.loads(result.stdout)]


def _cursor(result) -> str | None:
    lines = [line for line in result.stderr.splitlines() if line.startswith("more: add --cursor ")]
    return lines[0].split()[-1] if lines else None


@pytest.fixture
def history(make_integration):
    """Six logs of one integration, created a minute apart (oldest first), and a neighbour's logs."""
    row = make_integration()
    statuses = [
        SyncStatus.COMPLETED,
        SyncStatus.FAILED,
        SyncStatus.IN_PROGRESS,
        SyncStatus.COMPLETED,
        SyncStatus.FAILED,
        SyncStatus.CANCELLED,
    ]
    logs = [
        IntegrationSyncLog.create(
            integration=row,
            action=f"step-{i}",
            status=status,
            items_processed=i,
            created_at=T0 + dt.timedelta(minutes=i),
        )
        for i, status in enumerate(statuses)
    ]
    neighbour = make_integration()
    for i in range(3):
        IntegrationSyncLog.create(
            integration=neighbour,
            action="other",
            status=SyncStatus.FAILED,
            created_at=T0 + dt.timedelta(minutes=i, seconds=30),
        )
    return row, logs


def test_logs_are_newest_first_and_only_this_integrations(cli, history):
    row, logs = history
    assert _ids(cli("sync", "logs", row.id, "--json")) == [str(log.id) for log in reversed(logs)]


@pytest.mark.parametrize("spelling", ["failed", "FAILED", "Failed", " failed "])
def test_status_filter_ignores_case(cli, history, spelling):
    row, logs = history
    found = cli("sync", "logs", row.id, "--status", spelling, "--json")
    assert _ids(found) == [str(logs[4].id), str(logs[1].id)]
    assert {item["status"] for item in json.loads(found.stdout)} == {"FAILED"}


@pytest.mark.parametrize(
    "flag, status, expected",
    [
        ("--status", "in_progress", [2]),
        ("--status", "PENDING", []),
        ("--status", "cancelled", [5]),
        ("--status", "completed", [3, 0]),
        ("-s", "Completed", [3, 0]),
    ],
)
def test_each_status_filters_exactly(cli, history, flag, status, expected):
    row, logs = history
    assert _ids(cli("sync", "logs", row.id, flag, status, "--json")) == [str(logs[i].id) for i in expected]


@pytest.mark.parametrize("bad", ["DONE", "fail", "", "COMPLETED,FAILED"])
def test_an_unknown_status_is_2_and_lists_the_choices(cli, history, bad):
    row, _ = history
    result = cli("sync", "logs", row.id, "--status", bad)
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith("error: VALIDATION_ERROR: unknown sync status")
    assert all(s.value in line for s in SyncStatus)


def test_limit_pages_and_the_cursor_continues(cli, history):
    row, logs = history
    first = cli("sync", "logs", row.id, "--limit", 4, "--json")
    assert _ids(first) == [str(log.id) for log in reversed(logs[2:])]
    cursor = _cursor(first)
    assert cursor and cursor not in first.stdout
    rest = cli("sync", "logs", row.id, "--limit", 4, "--json", "--cursor", cursor)
    assert _ids(rest) == [str(logs[1].id), str(logs[0].id)] and _cursor(rest) is None
    exact = cli("sync", "logs", row.id, "--limit", 6, "--json")
    assert len(_ids(exact)) == 6 and _cursor(exact) is None
    one = cli("sync", "logs", row.id, "-n", 1, "--status", "failed", "--json")
    assert _ids(one) == [str(logs[4].id)] and _cursor(one)
    two = cli("sync", "logs", row.id, "-n", 1, "--status", "failed", "--json", "--cursor", _cursor(one))
    assert _ids(two) == [str(logs[1].id)] and _cursor(two) is None


@pytest.mark.parametrize("args", [["--limit", "0"], ["--limit", "1001"], ["--cursor", "zzz"], ["-n", "x"]])
def test_bad_paging_arguments_are_2(cli, history, args):
    row, _ = history
    result = cli("sync", "logs", row.id, *args)
    assert result.exit_code == 2 and _error_line(result).startswith("error: VALIDATION_ERROR: ")


def test_unknown_integration_is_10_and_a_bad_id_is_2(cli, history):
    missing = cli("sync", "logs", MISSING)
    assert missing.exit_code == 10
    assert _error_line(missing).startswith("error: INTEGRATION_NOT_FOUND: ") and MISSING in missing.stderr
    also_missing = cli("sync", "logs", MISSING, "--status", "failed", "--json")
    assert also_missing.exit_code == 10 and also_missing.stdout == ""
    bad = cli("sync", "logs", "not-a-uuid")
    assert bad.exit_code == 2 and _error_line(bad).startswith("error: VALIDATION_ERROR: ")


def test_json_is_the_api_shape(cli, make_integration):
    row = make_integration()
    started = dt.datetime(2024, 5, 1, 14, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    log = IntegrationSyncLog.create(
        integration=row,
        action="fetch_posts",
        resource_type="post",
        resource_id="17895695668004550",
        status=SyncStatus.FAILED,
        items_processed=40,
        items_failed=2,
        error="rate limited",
        metadata={"page": 3, "cursor": "abc"},
        started_at=started,
    )
    result = cli("sync", "logs", row.id, "--json")
    assert result.exit_code == 0, result.stderr
    [item] = json.loads(result.stdout)
    assert set(item) == LOG_KEYS
    assert item == {
        "id": str(log.id),
        "integrationId": str(row.id),
        "action": "fetch_posts",
        "resourceType": "post",
        "resourceId": "17895695668004550",
        "status": "FAILED",
        "itemsProcessed": 40,
        "itemsFailed": 2,
        "error": "rate limited",
        "metadata": {"page": 3, "cursor": "abc"},
        "startedAt": "2024-05-01T12:00:00.250000Z",  # shown in UTC whatever zone it was written in
        "completedAt": None,
        "runAfter": None,
        "createdAt": item["createdAt"],
        "updatedAt": item["updatedAt"],
    }
    assert item["createdAt"].endswith("Z") and item["updatedAt"].endswith("Z")
    assert "nx1." not in result.stdout + result.stderr


def test_defaults_of_a_fresh_log(cli, make_integration):
    row = make_integration()
    IntegrationSyncLog.create(integration=row, action="refresh_token")
    [item] = json.loads(cli("sync", "logs", row.id, "--json").stdout)
    assert (item["status"], item["itemsProcessed"], item["itemsFailed"], item["metadata"]) == ("PENDING", 0, 0, {})
    assert item["startedAt"] is None and item["error"] is None and item["resourceType"] is None


def test_no_logs_is_an_empty_array_and_a_bare_header(cli, make_integration):
    row = make_integration()
    assert cli("sync", "logs", row.id, "--json").stdout == "[]\n"
    table = cli("sync", "logs", row.id)
    assert table.exit_code == 0 and table.stdout == HEADER + "\n"


def test_piped_table_is_tab_separated(cli, make_integration):
    row = make_integration()
    log = IntegrationSyncLog.create(
        integration=row,
        action="fetch_posts",
        status=SyncStatus.COMPLETED,
        items_processed=7,
        items_failed=1,
        started_at=T0,
        completed_at=T0 + dt.timedelta(seconds=5),
    )
    result = cli("sync", "logs", row.id)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == HEADER and len(lines) == 2
    assert lines[1].split("\t") == [
        str(log.id),
        "fetch_posts",
        "COMPLETED",
        "7",
        "1",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:05Z",
        "-",
    ]


def test_piped_table_keeps_one_line_per_log_when_the_error_has_newlines(cli, make_integration):
    row = make_integration()
    IntegrationSyncLog.create(
        integration=row, action="fetch_posts", status=SyncStatus.FAILED, error="Provider said:\nHTTP 500\nretry later"
    )
    lines = cli("sync", "logs", row.id).stdout.splitlines()
    assert len(lines) == 2 and len(lines[1].split("\t")) == 8


def test_logs_go_with_their_integration(cli, history):
    row, _ = history
    assert cli("integrations", "delete", row.id, "--yes").exit_code == 0
    gone = cli("sync", "logs", row.id)
    assert gone.exit_code == 10 and "INTEGRATION_NOT_FOUND" in _error_line(gone)
    assert IntegrationSyncLog.select().count() == 3  # the neighbour's are untouched
