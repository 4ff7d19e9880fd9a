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

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (line breaks to some viewers).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


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
