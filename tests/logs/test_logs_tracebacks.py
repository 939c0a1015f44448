"""Tracebacks in any SPIS process's log keep their frames and classes, never their messages
(issue 7, item 35): uvicorn's "Exception in ASGI application", Celery's task failures, and a
record another formatter rendered first."""

from __future__ import annotations

import logging

from billiard.einfo import ExceptionInfo

from referral_service.logs import LOG_CONFIG, TaskFailureWithoutValues, WithIds

MARKER = "Okafor-9434765919"
FORMATTER = WithIds(LOG_CONFIG["formatters"]["spis"]["format"])


def failing() -> None:
    try:
        {}[MARKER]
    except KeyError as exc:
        raise RuntimeError(f"could not read {MARKER}") from exc


def record_of_failure(name: str, message: str, args: object = ()) -> logging.LogRecord:
    try:
        failing()
    except RuntimeError as exc:
        error = exc
    return logging.LogRecord(
        name, logging.ERROR, __file__, 1, message, args, (RuntimeError, error, error.__traceback__)
    )


def test_uvicorn_error_records_print_frames_and_classes_only() -> None:
    record = record_of_failure("uvicorn.error", "Exception in ASGI application")

    text = FORMATTER.format(record)

    assert text.splitlines()[0].endswith("ERROR uvicorn.error Exception in ASGI application")
    assert "KeyError: ..." in text
    assert "RuntimeError: ..." in text
    assert text.index("KeyError") < text.index("RuntimeError")  # causes first, as Python does
    assert f'{__file__}", line 19, in failing' in text
    assert MARKER not in text


def test_a_traceback_another_formatter_rendered_is_not_reused() -> None:
    record = record_of_failure("uvicorn.error", "Exception in ASGI application")
    logging.Formatter().format(record)  # caches record.exc_text, message included
    assert MARKER in (record.exc_text or "")

    assert MARKER not in FORMATTER.format(record)


def test_celery_task_failure_records_keep_the_class_and_drop_message_and_arguments() -> None:
    try:
        failing()
    except RuntimeError:
        einfo = ExceptionInfo()
    einfo.exception = einfo.exception.exc  # as Celery's trace does before it logs
    context = {
        "hostname": "celery@host", "id": "task-1", "name": "spis.sweep_broker_sla",
        "exc": repr(einfo.exception), "traceback": einfo.traceback,
        "args": f"['{MARKER}']", "kwargs": "{}", "description": "raised unexpected",
        "internal": False,
    }  # fmt: skip
    record = logging.LogRecord(
        "celery.app.trace", logging.ERROR, __file__, 1,
        "Task %(name)s[%(id)s] %(description)s: %(exc)s", (context,), einfo.exc_info,
    )  # fmt: skip
    record.data = context  # Celery passes it again as `extra`

    assert TaskFailureWithoutValues().filter(record)
    text = FORMATTER.format(record)

    first = text.splitlines()[0]
    assert first.endswith("Task spis.sweep_broker_sla[task-1] raised unexpected: RuntimeError")
    assert "test_logs_tracebacks.py" in text  # the frames
    assert MARKER not in text
