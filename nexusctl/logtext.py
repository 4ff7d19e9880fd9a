"""The text log format: one record, one line, whatever the logged values hold.

A logged value can come from a caller (a request path, percent-decoded, so
``%0a`` is a real newline; an error a provider sent): written as is, it could
end the line and start a forged one, or move the terminal's cursor with an
escape sequence. Control characters are written as ``\\xNN`` escapes instead,
as the JSON format (json.dumps) already does.
"""

from __future__ import annotations

import logging
import re

# The bidirectional formatting characters: the Arabic letter mark, the left-to-right and right-to-left
# marks, the embeddings and overrides (U+202A-U+202E) and the isolates (U+2066-U+2069). Shown, they
# reorder the text after them, so a name or URL reads other than it is ("\u202e" makes "gnp.exe" read
# "exe.png"; Trojan Source, CVE-2021-42574).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Every character nexusctl treats as a control, as the content of a regex class: the C0 controls, and
# beyond them DEL, the C1 controls, the Unicode line and paragraph separators (line breaks to some
# viewers) and the bidi controls. The names a caller gives refuse them (core.storable); the CLI
# (cli.output.printable) and the text log escape them: one list, so what is refused and what is escaped
# agree. (Those that keep some C0 controls, tab or newline, take CONTROLS_BEYOND_C0 with their own C0 part.)
CONTROLS_BEYOND_C0 = "\x7f-\x9f\u2028\u2029" + BIDI_CONTROLS
CONTROLS = "\x00-\x1f" + CONTROLS_BEYOND_C0
_CONTROL = re.compile(f"[{CONTROLS}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{CONTROLS_BEYOND_C0}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    return _CONTROL.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """``logging.Formatter`` whose lines carry no control character.

    A traceback keeps its own line breaks (it is ours, and read as a block); anything else it holds is escaped.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = escape_control(super().formatMessage(record))
        trace_id = getattr(record, "trace_id", None)  # set while traces are on (nexusctl.daemon.traces)
        return f"{text} trace_id={trace_id}" if trace_id else text

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return _CONTROL_BUT_NEWLINE.sub(_escape, super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _CONTROL_BUT_NEWLINE.sub(_escape, super().formatStack(stack_info))
