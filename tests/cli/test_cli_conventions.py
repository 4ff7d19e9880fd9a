"""The CLI's conventions (STYLE.md, clig.dev), checked on the whole command tree.

The walk starts at the root, so a command added later is held to the same rules
without a line here: its help ends with an example, it has --json (or says here
why not), a destructive one has --yes and --dry-run, and -q/-v/--no-color work
after it as they do before it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from nexusctl.cli.main import app

# Commands with no data to print, and why. Everything else has --json.
NO_JSON = {
    "daemon": "a server: it logs, it prints no data",
}
# Destructive: `delete` (and its synonyms, which are not allowed as names anyway) or listed here.
DESTRUCTIVE_VERBS = {"delete", "purge"}
DESTRUCTIVE = set()
# One verb per meaning across groups: these names are spelled list/show/delete/add/create instead.
SYNONYMS = {"ls", "get", "describe", "info", "rm", "remove", "del", "new", "logs"}
GLOBAL = {"--quiet", "-q", "--verbose", "-v", "--no-color"}


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:  # hidden ones are old names of a visible command (same function)
            yield from _walk(sub, path + (name,))


ROOT = get_command(app)
EVERYTHING = list(_walk(ROOT))
LEAVES = [(path, cmd) for path, cmd in EVERYTHING if not hasattr(cmd, "commands")]
GROUPS = [(path, cmd) for path, cmd in EVERYTHING if hasattr(cmd, "commands")]


def _name(path) -> str:
    return " ".join(path) or "nexusctl"


def _flags(command) -> set[str]:
    return {
        opt for param in command.params for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])
    }


def test_the_tree_is_walked():
    names = {_name(p) for p, _ in LEAVES}
    assert {"integrations list", "webhooks replay", "sync list", "keys rotate", "token mint", "daemon"} <= names
    assert len(GROUPS) >= 10 and len(LEAVES) >= 35


def test_every_help_ends_with_an_example():
    missing = []
    for path, command in EVERYTHING:
        lines = [line.strip() for line in (command.help or "").strip().splitlines() if line.strip()]
        if not lines or not lines[-1].startswith("Example:"):
            missing.append(_name(path))
    assert missing == []


def test_every_example_names_its_own_command():
    wrong = []
    for path, command in LEAVES:
        example = (command.help or "").strip().splitlines()[-1]
        if f"nexusctl {_name(path)}" not in example:
            wrong.append(_name(path))
    assert wrong == []


def test_every_command_prints_json_on_request():
    missing = [_name(p) for p, c in LEAVES if "--json" not in _flags(c) and _name(p) not in NO_JSON]
    assert missing == []
    assert set(NO_JSON) <= {_name(p) for p, _ in LEAVES}  # no stale exemption


def test_destructive_commands_confirm_and_preview():
    destructive = [(p, c) for p, c in LEAVES if p[-1] in DESTRUCTIVE_VERBS or _name(p) in DESTRUCTIVE]
    assert {"integrations delete", "webhooks delete"} <= {_name(p) for p, _ in destructive}
    lacking = [_name(p) for p, c in destructive if not {"--yes", "-y", "--dry-run"} <= _flags(c)]
    assert lacking == []


def test_groups_use_the_same_verbs():
    synonyms = [_name(p) for p, _ in LEAVES if p[-1] in SYNONYMS]
    assert synonyms == []
    # A group that shows one thing lists them too.
    for path, group in GROUPS:
        if "show" in group.commands:
            assert "list" in group.commands, _name(path)


def test_global_options_exist_at_every_level():
    lacking = [_name(p) for p, c in EVERYTHING if not GLOBAL <= _flags(c)]
    assert lacking == []


@pytest.mark.parametrize("path", [p for p, _ in EVERYTHING if p], ids=_name)
def test_global_options_parse_after_each_group_and_command(path):
    # click parses every option before --help acts: an unknown -q or -v would fail here.
    result = CliRunner().invoke(app, [*path, "-q", "-vv", "--no-color", "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Example:" in result.stdout


@pytest.mark.parametrize("path", [p for p, _ in EVERYTHING], ids=_name)
def test_help_shows_flags_without_a_value_placeholder(path):
    """`--json`, `--yes`, `-v` take no value: `--json <bool>` or `-v <int>` would read as if they did."""
    result = CliRunner().invoke(app, [*path, "--help"], catch_exceptions=False, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert not re.search(r"--verbose\s+-v\s+<", result.stdout), result.stdout


def test_the_readme_says_where_help_puts_the_example():
    """The README's claim matches the layout: the example follows the description, the options come after."""
    shown = CliRunner().invoke(app, ["integrations", "list", "--help"], env={"COLUMNS": "120"}).stdout
    assert shown.index("Example:") < shown.index("Options")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "Every `--help` shows an example right after the description, before the options." in readme
    assert "`--help` ends with an example" not in readme


def test_quiet_after_the_subcommand_silences_stderr(cli, make_integration):
    user = uuid.uuid4()
    for _ in range(2):
        make_integration(user_id=user)
    listing = ["integrations", "list", "--user", user, "--limit", 1, "--json"]
    loud = cli(*listing)
    assert loud.exit_code == 0 and "more: add --cursor" in loud.stderr
    for args in ([*listing, "-q"], ["-q", *listing], ["integrations", "-q", *listing[1:]]):
        quiet = cli(*args)
        assert quiet.exit_code == 0, quiet.output
        assert quiet.stderr == "" and len(json.loads(quiet.stdout)) == 1


@pytest.mark.parametrize(
    "args, level",
    [
        (["providers", "list", "--json"], logging.WARNING),
        (["providers", "list", "--json", "-v"], logging.INFO),
        (["providers", "list", "--json", "-vv"], logging.DEBUG),
        (["providers", "-v", "list", "--json", "-v"], logging.DEBUG),  # counts add up across levels
        (["-v", "providers", "list", "--json", "-q"], logging.ERROR),  # quiet wins
    ],
)
def test_verbose_after_the_subcommand_sets_the_log_level(cli, args, level):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 20
    assert logging.getLogger().level == level


def test_old_command_names_still_work(cli, make_integration):
    row = make_integration()
    old, new = cli("sync", "logs", row.id, "--json"), cli("sync", "list", row.id, "--json")
    assert old.exit_code == new.exit_code == 0 and json.loads(old.stdout) == json.loads(new.stdout) == []
    assert "logs" in ROOT.commands["sync"].commands and ROOT.commands["sync"].commands["logs"].hidden
