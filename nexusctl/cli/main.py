"""The `nexusctl` command: global options, sub-apps, and the one error boundary.

Every failure a command raises on purpose is a ``NexusError``; the boundary
prints it as one stderr line with its spec code and exits with the class's
exit code (see ``nexusctl.errors``). Anything else is a bug: one line, the
traceback only with ``-v``, and never local variables (they may hold secrets).
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Annotated

import typer
from typer.core import TyperGroup

from nexusctl import __version__
from nexusctl.cli.context import State, out, state
from nexusctl.cli.output import Output
from nexusctl.errors import NexusError

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a killed writer


class NexusGroup(TyperGroup):
    """The root group: turns exceptions into one line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:
            # Click's usage errors (bad option value, unknown command) become
            # the same one line as ours; showing help for no arguments stays.
            if getattr(exc, "exit_code", 1) != 2 or type(exc).__name__ == "NoArgsIsHelpError":
                raise
            sub = getattr(exc, "ctx", None)
            hint = f" (see `{sub.command_path} -h`)" if sub is not None else ""
            _output(ctx).error(f"VALIDATION_ERROR: {exc.format_message()}{hint}")
            raise typer.Exit(2) from None
        except NexusError as exc:
            _output(ctx).error(f"{exc.code}: {exc.message}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _output(ctx).error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # `nexusctl ... | head`: the reader left; stop quietly like other Unix tools.
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # a bug: say so plainly
            output = _output(ctx)
            if output.verbose:
                output.err.print(traceback.format_exc(), markup=False)
            output.error(
                f"INTERNAL_ERROR: unexpected {type(exc).__name__} "
                "(run again with -v for the traceback, and report it)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()


def _output(ctx) -> Output:
    return ctx.obj.output if isinstance(ctx.obj, State) else Output()


app = typer.Typer(
    cls=NexusGroup,
    name="nexusctl",
    help="Operate the NEXUS integration service: integrations, webhooks, sync logs, the daemon.\n\n"
    "Example:  nexusctl integrations list --provider INSTAGRAM --json",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_nexusctl", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._nexusctl = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # peewee logs every statement with its parameters at DEBUG; those include
    # ciphertexts and ids, so it stays quiet even at -vv.
    logging.getLogger("peewee").setLevel(max(level, logging.INFO))
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.ERROR, "error")
    logging.addLevelName(logging.INFO, "info")
    logging.addLevelName(logging.DEBUG, "debug")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nexusctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour (also NO_COLOR=1 or TERM=dumb).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _configure_logging(verbose, quiet)
    ctx.obj = State(Output(quiet=quiet, verbose=verbose, no_color=no_color))


@app.command("version")
def version_cmd(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the nexusctl version.

    Example:  nexusctl version --json
    """
    import platform

    import peewee

    info = {"version": __version__, "python": platform.python_version(), "peewee": peewee.__version__}
    if as_json:
        out(ctx).json(info)
    else:
        out(ctx).value(f"nexusctl {__version__}")


def _register() -> None:
    from nexusctl.cli import (connections, database, events, health, integrations, jobs, keys, providers, serve,
                              sync, token, webhooks)

    connections.register(integrations.app)
    health.register(integrations.app)
    app.add_typer(integrations.app, name="integrations")
    app.add_typer(providers.app, name="providers")
    app.add_typer(webhooks.app, name="webhooks")
    app.add_typer(events.app, name="events")
    app.add_typer(jobs.app, name="jobs")
    app.add_typer(sync.app, name="sync")
    app.add_typer(database.app, name="db")
    app.add_typer(keys.app, name="keys")
    app.add_typer(token.app, name="token")
    serve.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="nexusctl")


__all__ = ["app", "main", "state"]
