"""job_runs: migration 0005, what `nexusctl jobs list` shows, what `jobs run` records, the back-off curve."""

from __future__ import annotations

import datetime as dt
import json
import time

from playhouse.migrations import Runner
from support import clock as shared_clock

from nexusctl.core import job_runs, refresh
from nexusctl.db import migrate
from nexusctl.db.models import Integration, JobRun
from nexusctl.enums import Provider
from nexusctl.errors import ProviderError

UTC = dt.timezone.utc


def _columns(db, table):
    return {c.name for c in db.get_columns(table)}


def test_0005_moves_the_old_back_off_out_of_the_lease_and_round_trips(database):
    # Before 0005 the sweep's back-off was a lease without a token; a real lease has one.
    until = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    user = "00000000-0000-0000-0000-000000000001"
    Integration.create(user_id=user, provider=Provider.SLACK, name="backing off", refresh_lease_until=until)
    Integration.create(
        user_id=user,
        provider=Provider.SLACK,
        name="leased",
        refresh_lease_until=until,
        refresh_lease_token="00000000-0000-0000-0000-0000000000ff",
    )
    runner = Runner(database, str(migrate.MIGRATIONS_DIR), table_name=migrate.HISTORY_TABLE)
    undone = []
    while "0005_job_runs" not in undone:  # later migrations first, newest first
        undone += runner.down()
    assert not database.table_exists("job_runs")
    assert not {"refresh_failures", "refresh_retry_at", "expiry_warned_for"} & _columns(database, "integrations")

    assert migrate.migrate(database) == sorted(undone)
    backing_off = Integration.get(Integration.name == "backing off")
    assert (backing_off.refresh_lease_until, backing_off.refresh_retry_at) == (None, until)
    assert backing_off.refresh_failures == 0 and backing_off.expiry_warned_for is None
    leased = Integration.get(Integration.name == "leased")
    assert (leased.refresh_lease_until, leased.refresh_retry_at) == (until, None)
    assert database.table_exists("job_runs")
    job_runs.scheduled("token-refresh", "every 60s", until, "host:1")
    assert JobRun.get().next_run_at == until


def test_a_fresh_database_lists_every_job_as_never_run_and_unscheduled(database, settings):
    jobs = job_runs.listing(settings)
    assert [(j["name"], j["schedule"], j["state"], j["daemon"]) for j in jobs] == [
        ("token-refresh", "every 60s", "never run", "not running"),
        ("housekeeping", "every 1h", "never run", "not running"),
        ("integration-health", "every 60s", "never run", "not running"),
    ]


def test_the_daemon_view_scheduled_running_overdue(database, settings, monkeypatch, tmp_path):
    now = dt.datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    job_runs.scheduled("token-refresh", "every 60s", now + dt.timedelta(seconds=30), "host-a:1")
    assert _job(settings, now, "token-refresh")["daemon"] == "scheduled"
    # The daemon died: its next run passed long ago and nothing ran.
    assert _job(settings, now + dt.timedelta(minutes=10), "token-refresh")["daemon"] == "overdue"
    # A run in progress is not overdue, however long it takes (up to an hour): one starts a minute in, on the
    # product's clock (the shared clock's file, as the daemon would read it), and has not finished.
    offset = tmp_path / "clock"
    offset.write_text(repr((now + dt.timedelta(minutes=1)).timestamp() - time.time()))
    shared_clock.use_file(monkeypatch, offset)
    job_runs.started("token-refresh", "host-a:1")
    shared_clock.stop_using(monkeypatch)
    running = _job(settings, now + dt.timedelta(minutes=10), "token-refresh")
    assert (running["state"], running["daemon"]) == ("running", "scheduled")
    assert _job(settings, now + dt.timedelta(hours=2), "token-refresh")["daemon"] == "overdue"


def test_runs_are_recorded_by_upsert_and_the_last_writer_wins(database, settings):
    job_runs.scheduled("housekeeping", "every 1h", dt.datetime(2030, 1, 1, tzinfo=UTC), "host-a:1")
    job_runs.started("housekeeping", "host-b:2")
    job_runs.finished("housekeeping", "host-b:2", counts={"deliveries": 3})
    job_runs.scheduled("housekeeping", "every 1h", dt.datetime(2030, 1, 2, tzinfo=UTC), "host-c:3")
    assert JobRun.select().count() == 1
    job = _job(settings, None, "housekeeping")
    assert (job["outcome"], job["counts"], job["ranBy"], job["scheduledBy"], job["nextRunAt"]) == (
        "ok",
        {"deliveries": 3},
        "host-b:2",
        "host-c:3",
        "2030-01-02T00:00:00Z",
    )
    job_runs.finished("housekeeping", "host-b:2", error=RuntimeError("postgresql://u:hunter2@db/x is down"))
    job = _job(settings, None, "housekeeping")
    assert job["outcome"] == "failed" and job["counts"] is None
    assert "hunter2" not in json.dumps(job) and job["message"] == "RuntimeError (details in the log)"
    job_runs.finished("housekeeping", "host-b:2", error=ProviderError("SLACK answered 503"))
    assert _job(settings, None, "housekeeping")["message"] == "PROVIDER_ERROR: SLACK answered 503"


def _job(settings, now, name):
    return next(j for j in job_runs.listing(settings, now) if j["name"] == name)


def test_jobs_run_records_its_run_and_jobs_list_shows_it(cli):
    listed = cli("jobs", "list")
    assert listed.exit_code == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t") == ["JOB", "SCHEDULE", "LAST RUN", "OUTCOME", "NEXT RUN", "RAN BY"]
    assert [line.split("\t")[2:5] for line in lines[1:]] == [["never", "-", "daemon not running"]] * 3
    assert "No daemon is running these jobs" in listed.stderr

    done = cli("jobs", "run", "housekeeping")
    assert done.exit_code == 0, done.stderr
    again = cli("jobs", "list", "--json")
    assert again.exit_code == 0, again.stderr
    housekeeping = next(j for j in json.loads(again.stdout) if j["name"] == "housekeeping")
    assert housekeeping["outcome"] == "ok" and housekeeping["state"] == "idle"
    assert housekeeping["counts"] == {
        "expiredStates": 0,
        "endedRateWaits": 0,
        "deliveries": 0,
        "syncLogs": 0,
        "events": 0,
        "retentionDays": 30,
        "unparked": 0,
        "parked": 0,
    }
    assert housekeeping["ranBy"].endswith("(nexusctl jobs run)") and housekeeping["nextRunAt"] is None
    row = next(line.split("\t") for line in cli("jobs", "list").stdout.splitlines() if line.startswith("housekeeping"))
    assert (
        row[3] == "ok: 0 deliveries, 0 endedRateWaits, 0 events, 0 expiredStates, 0 parked, 0 syncLogs, 0 unparked"
        and row[4] == "daemon not running"
    )


def test_the_back_off_doubles_from_5_minutes_to_a_6_hour_cap_within_10_percent():
    middle = [refresh.back_off_delay(n, rand=lambda: 0.5) for n in range(1, 10)]
    assert [d / dt.timedelta(minutes=1) for d in middle] == [5, 10, 20, 40, 80, 160, 320, 360, 360]
    assert refresh.back_off_delay(1, rand=lambda: 0.0) == dt.timedelta(minutes=4.5)
    assert refresh.back_off_delay(30, rand=lambda: 1.0) == dt.timedelta(hours=6.6)
    # A provider that is down for a day sees about a dozen tries per integration, not 1,440.
    day, tries, spent = dt.timedelta(days=1), 0, dt.timedelta(0)
    while spent < day:
        tries += 1
        spent += refresh.back_off_delay(tries, rand=lambda: 0.5)
    assert tries <= 12


def test_jobs_run_and_show_integration_health_do_the_daemons_work(cli, make_integration):
    broken = make_integration(provider=Provider.SLACK, is_active=False, last_error="revoked")
    fine = make_integration(provider=Provider.DISCORD)
    never = cli("jobs", "show", "integration-health", "--json")
    assert never.exit_code == 0, never.stderr
    assert json.loads(never.stdout)["state"] == "never run"

    ran = cli("jobs", "run", "integration-health", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert "Checked 2 integration(s)" in ran.stderr
    counts = json.loads(ran.stdout)
    assert (counts["checked"], counts["broken"], counts["healthy"]) == (2, 1, 1)
    stored = {r.id: r.health_status for r in Integration.select().where(Integration.id.in_([broken.id, fine.id]))}
    assert stored == {broken.id: "broken", fine.id: "healthy"}

    shown = json.loads(cli("jobs", "show", "integration-health", "--json").stdout)
    assert shown["outcome"] == "ok" and shown["counts"]["checked"] == 2
    assert shown["ranBy"].endswith("(nexusctl jobs run)")
    # Nothing is due any more: a second run checks none.
    assert json.loads(cli("jobs", "run", "integration-health", "--json").stdout)["checked"] == 0


def test_the_cli_and_the_daemon_share_one_job_registry(cli, settings):
    from nexusctl.core import job_work

    assert set(job_work.NAMES) == set(job_runs.schedules(settings))
    for name in job_work.NAMES:
        assert cli("jobs", "show", name).exit_code == 0
    refused = cli("jobs", "run", "nap-time")
    assert refused.exit_code == 2 and "integration-health" in refused.stderr
    assert cli("jobs", "show", "nap-time").exit_code == 2
