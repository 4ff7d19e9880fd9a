"""The `nexusctl` command: global options, sub-apps, and the one error boundary.

Every failure a command raises on purpose is a ``NexusError``; the boundary
prints it as one stderr line with its spec code and exits with the class's
exit code (see ``nexusctl.errors``). Anything else is a bug: one line, the
traceback only with ``-v``, and never local variables (they may hold secrets).
"""

import copy
import functools
import importlib
import os
import platform
import sys
import traceback
from typing import Annotated

import peewee
import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group

from nexusctl import __version__
from nexusctl.cli import doctor, serve, top
from nexusctl.cli.context import State, out, state
from nexusctl.cli.options import (
    NO_COLOR_HELP,
    QUIET_HELP,
    VERBOSE_HELP,
    add_global_options,
    configure_logging,
    show_flags_without_a_type,
)
from nexusctl.cli.output import Output
from nexusctl.errors import NexusError

show_flags_without_a_type()

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a killed writer


class NexusGroup(TyperGroup):
    """The root group: turns exceptions into one line and an exit code."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Typer builds the click tree anew for each run; this is its last step.
        for command in self.commands.values():
            add_global_options(command)
        self.commands = LazyCommands(
            self.commands,
            {name: functools.partial(_load_group, name) for name in LAZY_GROUPS if name not in self.commands},
        )

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
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # a bug: say so plainly (but a database gone midway is an outage)
            output = _output(ctx)
            lost = _database_unavailable(ctx, exc)
            if lost is not None:
                output.error(f"{lost.code}: {lost.message}")
                raise typer.Exit(lost.exit_code) from None
            if output.verbose:
                output.err.print(traceback.format_exc(), markup=False)
            output.error(
                f"INTERNAL_ERROR: unexpected {type(exc).__name__} (run again with -v for the traceback, and report it)"
            )
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            if isinstance(ctx.obj, State):
                ctx.obj.close()


# Groups imported and built only when used: `nexusctl integrations list` loads the
# integrations module and nothing of webhooks, events, sync... (see tests/test_startup.py).
LAZY_GROUPS = {
    "integrations": "nexusctl.cli.integrations",
    "providers": "nexusctl.cli.providers",
    "webhooks": "nexusctl.cli.webhooks",
    "events": "nexusctl.cli.events",
    "jobs": "nexusctl.cli.jobs",
    "sync": "nexusctl.cli.sync",
    "db": "nexusctl.cli.database",
    "keys": "nexusctl.cli.keys",
    "token": "nexusctl.cli.token",
}


def _load_group(name: str):
    """Build group ``name``; each of its commands is built when used (all of them for help)."""
    sub_app = importlib.import_module(LAZY_GROUPS[name]).app
    # Typer builds every command of a group at once (signatures, annotations, options):
    # `integrations list` would pay for the eleven commands it does not run.
    shell = copy.copy(sub_app)
    shell.registered_commands = []
    group = get_group(shell)
    group.name = name
    add_global_options(group)
    nested = dict(group.commands)  # sub-groups, after the commands as typer orders them
    group.commands = LazyCommands(
        {},
        {
            info.name or get_command_name(info.callback.__name__): functools.partial(_build_command, sub_app, info)
            for info in sub_app.registered_commands
        },
    )
    group.commands.update(nested)
    return group


def _build_command(sub_app: typer.Typer, info):
    command = get_command_from_info(
        info, pretty_exceptions_short=sub_app.pretty_exceptions_short, rich_markup_mode=sub_app.rich_markup_mode
    )
    add_global_options(command)
    return command


class LazyCommands(dict):
    """A group's commands where some are built on first access (by name, or when iterated)."""

    def __init__(self, built: dict, lazy: dict) -> None:
        super().__init__(built)
        self._lazy = lazy
        for name in lazy:
            dict.__setitem__(self, name, None)  # the name is listed (help, completion) before it is built

    def _load(self, name):
        value = dict.__getitem__(self, name)
        if value is None and name in self._lazy:
            value = self._lazy.pop(name)()
            dict.__setitem__(self, name, value)
        return value

    def __getitem__(self, name):
        return self._load(name)

    def get(self, name, default=None):
        return self._load(name) if name in self else default

    def values(self):
        return [self._load(name) for name in self]

    def items(self):
        return [(name, self._load(name)) for name in self]


def _database_unavailable(ctx, exc: Exception):
    """DATABASE_UNAVAILABLE (exit 4) for a driver error that says the database went away or stayed locked in the
    middle of a command (PostgreSQL stopped, a connection lost; SQLite's "database is locked" after its wait), as
    when it is down before the command starts; None for any other error. Only once the command opened it."""
    st = ctx.obj
    if not isinstance(st, State) or st._database is None:
        return None
    # start-up: loaded only on an error
    from nexusctl.db.database import unavailable

    return unavailable(exc, st.settings.redacted_database_url())


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


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nexusctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help=VERBOSE_HELP)] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help=NO_COLOR_HELP)] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    configure_logging(verbose, quiet)
    ctx.obj = State(Output(quiet=quiet, verbose=verbose, no_color=no_color))


@app.command("version")
def version_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Print the nexusctl version.

    Example:  nexusctl version --json
    """
    info = {"version": __version__, "python": platform.python_version(), "peewee": peewee.__version__}
    if as_json:
        out(ctx).json(info)
    else:
        out(ctx).value(f"nexusctl {__version__}")


def _register() -> None:
    """Commands built with the root; the groups come from LAZY_GROUPS when used."""
    serve.register(app)
    doctor.register(app)
    top.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="nexusctl")


__all__ = ["app", "main", "state"]
