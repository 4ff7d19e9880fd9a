"""`python -m tests.emulators`, as the README's tour and a user run it by hand.

It must print everything a tour of each provider needs (not only the OAuth
clients), and its emulators hold records, so a sync after connecting reads
something instead of 0 items.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEXUSCTL = Path(sys.executable).parent / "nexusctl"
USER = str(uuid.uuid4())


@pytest.fixture
def running(clean_env, tmp_path):
    """Start the emulators as `python -m tests.emulators > emulators.env`; returns its exports as a dict."""

    def start(*args):
        out = tmp_path / "emulators.env"
        with out.open("w") as stdout:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.emulators", *args],
                cwd=ROOT,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        started.append(proc)
        # It flushes every export line, then says where it serves on stderr.
        assert "provider emulators on http://" in proc.stderr.readline()
        exports = {}
        for line in out.read_text().splitlines():
            match = re.fullmatch(r"export ([A-Z0-9_]+)=(.*)", line)
            assert match, line
            exports[match[1]] = shlex.split(match[2])[0]
        return exports

    started: list[subprocess.Popen] = []
    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        proc.stderr.close()


def _cli(*args, env):
    return subprocess.run([str(NEXUSCTL), *args], capture_output=True, text=True, env=env, timeout=120)


def test_it_prints_what_each_providers_tour_needs(running):
    exports = running()
    for name in (
        "SENDGRID_API_KEY",
        "WOOCOMMERCE_STORE_URL",
        "GOOGLE_ADS_DEVELOPER_TOKEN",
        "DISCORD_BOT_TOKEN",
        "SHOPIFY_SHOP",
        "SLACK_CLIENT_ID",
        "STRIPE_TOKEN_URL",
    ):
        assert exports.get(name), name
    assert exports["SENDGRID_API_KEY"].startswith("SG.")
    # The store URL is the emulated store: its key-granting page answers there (WordPress's error page
    # for a request without the app's parameters).
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(exports["WOOCOMMERCE_STORE_URL"] + "/wc-auth/v1/authorize", timeout=10)
    assert refused.value.code == 401 and b"Error: " in refused.value.read()


def _synced(env, integration_id) -> list[dict]:
    run = _cli("sync", "run", integration_id, "--json", env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_manual_sync_after_connecting_reads_records(running, sqlite_url, tmp_path):
    exports = running()
    env = {**os.environ, **exports, "DATABASE_URL": sqlite_url, "NEXUS_DATA_DIR": str(tmp_path / "data")}
    key_file = tmp_path / "key.txt"
    key_file.write_text(exports["SENDGRID_API_KEY"])
    added = _cli("integrations", "add", "SENDGRID", "--user", USER, "--api-key-file", str(key_file), "--json", env=env)
    assert added.returncode == 0, added.stderr
    runs = _synced(env, json.loads(added.stdout)["id"])
    assert {r["action"] for r in runs} == {"fetch_lists", "fetch_campaigns"}
    assert all(r["status"] == "COMPLETED" and r["itemsProcessed"] > 0 for r in runs), runs


def test_empty_keeps_every_list_empty(running, sqlite_url, tmp_path):
    exports = running("--empty")
    env = {**os.environ, **exports, "DATABASE_URL": sqlite_url, "NEXUS_DATA_DIR": str(tmp_path / "data")}
    key_file = tmp_path / "key.txt"
    key_file.write_text(exports["SENDGRID_API_KEY"])
    added = _cli("integrations", "add", "SENDGRID", "--user", USER, "--api-key-file", str(key_file), "--json", env=env)
    assert added.returncode == 0, added.stderr
    assert [r["itemsProcessed"] for r in _synced(env, json.loads(added.stdout)["id"])] == [0, 0]
