"""Text the databases can store: no NUL character, valid Unicode; numbers JSON can carry.

PostgreSQL refuses U+0000 in text and jsonb, and no database can encode a lone
surrogate ("\\ud800" is valid JSON, but not UTF-8). Such input reached the
database and came back as a 500 (found by tests/fault/test_api_fuzz.py), so
JSON input is checked where it enters: the API bodies, the CLI's JSON flags
and the platform events. Python's json.loads also accepts NaN, Infinity and
-Infinity (not JSON) and reads 1e999 as inf: no database column or JSON answer
can hold those (they were 500s), so they are refused here too.
"""

from __future__ import annotations

import math
import re

from nexusctl.errors import UsageProblem
from nexusctl.logtext import CONTROLS

# C0 and C1 controls, DEL, the Unicode line and paragraph separators and the bidi controls (logtext.CONTROLS):
# what a terminal acts on (ESC starts a sequence that can retitle the window or clear the screen) rather
# than shows, or what reorders the text shown after it (U+202E).
_CONTROL = re.compile(f"[{CONTROLS}]")
MAX_DEPTH = 64  # deeper than any metadata we expect; a bound keeps the walk cheap and the stack safe


def check_storable(value, field: str) -> None:
    """Raise UsageProblem naming ``field`` if any string in ``value`` (keys included) cannot be stored."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, field)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UsageProblem(
                f"{field} contains a number JSON cannot carry (NaN, Infinity or out of range, such as 1e999)",
                field=field,
            )
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise UsageProblem(f"{field} is nested deeper than {MAX_DEPTH} levels", field=field)
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key, field)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)


def _check_text(text: str, field: str) -> None:
    if "\x00" in text:
        raise UsageProblem(f"{field} contains a NUL character (\\u0000), which cannot be stored", field=field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageProblem(
            f"{field} contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode", field=field
        ) from None


def check_one_line(text: str, field: str) -> None:
    """Refuse a control character in ``text``, a name or URL shown on one line: printed as is, ESC and its
    sequences would act on the reader's terminal (retitle it, clear it, move the cursor)."""
    found = _CONTROL.search(text)
    if found:
        raise UsageProblem(
            f"{field} contains a control character (\\u{ord(found.group()):04x}) at position {found.start()}:"
            " give printable text on one line",
            field=field,
        )
