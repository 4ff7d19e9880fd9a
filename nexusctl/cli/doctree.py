"""The command tree as documentation: every command, its help, arguments and options.

Read from the same click objects `--help` renders, so the man pages can
only say what the CLI does. Help texts follow one convention (a summary
line, paragraphs, and `Example:` lines last); ``parse_help`` splits them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typer import _click  # typer vendors click: these are the objects `--help` walks
from typer.main import get_command

from nexusctl.cli.main import app

PROG = "nexusctl"


@dataclass(frozen=True)
class Param:
    names: tuple[str, ...]  # ("-u", "--user"); an argument's is its metavar ("INTEGRATION_ID")
    off_names: tuple[str, ...]  # ("--inactive",) for an --active/--inactive switch
    metavar: str | None  # None: a flag without a value
    help: str  # as `--help` shows it, with [default: ...] and ranges
    is_argument: bool = False
    required: bool = False
    many: bool = False


@dataclass
class CommandDoc:
    path: tuple[str, ...]  # ("nexusctl", "integrations", "list")
    summary: str
    paragraphs: list[str]  # the rest of the help text, before the examples
    examples: list[str]
    params: list[Param]
    subcommands: list["CommandDoc"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def is_group(self) -> bool:
        return bool(self.subcommands)

    def usage(self) -> list[str]:
        """The synopsis words after the command path."""
        words = ["[OPTIONS]"] if any(not p.is_argument for p in self.params) else []
        if self.is_group:
            return words + ["COMMAND", "[ARGS]..."]
        for p in (p for p in self.params if p.is_argument):
            word = p.names[0] + ("..." if p.many else "")
            words.append(word if p.required else f"[{word}]")
        return words

    def walk(self):
        yield self
        for sub in self.subcommands:
            yield from sub.walk()


def parse_help(text: str | None) -> tuple[str, list[str], list[str]]:
    """(summary, paragraphs, examples) of a docstring-style help text."""
    lines = [line.rstrip() for line in (text or "").splitlines() if line.strip() != "\b"]
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(current)
            current = []
    summary, rest, examples = "", [], []
    for index, paragraph in enumerate(paragraphs):
        first = paragraph[0]
        if first.startswith(("Example:", "Examples:")):
            paragraph = [first.split(":", 1)[1].strip(), *paragraph[1:]]
            examples += [line for line in paragraph if line]
        elif index == 0:
            summary = " ".join(paragraph)
        else:
            rest.append(" ".join(paragraph))
    return summary, rest, examples


def _param(param, ctx) -> Param | None:
    if getattr(param, "hidden", False) or param.name == "help" and ctx.parent is not None:
        return None  # -h/--help is on every command: said once, on nexusctl(1)
    record = param.get_help_record(ctx)
    help_text = record[1] if record else ""
    if param.param_type_name == "argument":
        metavar = (param.metavar or param.name or "ARG").upper()
        help_text = help_text.replace("[required]", "").strip()
        return Param((metavar,), (), metavar, help_text, True, param.required, param.nargs == -1)
    takes_value = not (param.is_flag or param.count)
    metavar = (param.metavar or param.name.upper()) if takes_value else None
    return Param(
        tuple(sorted(param.opts, key=len)),
        tuple(param.secondary_opts),
        metavar,
        help_text,
        required=param.required,
        many=param.multiple,
    )


def _doc(command, name: str, parent) -> CommandDoc:
    ctx = _click.Context(command, info_name=name, parent=parent)
    summary, paragraphs, examples = parse_help(command.help)
    params = [p for p in (_param(p, ctx) for p in command.get_params(ctx)) if p is not None]
    doc = CommandDoc(tuple(ctx.command_path.split()), summary, paragraphs, examples, params)
    if hasattr(command, "list_commands"):  # a group
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                doc.subcommands.append(_doc(sub, sub_name, ctx))
    return doc


def command_tree() -> CommandDoc:
    """The whole `nexusctl` tree, in the order `--help` lists it."""
    return _doc(get_command(app), PROG, None)
