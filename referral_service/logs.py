"""Logging for every SPIS process: one line per event with the ids attached to it, and an access
log that never records query strings (a search for `identifier=...|<NHS number>` must not put the
number in a log file).

Exception messages never reach a log: a driver error can quote a row, a parser the value it
refused. A traceback is printed as each exception's class and its frames (file, line, function),
which tell an operator where it happened and nothing about the data."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

# No format here names a record's source line, thread or process: not looking them up on every
# record (the access log writes one per request) saves about a fifth of what logging costs.
logging._srcfile = None  # the documented switch for the caller lookup
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False


class SecondCache(logging.Formatter):
    """`asctime` as logging writes it (`2026-11-29 13:40:01,123`), the date and time formatted
    once a second rather than for every record."""

    _cached: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, text = self._cached
        if second != cached_second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._cached = (second, text)  # one assignment: threads never see half of it
        msec_format = self.default_msec_format
        return msec_format % (text, record.msecs) if msec_format else text


class WithIds(SecondCache):
    """Appends the `extra={...}` fields (ids, counts, error types: never payloads) as key=value,
    and prints tracebacks without messages."""

    def format(self, record: logging.LogRecord) -> str:
        # Never reuse a traceback text that another formatter rendered with the message in it.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The ids on the event's own line, before any traceback. Only SPIS's own records: other
        libraries attach whatever they like (Celery: a task's arguments)."""
        line = super().formatMessage(record)
        if record.name != "spis" and not record.name.startswith("spis."):
            return line
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        return line + "".join(f" {k}={v}" for k, v in sorted(extras.items()))

    def formatException(self, ei: Any) -> str:
        error = ei[1] if isinstance(ei, tuple) else None
        return frames_only(error, ei[2]) if isinstance(error, BaseException) else ""


def frames_only(error: BaseException, tb: Any = None) -> str:
    """A traceback without values: for each exception of the chain (causes first, as Python prints
    them) its frames and its class, never its message or arguments."""
    chain = list(_chain(error))
    parts: list[str] = []
    for link in reversed(chain):
        frames = _frames(tb if link is error and tb is not None else link.__traceback__)
        parts.append(
            "\n".join(["Traceback (message withheld):", *frames, f"{error_class(link)}: ..."])
        )
    return "\n\nwhich led to:\n".join(parts)


def error_class(error: BaseException) -> str:
    module, name = type(error).__module__, type(error).__qualname__
    return name if module == "builtins" else f"{module}.{name}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _frames(tb: TracebackType | Any | None) -> list[str]:
    """Walked by hand: Celery hands over billiard's picklable stand-ins for traceback objects."""
    lines = []
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    return lines


class TaskFailureWithoutValues(logging.Filter):
    """Celery's task failure (and retry) records quote the exception's repr, the traceback text
    and the task's arguments: keep the class name and the task's name and id only. The traceback,
    if any, is in `exc_info`, which WithIds prints without values."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = record.args
        if isinstance(context, Mapping) and "exc" in context:
            record.args = {
                **context,
                "exc": str(context["exc"]).split("(", 1)[0],
                "traceback": "",
                "args": "(withheld)",
                "kwargs": "(withheld)",
            }
        return True


class PathOnly(logging.Filter):
    """uvicorn's access records carry the full path with its query string: keep the path, and
    not even all of that for a web set-up link, whose token lets whoever has it choose a
    person's password."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            if path.startswith(SETUP_LINK_PREFIX):
                path = f"{SETUP_LINK_PREFIX}…"
            record.args = (*args[:2], path, *args[3:])
        return True


SETUP_LINK_PREFIX = "/setup/"


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "path_only": {"()": "referral_service.logs.PathOnly"},
        "task_failure": {"()": "referral_service.logs.TaskFailureWithoutValues"},
    },
    "formatters": {
        "spis": {
            "()": "referral_service.logs.WithIds",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "access": {
            "()": "referral_service.logs.SecondCache",
            "format": '%(asctime)s ACCESS %(client_addr)s "%(request_line)s" %(status_code)s',
        },
        "access_plain": {
            "()": "referral_service.logs.SecondCache",
            "format": "%(asctime)s ACCESS %(message)s",
        },
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "spis",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access_plain",
            "filters": ["path_only"],
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "spis": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "celery.app.trace": {"filters": ["task_failure"]},
    },
    # Everything else (Celery's own lines in a worker, libraries' warnings) in the same format.
    "root": {"handlers": ["default"], "level": "WARNING"},
}
