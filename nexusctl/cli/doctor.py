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
    from rich.text import Text

    from nexusctl.core.doctor import FAIL, WARN
    from nexusctl.core.doctor_services import diagnose

    findings = diagnose(os.environ)
    output = out(ctx)
    if as_json:
        output.json([f.to_dict() for f in findings])
    else:
        width = max(len(f.check) for f in findings)
        for finding in findings:
            line = Text(f"{finding.status:<4}  ", style=_STYLE[finding.status])
            line.append(f"{finding.check:<{width}}  {finding.detail}")
            if finding.hint:
                line.append(f" -> {finding.hint}", style="dim")
            if output.stdout_is_terminal:
                output.out.print(line, soft_wrap=True)
            else:
                output.value(line.plain)
    failed = [f.check for f in findings if f.status == FAIL]
    warned = sum(1 for f in findings if f.status == WARN)
    if failed:
        raise ChecksFailed(f"{len(failed)} check(s) failed: {', '.join(dict.fromkeys(failed))}")
    output.info("all checks passed" + (f" ({warned} warning(s))" if warned else ""))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
