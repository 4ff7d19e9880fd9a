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
import sys
import threading
import time

# What Logger._log passes for the caller's place when logging looks it up nowhere (logging._srcfile is None, as
# the daemon sets it: none of its formatters writes a file or a line).
UNKNOWN_FILE = "(unknown file)"
UNKNOWN_FUNCTION = "(unknown function)"
TEMPLATES_KEPT = 1024  # threads come and go (a pool's): the templates of those gone are dropped now and then

# By (logger, level, source file, function, thread, process): the record's unchanging attributes.
_TEMPLATES: dict[tuple, dict] = {}
_new_record = object.__new__
# Python 3.13 makes a record's times from time.time_ns() (and logging's start in ns); before, from time.time().
_NS_TIMES = sys.version_info >= (3, 13)


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
    template = _TEMPLATES.get(key)
    # A thread's id is reused by a later thread, and a thread can be renamed: the name is checked where records
    # carry it (logging.logThreads; the daemon turns it off).
    if template is None or (template["threadName"] is not None and template["threadName"] != _thread_name()):
        if len(_TEMPLATES) >= TEMPLATES_KEPT:
            _TEMPLATES.clear()
        template = _TEMPLATES[key] = dict(
            logging.LogRecord(logger.name, level, pathname, 0, msg, (), None, func).__dict__
        )
    made = _new_record(logging.LogRecord)
    attributes = made.__dict__
    attributes.update(template)
    if _NS_TIMES:
        now_ns = time.time_ns()
        attributes["created"] = now_ns / 1e9
        attributes["msecs"] = (now_ns % 1_000_000_000) // 1_000_000 + 0.0
        attributes["relativeCreated"] = (now_ns - logging._startTime) / 1e6
    else:
        attributes["created"] = created = time.time()
        attributes["msecs"] = int((created - int(created)) * 1000) + 0.0
        attributes["relativeCreated"] = (created - logging._startTime) * 1000
    if "taskName" in attributes:  # Python 3.12+: the asyncio task logging
        attributes["taskName"] = _task_name()
    attributes["msg"] = msg
    attributes["args"] = args
    if fields:
        attributes.update(fields)
    return made


def _thread_name() -> str:
    return threading.current_thread().name


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
