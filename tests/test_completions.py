"""The checked-in completion scripts complete for real.

bash: the script is sourced into a real bash, which is driven as readline
would (COMP_WORDS, COMP_CWORD, then the registered function). zsh and fish
scripts call `nexusctl` with the protocol their text names; that call is made
here exactly as written, and when the shell is installed, the shell runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPLETIONS = ROOT / "completions"
BIN = Path(sys.executable).parent  # where `nexusctl` is installed


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _bash_complete(line: str) -> list[str]:
    """Complete `line` (the cursor at its end) in bash with the checked-in script."""
    script = f"""
        source {COMPLETIONS / "nexusctl.bash"}
        spec=$(complete -p nexusctl) || exit 3
        read -ra COMP_WORDS <<< "$LINE"
        [[ "$LINE" == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        COMP_LINE="$LINE"; COMP_POINT=${{#LINE}}
        func=$(sed -E 's/.* -F ([^ ]+) .*/\\1/' <<< "$spec")
        "$func" nexusctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={**_env(), "LINE": line},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


needs_bash = pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")


@needs_bash
@pytest.mark.parametrize(
    "line, expected",
    [
        ("nexusctl integ", ["integrations"]),
        ("nexusctl integrations list --pro", ["--provider"]),
        ("nexusctl integrations list --provider INS", ["INSTAGRAM"]),
        ("nexusctl sync logs 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status FA", ["FAILED"]),
        ("nexusctl do", ["doctor"]),
        ("nexusctl webhooks rot", ["rotate-secret"]),
        # Arguments and options that take a value from a known list complete it:
        ("nexusctl providers show S", ["SALESFORCE", "SHOPIFY", "SENDGRID", "STRIPE", "SLACK"]),
        ("nexusctl integrations connect INS", ["INSTAGRAM"]),
        ("nexusctl jobs run h", ["housekeeping"]),
        ("nexusctl jobs show token", ["token-refresh"]),
        ("nexusctl webhooks deliveries 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status F", ["FAILED"]),
        ("nexusctl webhooks replay 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status RE", ["RETRYING"]),
        ("nexusctl events list --type integration.c", ["integration.connected"]),
        ("nexusctl events tail --type webhook.", ["webhook.*", "webhook.delivered", "webhook.failed"]),
        ("nexusctl webhooks create -e media.", ["media.*", "media.created", "media.deleted", "media.updated"]),
        ("nexusctl webhooks create -e webhook", []),  # never delivered to a webhook: not offered
        ("nexusctl events ingest user", ["user.deleted"]),
        ("nexusctl integrations health --status healthy,b", ["healthy,broken"]),
    ],
)
def test_bash_completes(line, expected):
    assert _bash_complete(line) == expected


@needs_bash
def test_bash_completes_every_delivery_status_and_job():
    from nexusctl.core import job_runs
    from nexusctl.enums import DeliveryStatus

    statuses = _bash_complete("nexusctl webhooks deliveries 0b7f5d2c-8a41-4c4e-b2a7-3f9e1d6c5a10 --status ")
    assert sorted(statuses) == sorted(s.value for s in DeliveryStatus)
    jobs = _bash_complete("nexusctl jobs run ")
    assert sorted(jobs) == sorted((job_runs.TOKEN_REFRESH, job_runs.HOUSEKEEPING, job_runs.INTEGRATION_HEALTH))


@needs_bash
def test_bash_lists_every_group_after_the_program_name():
    from nexusctl.cli.doctree import command_tree

    words = _bash_complete("nexusctl ")
    assert [c.path[-1] for c in command_tree().subcommands] == [w for w in words if not w.startswith("-")]


def _protocol_call(script: str, args: str, **extra: str) -> subprocess.CompletedProcess:
    """Run `nexusctl` with the environment the shell script sets: VAR=value pairs taken from its text."""
    variables = dict(re.findall(r"(_NEXUSCTL_COMPLETE|_TYPER_COMPLETE_FISH_ACTION)=([a-z_-]+)", script))
    env = {**_env(), **variables, "_TYPER_COMPLETE_ARGS": args, **extra}
    return subprocess.run(["nexusctl"], env=env, capture_output=True, text=True, timeout=60)


def test_zsh_script_calls_nexusctl_with_a_protocol_it_answers():
    script = (COMPLETIONS / "nexusctl.zsh").read_text()
    assert script.splitlines()[0] == "#compdef nexusctl"  # first line, for an fpath install
    assert "compdef _nexusctl_completion nexusctl" in script
    assert '_TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _NEXUSCTL_COMPLETE=complete_zsh nexusctl' in script
    answer = _protocol_call(script, "nexusctl integ").stdout
    assert answer.startswith("_arguments '*: :((") and '"integrations":"Connected integrations' in answer
    assert '"--provider"' in _protocol_call(script, "nexusctl integrations list --pro").stdout
    assert '"INSTAGRAM"' in _protocol_call(script, "nexusctl integrations list --provider INS").stdout


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed: only the script's protocol is tested")
def test_zsh_parses_the_script():
    result = subprocess.run(["zsh", "-n", str(COMPLETIONS / "nexusctl.zsh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_fish_script_calls_nexusctl_with_a_protocol_it_answers():
    script = (COMPLETIONS / "nexusctl.fish").read_text()
    assert "complete --command nexusctl --no-files" in script
    assert "_TYPER_COMPLETE_ARGS=(commandline -cp) nexusctl" in script
    get_args = dict(_TYPER_COMPLETE_FISH_ACTION="get-args")
    lines = _protocol_call(script, "nexusctl integ", **get_args).stdout.splitlines()
    assert lines and lines[0].split("\t")[0] == "integrations"
    assert _protocol_call(script, "nexusctl integrations list --pro", **get_args).stdout.startswith("--provider\t")
    assert _protocol_call(script, "nexusctl integrations list --provider INS", **get_args).stdout.split() == [
        "INSTAGRAM"
    ]
    assert _protocol_call(script, "nexusctl integ", _TYPER_COMPLETE_FISH_ACTION="is-args").returncode == 0


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed: only the script's protocol is tested")
def test_fish_completes():
    command = f"source {COMPLETIONS / 'nexusctl.fish'}; complete -C 'nexusctl integrations list --pro'"
    result = subprocess.run(["fish", "--no-config", "-c", command], env=_env(), capture_output=True, text=True)
    assert result.stdout.split("\t")[0] == "--provider", result.stderr
