"""Logging for every SPIS process: one line per event with the ids attached to it, and an access
log that never records query strings (a search for `identifier=...|<NHS number>` must not put the
number in a log file)."""

from __future__ import annotations

import logging
from typing import Any

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class WithIds(logging.Formatter):
    """Appends the `extra={...}` fields (ids, counts, error types: never payloads) as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        return line + "".join(f" {k}={v}" for k, v in sorted(extras.items()))


class PathOnly(logging.Filter):
    """uvicorn's access records carry the full path with its query string: keep the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"path_only": {"()": "referral_service.logs.PathOnly"}},
    "formatters": {
        "spis": {
            "()": "referral_service.logs.WithIds",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "access": {
            "format": '%(asctime)s ACCESS %(client_addr)s "%(request_line)s" %(status_code)s'
        },
        "access_plain": {"format": "%(asctime)s ACCESS %(message)s"},
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
    },
}
