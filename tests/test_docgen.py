"""completions/ and man/ are what `python -m nexusctl.cli.docgen` generates from the command tree today.

- A fresh run into a temporary directory equals the checked-in files (else:
  the test names the command to run).
- Every man page renders with groff's warnings on, and `man -l` shows every
  command, every option, every exit code and every setting.
- roff escaping: leading dots and quotes, hyphens, backslashes, non-ASCII.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nexusctl.cli import docgen, manpage
from nexusctl.cli.doctree import command_tree, parse_help

ROOT = Path(__file__).resolve().parents[1]
FIX = "run `python -m nexusctl.cli.docgen` and commit completions/, man/ and README.md"


def _generate(into: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nexusctl.cli.docgen", "--root", str(into), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def _tree_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in ("completions", "man")
        if (root / d).is_dir()
        for p in sorted((root / d).iterdir())
    }


def test_checked_in_completions_and_man_pages_are_current(tmp_path):
    result = _generate(tmp_path)
    assert result.returncode == 0, result.stderr
    fresh, checked_in = _tree_files(tmp_path), _tree_files(ROOT)
    assert set(fresh) == set(checked_in), f"files differ: {sorted(set(fresh) ^ set(checked_in))}; {FIX}"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert stale == [], f"stale: {stale}; {FIX}"
    assert (tmp_path / "README.md").read_text() == (ROOT / "README.md").read_text(), (
        "README's configuration table is not the settings table's; " + FIX
    )


def test_readme_and_man_page_list_each_setting_with_its_default_from_the_settings_table():
    from nexusctl.config_table import TABLE, Family, Variable

    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "man" / "nexusctl.1").read_text().split(".SH ENVIRONMENT", 1)[1].split(".SH FILES", 1)[0]
    for entry in TABLE:
        if isinstance(entry, Variable):
            assert f"| `{entry.name}` | {entry.default_text()} | {entry.help} |" in readme, entry.name
            assert f"\\fB{manpage.esc(entry.name)}\\fR" in page, entry.name
        else:
            assert isinstance(entry, Family)
            for names, default, meaning in entry.docs:
                assert f"| {names} | {default} | {meaning} |" in readme, names


def test_check_names_a_stale_file_and_the_command_and_a_run_repairs_it(tmp_path):
    for directory in ("completions", "man"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert _generate(tmp_path, "--check").returncode == 0
    page = tmp_path / "man" / "nexusctl-db.1"
    page.write_text(page.read_text().replace("migrate", "migrat"))
    (tmp_path / "man" / "nexusctl-gone.1").write_text(".TH GONE 1\n")  # a group that no longer exists
    check = _generate(tmp_path, "--check")
    assert check.returncode == 1
    assert "stale: man/nexusctl-db.1" in check.stderr and "stale: man/nexusctl-gone.1" in check.stderr
    assert "python -m nexusctl.cli.docgen" in check.stderr
    assert _generate(tmp_path).returncode == 0
    assert _generate(tmp_path, "--check").returncode == 0
    assert not (tmp_path / "man" / "nexusctl-gone.1").exists()


def test_generation_is_deterministic_and_dated_by_version_only():
    from nexusctl import __version__

    first, second = docgen.render(), docgen.render()
    assert first == second
    for name, text in first.items():
        if name.startswith("man/"):
            th = next(line for line in text.splitlines() if line.startswith(".TH "))
            assert f'"nexusctl {__version__}"' in th and '""' in th, th  # empty date field


# --- rendering -------------------------------------------------------------

needs_groff = pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
needs_man = pytest.mark.skipif(not shutil.which("man"), reason="man is not installed")
PAGES = sorted((ROOT / "man").glob("*.1"))


@needs_groff
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_renders_without_a_groff_warning(page):
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def _rendered(page: Path) -> str:
    env = {**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "", "LANG": "C.UTF-8"}
    result = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


@needs_man
def test_man_shows_every_command_and_option():
    pages = {page.name: _rendered(page) for page in PAGES}
    root = command_tree()
    for command in root.walk():
        if command is root:
            continue
        group = command.path[1]
        page = "nexusctl.1" if len(command.path) == 2 and not command.is_group else f"nexusctl-{group}.1"
        assert command.name in pages["nexusctl.1"], command.name  # nexusctl(1) lists every command
        assert command.name in pages[page], (command.name, page)
        for param in command.params:
            for name in param.names + param.off_names:
                assert name in pages[page], (command.name, name)
        for example in command.examples:
            assert example in pages[page], example  # copied examples stay runnable: - and ' are ASCII
    for sections in pages.values():
        assert "\u2212" not in sections and "\u2019" not in sections


@needs_man
def test_nexusctl_1_has_exit_status_and_environment_from_the_code():
    from nexusctl import config, errors
    from nexusctl.enums import Provider

    text = _rendered(ROOT / "man" / "nexusctl.1")
    for heading in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "EXAMPLES",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SEE ALSO",
    ):
        assert f"\n{heading}\n" in text, heading
    exit_status = text.split("\nEXIT STATUS\n", 1)[1].split("\nENVIRONMENT\n", 1)[0]
    for cls in errors.all_error_classes():
        if cls not in (errors.NexusError, errors.NotFound):
            assert cls.code in exit_status and f"\n       {cls.exit_code} " in exit_status, cls.code
    environment = text.split("\nENVIRONMENT\n", 1)[1].split("\nFILES\n", 1)[0]
    general = [n for n in config.variable_names() if not any(n.startswith(p.value + "_") for p in Provider)]
    assert [n for n in general if n not in environment] == []
    assert "<PROVIDER>_CLIENT_ID" in environment


# --- escaping and help parsing -------------------------------------------------


def test_roff_escaping():
    assert manpage.esc("--dry-run") == "\\-\\-dry\\-run"
    assert manpage.esc("C:\\path") == "C:\\epath"
    assert manpage.esc("it's `x`") == "it\\(aqs \\(gax\\(ga"
    assert manpage.esc("≤ 4 KB …") == "\\[u2264] 4 KB \\[u2026]"
    assert manpage.text(".hidden request") == "\\&.hidden request"
    assert manpage.text("'also a request") == "\\(aqalso a request"  # no leading quote left to misread
    assert manpage.inline("run `nexusctl db migrate`") == "run \\fBnexusctl db migrate\\fR"
    assert manpage.text("see [the spec](https://example.com)") == "see the spec"


def test_a_help_text_starting_with_a_dot_cannot_become_a_request():
    from nexusctl.cli.doctree import CommandDoc, Param

    command = CommandDoc(
        ("nexusctl", "x"),
        ".so /etc/passwd",
        [".ex paragraph"],
        [".  example"],
        [Param(("--opt",), (), "OPT", ".TH fake")],
    )
    lines = manpage._command_section(command)
    assert not any(line.startswith((".so", ".ex", ".TH")) for line in lines)


def test_parse_help_splits_summary_paragraphs_and_examples():
    summary, paragraphs, examples = parse_help(
        "Do a thing\nacross two lines.\n\n\b\nMore words.\n\nExample:  nexusctl x --y\n  nexusctl x --z\n"
    )
    assert summary == "Do a thing across two lines."
    assert paragraphs == ["More words."]
    assert examples == ["nexusctl x --y", "nexusctl x --z"]
