"""The README's promises: its commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2
    assert "nexusctl daemon" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    assert _setup_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_every_command_help_has_an_example():
    from typer.main import get_command

    from nexusctl.cli.main import app

    def walk(command, path):
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, path + [name])
        else:
            yield path, command

    missing = [" ".join(p) for p, c in walk(get_command(app), []) if "Example:" not in (c.help or "")]
    assert not missing, f"commands without an example in --help: {missing}"


def test_every_setting_is_documented_in_the_readme():
    from nexusctl import config
    from nexusctl.enums import Provider

    text = (ROOT / "README.md").read_text()
    general = [n for n in config.variable_names() if not any(n.startswith(p.value + "_") for p in Provider)]
    assert [n for n in general if f"`{n}`" not in text] == []


def test_no_merge_conflict_markers_are_left_in_the_repository():
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (an sdist): look at the docs and sources directly
        files = [
            str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.suffix in (".py", ".md") and ".venv" not in p.parts
        ]
    marked = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".txt", "") or not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                marked.append(name)
                break
    assert marked == []
