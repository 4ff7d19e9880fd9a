"""/metrics and `nexusctl top` after real work, on SQLite and PostgreSQL.

A real daemon does what users make it do (the browser connect flow against the emulators, an event
delivered to a receiver, a sync, a refresh); the figures on /metrics must move with it and parse as
the Prometheus text format. `nexusctl top` runs in tmux, a real terminal, and its screen is read: the
frame shows the queue, the failing endpoint and the jobs; q quits with exit 0 and Ctrl-C with 130,
both leaving the terminal as they found it (the alternate screen left, the tty modes restored).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from emulators.testkit import CallbackSink
from prometheus_client.parser import text_string_to_metric_families
from support.servers import require
from support.waiting import wait_for as _wait
from test_refresh_flows import connected

NEXUSCTL = Path(sys.executable).parent / "nexusctl"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, emulators, tmp_path_factory, pg_template, stack_launcher):  # noqa: F811
    # A failed delivery is tried again 2 s later; its webhook disabled by then, it waits, due.
    env = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32", "WEBHOOK_RETRY_SCHEDULE": "2,2,2,2,2"}
    with stack_launcher(
        request.param, tmp_path_factory.mktemp("observability"), emulators, pg_template, extra_env=env
    ) as stack:
        yield stack


def _scrape(stack, base=None) -> tuple[dict, list]:
    """{(sample name, sorted labels): value} and the families, as a Prometheus server would parse them."""
    answer = stack.api("GET", "/metrics", base=base)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    families = list(text_string_to_metric_families(answer.text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return samples, families


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _sum(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, w) in ls for k, w in labels.items()))


def _emit(stack, integration, user, event="post.created"):
    sent = stack.api("POST", f"/integrations/{integration}/events", user=user, body={"type": event, "data": {}})
    assert sent.status == 202, sent.text


def _sync_done(stack, integration, user, log_id) -> dict:
    logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
    (log,) = [row for row in logs if row["id"] == log_id]
    return log if log["status"] not in ("PENDING", "IN_PROGRESS") else None


def test_metrics_move_with_real_work_and_parse(stack, fresh_emulators):
    before, _ = _scrape(stack)
    user, integration = connected(stack, "SLACK")  # the browser flow: initiate, consent, callback
    with CallbackSink(200) as sink:
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": sink.url, "events": ["post.*"]},
        )
        assert hook.status == 201, hook.text
        _emit(stack, integration, user)
        _wait(lambda: sink.received, 20, "the delivery")
        # The attempt is counted once recorded, a moment after the receiver answered.
        _wait(
            lambda: (
                _value(_scrape(stack)[0], "nexus_delivery_attempts_total", outcome="delivered")
                > _value(before, "nexus_delivery_attempts_total", outcome="delivered")
            ),
            20,
            "the attempt counted",
        )
    stack.emulators["SLACK"].set_records("channels", [{"id": f"C{i:08d}", "name": f"c{i}"} for i in range(30)])
    started = stack.api("POST", f"/integrations/{integration}/sync", user=user, body={"action": "fetch_channels"})
    assert started.status == 202, started.text
    log_id = started.json()["data"]["id"]
    _wait(lambda: _sync_done(stack, integration, user, log_id), 30, "the sync run")
    discord_user, discord = connected(stack, "DISCORD")
    assert stack.api("POST", f"/integrations/{discord}/refresh", user=discord_user).status == 200
    after, families = _scrape(stack)

    def moved(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("nexus_oauth_flows_total", provider="SLACK", outcome="started") == 1
    assert moved("nexus_oauth_flows_total", provider="SLACK", outcome="connected") == 1
    assert moved("nexus_delivery_attempts_total", outcome="delivered") == 1
    assert moved("nexus_delivery_emit_to_attempt_seconds_count") == 1
    assert 0 < moved("nexus_delivery_emit_to_attempt_seconds_sum") < 20
    assert moved("nexus_sync_runs_total", action="fetch_channels", outcome="completed") == 1
    assert moved("nexus_token_refreshes_total", provider="DISCORD", outcome="refreshed") == 1
    # The token exchanges, the account look-ups, the channel pages and the refresh went to the emulators.
    assert _sum(after, "nexus_provider_requests_total", provider="SLACK") > _sum(
        before, "nexus_provider_requests_total", provider="SLACK"
    )
    assert moved("nexus_provider_request_duration_seconds_count", provider="DISCORD") >= 2  # exchange and refresh
    assert moved("nexus_http_requests_total", method="POST", route="/integrations/{id}/events", status="202") == 1
    # The emitted event's delivery reached the worker by a claim or, emitted through this daemon, handed at emit.
    assert moved("nexus_webhook_recorded_total") >= 1
    assert moved("nexus_webhook_claimed_total") + moved("nexus_webhook_handed_total") >= 1
    # Read from the database at scrape time (at most once a second: a scrape right after another may be a second old).
    _wait(lambda: _sum(_scrape(stack)[0], "nexus_integrations", provider="SLACK") >= 1, 5, "the integration counted")
    for status in ("PENDING", "RETRYING"):
        assert ("nexus_delivery_queue_depth", (("status", status),)) in after
        assert ("nexus_delivery_queue_oldest_due_age_seconds", (("status", status),)) in after
    # The process and platform collectors.
    assert _value(after, "process_resident_memory_bytes") > 10_000_000
    assert _value(after, "process_open_fds") > 0 and _value(after, "process_cpu_seconds_total") > 0
    assert any(name == "python_info" for name, _ in after)
    # Prometheus' naming: counters' samples end in _total, durations are in seconds, no series is ours twice.
    for family in families:
        if not family.name.startswith("nexus_"):
            continue
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family
        elif family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        else:
            assert not family.name.endswith("_total"), family.name


def test_promtool_checks_the_metrics_cleanly(stack, fresh_emulators):
    """`promtool check metrics` (Debian's prometheus package): the format and Prometheus' lint rules (units,
    _total suffixes, help texts) over a scrape with labelled series in it. PROMTOOL names it when it is not on
    PATH. Without it the test is skipped, and fails instead under CI (CI=true, or NEXUSCTL_TEST_REQUIRE naming
    promtool): .ci/run installs the package."""
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("promtool is required under CI (CI=true) but not installed", pytrace=False)
        require("promtool", "no promtool on PATH (apt-get install --no-install-recommends prometheus)")
    connected(stack, "DISCORD")  # OAuth flows, provider calls and integrations by status, labelled
    assert _value(_scrape(stack)[0], "nexus_oauth_flows_total", provider="DISCORD", outcome="connected") >= 1
    text = stack.api("GET", "/metrics").text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""  # not one lint warning either


def test_each_daemon_answers_its_own_figures(stack, fresh_emulators):
    """Two daemons on one database: the counters are each process's, the gauges read from the database agree."""
    other, process = stack.another_daemon()
    try:
        connected(stack, "DISCORD")  # through the first daemon
        mine, _ = _scrape(stack)
        theirs, _ = _scrape(stack, base=other)
        assert _value(mine, "nexus_oauth_flows_total", provider="DISCORD", outcome="connected") >= 1
        assert _value(theirs, "nexus_oauth_flows_total", provider="DISCORD", outcome="connected") == 0

        def gauges(base=None):
            return {k: v for k, v in _scrape(stack, base)[0].items() if k[0] == "nexus_integrations"}

        # Each daemon reads the database at most once a second (and the health job may move a status meanwhile):
        # the two agree once both have read it since the last change.
        _wait(lambda: gauges() and gauges() == gauges(other), 10, "the same database figures from both daemons")
        assert _value(mine, "process_resident_memory_bytes") and _value(theirs, "process_resident_memory_bytes")
    finally:
        process.terminate()
        process.wait(20)


# --- nexusctl top ----------------------------------------------------------------


def _a_receiver_left_failing(stack) -> tuple[str, str]:
    """A delivery that failed once and waits, due, for a webhook since disabled: RETRYING, its due age growing."""
    user, integration = connected(stack, "SLACK")
    with CallbackSink(500) as sink:
        hook = stack.api(
            "POST",
            "/integrations/webhooks",
            user=user,
            body={"integrationId": integration, "url": sink.url, "events": ["post.*"]},
        )
        assert hook.status == 201, hook.text
        hook_id = hook.json()["data"]["id"]
        _emit(stack, integration, user)
        _wait(lambda: sink.received, 20, "the first attempt")
        paused = stack.api("PATCH", f"/integrations/webhooks/{hook_id}", user=user, body={"isActive": False})
        assert paused.status == 200, paused.text
    _wait(
        lambda: (
            stack.sql(
                "SELECT COUNT(*) FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id "
                "WHERE d.status = 'RETRYING' AND d.webhook_id = %s",
                hook_id,
            )[0][0]
            >= 1
        ),
        20,
        "the failed attempt recorded",
    )
    return hook_id, integration


def _snapshot(stack) -> dict:
    answer = stack.cli("top", "--json")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_top_once_and_json_show_the_real_figures(stack, fresh_emulators):
    hook_id, _ = _a_receiver_left_failing(stack)
    snap = _snapshot(stack)
    retrying = next(q for q in snap["queue"] if q["status"] == "RETRYING")
    assert retrying["depth"] >= 1
    failing = {row["webhookId"]: row for row in snap["failingEndpoints"]}
    assert failing[hook_id]["failures"] >= 1 and failing[hook_id]["host"] == "127.0.0.1"
    assert not failing[hook_id]["active"]
    assert sum(snap["integrations"]["byStatus"].values()) >= 1
    assert {j["name"] for j in snap["jobs"]} == {"token-refresh", "housekeeping", "integration-health"}
    assert any(j["daemon"] == "scheduled" for j in snap["jobs"])  # the stack's daemon runs them
    frame = stack.cli("top", "--once")
    assert frame.returncode == 0, frame.stderr
    text = frame.stdout
    assert "\x1b[" not in text  # a pipe gets plain text
    assert re.search(r"^RETRYING\s+[1-9]\d*\s", text, re.M), text
    # The id whole at 80 columns: the host's "(disabled)" gives way when both do not fit.
    assert re.search(rf"^127\.0\.0\.1 \(disab\S*\s+[1-9]\d*\s.*{hook_id}", text, re.M), text
    assert re.search(r"^integration-health\s+(idle|running)\s", text, re.M), text
    no_tty = subprocess.run(
        [str(NEXUSCTL), "top"], env=stack.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert no_tty.returncode == 2 and "VALIDATION_ERROR" in no_tty.stderr and "--once" in no_tty.stderr


class Tmux:
    """One tmux server of our own (its own socket), a session running a script, the screen read back."""

    def __init__(self, work: Path, env: dict):
        self.socket = f"nexus-top-{uuid.uuid4().hex[:8]}"
        self.work, self.env = work, {**env, "TERM": "xterm-256color"}

    def tmux(self, *args) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout

    def start(self, command: str) -> None:
        script = self.work / f"run-{self.socket}.sh"
        # The tty modes before and after, and the exit code; then the pane stays for us to read. The shell
        # catches SIGINT (Ctrl-C goes to the whole foreground group) so it lives to write them; a caught
        # signal is reset for the command it runs, which gets Ctrl-C as from an interactive shell.
        # Each file appears whole (written aside, then renamed): a reader never sees one half written.
        script.write_text(
            f"trap 'true' INT\nstty -a > {self.work}/stty-before\n{command}\n"
            f"echo $? > {self.work}/exit-code.tmp\nstty -a > {self.work}/stty-after.tmp\n"
            f"mv {self.work}/stty-after.tmp {self.work}/stty-after\n"
            f"mv {self.work}/exit-code.tmp {self.work}/exit-code\nsleep 60\n"
        )
        self.tmux("new-session", "-d", "-s", "top", "-x", "140", "-y", "50", f"sh {shlex.quote(str(script))}")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top")

    def exit_code(self) -> int | None:
        path = self.work / "exit-code"
        return int(path.read_text()) if path.exists() and path.read_text().strip() else None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux(tmp_path, stack):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    session = Tmux(tmp_path, stack.env)
    yield session
    session.close()


def _title_time(screen: str) -> str | None:
    found = re.search(r"nexusctl top\s+(\S+ \S+Z)", screen)
    return found.group(1) if found else None


@pytest.mark.parametrize("key, code", [("q", 0), ("C-c", 130)])
def test_top_live_in_a_terminal_refreshes_and_quits_cleanly(stack, fresh_emulators, tmux, key, code):
    hook_id, _ = _a_receiver_left_failing(stack)
    tmux.start(f"{shlex.quote(str(NEXUSCTL))} top")
    _wait(lambda: "Syncs in progress" in tmux.screen(), 20, "the first frame")
    # Its retry comes due 2 s after the failure, but its webhook is off: the frame counts it, with no due age
    # ("-": nothing that can be sent is waiting).
    _wait(lambda: re.search(r"RETRYING\s+[1-9]\d*\s+-", tmux.screen()), 10, "the queue shown")
    screen = tmux.screen()
    assert tmux.tmux("display", "-p", "-t", "top", "#{alternate_on}").strip() == "1"  # a full-screen view
    assert re.search(r"127\.0\.0\.1 \(disabled\)\s+[1-9]\d*", screen), screen
    assert "integration-health" in screen and "Deliveries:" in screen
    assert max(len(line) for line in screen.splitlines()) <= 140  # sized to the terminal
    first = _title_time(screen)
    _wait(lambda: _title_time(tmux.screen()) not in (None, first), 10, "the next refresh")  # it is live
    tmux.tmux("send-keys", "-t", "top", key)
    _wait(lambda: tmux.exit_code() is not None, 10, f"top to stop on {key}")
    assert tmux.exit_code() == code
    _wait(lambda: (tmux.work / "stty-after").exists(), 10, "the modes after")
    assert (tmux.work / "stty-after").read_text() == (tmux.work / "stty-before").read_text()  # echo, icanon back
    assert tmux.tmux("display", "-p", "-t", "top", "#{alternate_on}").strip() == "0"  # the alternate screen left
    assert "Syncs in progress" not in tmux.screen()


def test_a_switched_off_webhooks_deliveries_do_not_age_the_queue_and_go_once_it_is_on_again(stack, fresh_emulators):
    """Its deliveries stay queued for when it is on again (the worker skips them); counted in the due age, they
    made nexus_delivery_queue_oldest_due_age_seconds and `top`'s figure grow for as long as it was off, and a
    queue-age alert fire all that time. Last in the module: its webhook is on again at the end."""
    hook_id, _ = _a_receiver_left_failing(stack)  # RETRYING, its next try 2 s after the failure; the webhook off
    stack.emulators.advance_clock(600)  # ten minutes on: that try has long been due
    retrying = next(q for q in _snapshot(stack)["queue"] if q["status"] == "RETRYING")
    assert retrying["depth"] >= 1 and retrying["oldestDueSeconds"] is None, retrying  # waiting, but nothing can go

    def scraped():
        samples = _scrape(stack)[0]
        return (
            _value(samples, "nexus_delivery_queue_depth", status="RETRYING"),
            _value(samples, "nexus_delivery_queue_oldest_due_age_seconds", status="RETRYING"),
        )

    # The figures are read from the database at most once a second: the first scrape may be older than the move.
    _wait(lambda: scraped()[0] >= 1 and scraped()[1] == 0, 10, "the queue counted, its due age 0")
    # What happens to those deliveries is unchanged: on again (at a receiver that answers now), they go.
    with CallbackSink(200) as sink:
        on = stack.api(
            "PATCH",
            f"/integrations/webhooks/{hook_id}",
            user=uuid.uuid4(),
            roles=["admin"],
            body={"isActive": True, "url": sink.url},
        )
        assert on.status == 200, on.text
        _wait(lambda: sink.received, 20, "the queued delivery sent once the webhook is on")
        _wait(
            lambda: (
                stack.sql(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = %s AND status = 'DELIVERED'", hook_id
                )[0][0]
                == 1
            ),
            20,
            "the delivery recorded as delivered",
        )
