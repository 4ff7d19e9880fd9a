"""`nexusctl doctor`: check the configuration and everything it points at, one line per check."""

import os

import typer

from nexusctl.cli.context import out
from nexusctl.cli.options import Json
from nexusctl.errors import ChecksFailed

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Check configuration, database and migrations, Redis, the encryption key, providers, URLs, the daemon's port.

    One line per check (ok, warn or fail) with how to fix what is not ok.
    Exit 7 (CHECKS_FAILED) if any check fails; warnings alone exit 0.
    Never prints a secret.

    Example:  nexusctl doctor --json
    """
    # start-up: rich loads only for terminal output
    from rich.text import Text

    from nexusctl.core.doctor_services import diagnose
    from nexusctl.core.readiness import WARN

    findings = diagnose(os.environ)
    output = out(ctx)
    if as_json:
        output.json([{"check": f.name, "status": f.outcome, "detail": f.message, "hint": f.hint} for f in findings])
    else:
        width = max(len(f.name) for f in findings)
        for finding in findings:
            line = Text(f"{finding.outcome:<4}  ", style=_STYLE[finding.outcome])
            line.append(f"{finding.name:<{width}}  {finding.message}")
            if finding.hint:
                line.append(f" -> {finding.hint}", style="dim")
            if output.stdout_is_terminal:
                output.out.print(line, soft_wrap=True)
            else:
                output.value(line.plain)
    failed = [f.name for f in findings if f.failed]
    warned = sum(1 for f in findings if f.outcome == WARN)
    if failed:
        raise ChecksFailed(f"{len(failed)} check(s) failed: {', '.join(dict.fromkeys(failed))}")
    output.info("all checks passed" + (f" ({warned} warning(s))" if warned else ""))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
