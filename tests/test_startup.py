"""Read commands start fast: they must not import the server, scheduler, Redis or OpenTelemetry."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from typer.main import get_command
from nexusctl.cli.main import app
root = get_command(app)
try:
    root.main(["integrations", "list", "--json"], standalone_mode=False)
except SystemExit:
    pass
group = dict.__getitem__(root.commands, "integrations")
built = sorted(name for name, command in dict.items(group.commands) if command is not None)
# (pydantic is not listed: typer 0.29 imports it to convert parameters; the daemon's API models stay out.)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "apscheduler", "redis", "opentelemetry")
               or m.startswith(("nexusctl.daemon", "nexusctl.providers.sync", "nexusctl.providers.http")))
other_groups = sorted(m for m in sys.modules if m.startswith("nexusctl.cli.") and m.rsplit(".", 1)[1] in (
    "webhooks", "events", "jobs", "sync", "database", "keys", "token", "providers"))
unneeded = sorted(m for m in sys.modules \
if m in ("asyncio", "webbrowser", "rich.console", "rich.table", "cryptography"))
print(json.dumps([heavy, other_groups, unneeded, built]), file=sys.stderr)
"""


def test_integrations_list_imports_no_server_scheduler_or_redis(db_url):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == []  # the command itself ran against the test database
    heavy, other_groups, unneeded, built = json.loads(result.stderr.strip().splitlines()[-1])
    assert heavy == []
    assert other_groups == []  # groups are imported when used (nexusctl.cli.main.LAZY_GROUPS)
    assert unneeded == []  # --json on a pipe needs no rich, no event loop, no cipher (nothing is decrypted)
    assert built == ["list"]  # of the group's commands, only the one run was built


# --- The console script (nexusctl.cli.entry) --------------------------------


def _imported_by(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -m nexusctl ARGS` (the console script's path) and list every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nexusctl", *args], capture_output=True, text=True, timeout=60
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result, modules


def test_the_console_script_reads_sqlite_without_loading_the_postgres_driver(db_url):
    result, modules = _imported_by(["integrations", "list", "--json"])
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert "nexusctl.core.integrations" in modules  # the probe sees the command's imports
    if db_url.startswith("sqlite"):
        # (the refused `import psycopg2` itself is listed too, taking microseconds)
        assert not {m for m in modules if m.startswith("psycopg2.") or m in ("ssl", "_ssl")}
    else:
        assert "psycopg2._psycopg" in modules  # a PostgreSQL process imports peewee as it is


def test_postgres_in_a_process_started_for_sqlite_is_a_clear_config_error():
    probe = (
        "import sys; sys.modules['psycopg2'] = None\n"
        "from nexusctl.db.database import open_database\n"
        "from nexusctl.errors import ConfigError\n"
        "try:\n    open_database('postgresql://postgres@127.0.0.1:5432/test')\n"
        "except ConfigError as exc:\n    print(exc.code, exc.message)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("CONFIG_ERROR DATABASE_URL: PostgreSQL needs psycopg2"), result.stderr


def test_the_console_script_exits_with_the_commands_code_and_all_its_output(db_url, tmp_path):
    """It leaves without the interpreter's teardown: nothing written may be lost on the way."""
    many = [sys.executable, "-m", "nexusctl", "providers", "list", "--json"]
    with open(tmp_path / "out.json", "w") as sink:
        done = subprocess.run(many, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0
    assert len(json.loads((tmp_path / "out.json").read_text())) == 20  # the whole document, flushed

    usage = subprocess.run(
        [sys.executable, "-m", "nexusctl", "integrations", "show", "nope"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and usage.stderr.startswith("error: VALIDATION_ERROR")


def test_command_signatures_hold_objects_not_strings():
    """Typer eval()s every string annotation of every command it builds: under
    `from __future__ import annotations` that was a fifth of a read command's own start."""
    import importlib
    import inspect

    from nexusctl.cli.main import LAZY_GROUPS, app
    from nexusctl.cli.options import _global_options_template

    apps = [app, *(importlib.import_module(module).app for module in LAZY_GROUPS.values())]
    functions = [_global_options_template]
    while apps:
        typer_app = apps.pop()
        functions += [info.callback for info in typer_app.registered_commands]
        if typer_app.registered_callback:
            functions.append(typer_app.registered_callback.callback)
        apps += [group.typer_instance for group in typer_app.registered_groups]
    assert len(functions) > 40
    stringly = [
        f"{fn.__module__}.{fn.__name__}"
        for fn in functions
        if any(isinstance(a, str) for a in inspect.get_annotations(fn).values())
    ]
    assert stringly == []
