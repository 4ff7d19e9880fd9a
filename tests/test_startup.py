"""Read commands start fast: they must not import the server, scheduler or Redis."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from typer.main import get_command
from nexusctl.cli.main import app
try:
    get_command(app).main(["integrations", "list", "--json"], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "apscheduler", "redis", "daemon"))
other_groups = sorted(m for m in sys.modules if m.startswith("nexusctl.cli.") and m.rsplit(".", 1)[1] in (
    "webhooks", "events", "jobs", "sync", "database", "keys", "token", "providers"))
unneeded = sorted(m for m in sys.modules if m in ("asyncio", "webbrowser", "rich.console", "rich.table", "cryptography"))
print(json.dumps([heavy, other_groups, unneeded]), file=sys.stderr)
"""


def test_integrations_list_imports_no_server_scheduler_or_redis(db_url):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == []  # the command itself ran against the test database
    heavy, other_groups, unneeded = json.loads(result.stderr.strip().splitlines()[-1])
    assert heavy == []
    assert other_groups == []  # groups are imported when used (nexusctl.cli.main.LAZY_GROUPS)
    assert unneeded == []  # --json on a pipe needs no rich, no event loop, no cipher (nothing is decrypted)
