"""Log records made for a third of ``Logger.makeRecord``'s CPU, for the lines the daemon writes per operation.

``LogRecord.__init__`` works out per call what never changes for a given line: the level's name, the source
file's name and module, the thread's and the process's names. ``record`` copies those from a record made once
per (logger, level, source, thread, process) and reads only the time again. A record factory of someone
else's (``logging.setLogRecordFactory``, as OpenTelemetry's logging instrumentation sets) makes every record
itself, as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

# What Logger._log passes for the caller's place when logging looks it up nowhere (logging._srcfile is None, as
# the daemon sets it: none of its formatters writes a file or a line).
UNKNOWN_FILE = "(unknown file)"
UNKNOWN_FUNCTION = "(unknown function)"
TEMPLATES_KEPT = 1024  # threads come and go (a pool's): the templates of those gone are dropped now and then

# By (logger, level, source file, function, thread, process): the record's unchanging attributes, and when logging
# started (in seconds: a record's relativeCreated counts from it).
_TEMPLATES: dict[tuple, tuple[dict, float]] = {}
_new_record = object.__new__


def record(
    logger: logging.Logger,
    level: int,
    msg: str,
    args: tuple,
    fields: dict | None = None,
    *,
    pathname: str = UNKNOWN_FILE,
    func: str | None = UNKNOWN_FUNCTION,
) -> logging.LogRecord:
    """The record ``logger.makeRecord(logger.name, level, pathname, 0, msg, args, None, func, fields)`` makes."""
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return logger.makeRecord(logger.name, level, pathname, 0, msg, args, None, func, fields)
    key = (logger.name, level, pathname, func, threading.get_ident(), os.getpid())
    found = _TEMPLATES.get(key)
    if found is None:
        made = logging.LogRecord(logger.name, level, pathname, 0, msg, (), None, func)
        if len(_TEMPLATES) >= TEMPLATES_KEPT:
            _TEMPLATES.clear()
        found = _TEMPLATES[key] = (dict(made.__dict__), made.created - made.relativeCreated / 1000)
    template, started = found
    now_ns = time.time_ns()
    made = _new_record(logging.LogRecord)
    attributes = made.__dict__
    attributes.update(template)
    attributes["created"] = created = now_ns / 1e9
    attributes["msecs"] = (now_ns % 1_000_000_000) // 1_000_000 + 0.0
    attributes["relativeCreated"] = (created - started) * 1000
    if "taskName" in attributes:  # Python 3.12+: the asyncio task logging
        attributes["taskName"] = _task_name()
    attributes["msg"] = msg
    attributes["args"] = args
    if fields:
        attributes.update(fields)
    return made


def info(logger: logging.Logger, msg: str, *args) -> None:
    """``logger.info(msg, *args)``, its record made by ``record`` where logging looks up no caller's place."""
    if not logger.isEnabledFor(logging.INFO):
        return
    if logging._srcfile is not None:  # the caller's file and line are wanted (the CLI): logging's own way
        logger.info(msg, *args, stacklevel=2)
        return
    logger.handle(record(logger, logging.INFO, msg, args))


def _task_name() -> str | None:
    if not getattr(logging, "logAsyncioTasks", False):
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    return task.get_name() if task is not None else None
