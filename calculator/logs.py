"""The server's log lines: text or JSON (``CART_RISK_LOG_FORMAT``), each with its request id.

One line per request (``request``: endpoint name, status, duration; never the path's query or a
body), the app's warnings and failures (:mod:`calculator.failures`), and gunicorn's own lines
(:class:`calculator.server.CalculatorLogger`) share one format, so a log pipeline parses a single
shape. Every line carries ``request_id``: the request's id (:func:`calculator.failures.request_id`,
an incoming well-formed ``X-Request-ID`` or a new one), ``"-"`` outside a request.

No field holds a patient value: the request line names the Flask endpoint (``api.predict``), not
the URL, and exception messages are never written (only their types, see
:mod:`calculator.failures`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime, timezone

from model.errors import ConfigurationError

FORMAT_VARIABLE = "CART_RISK_LOG_FORMAT"
LEVEL_VARIABLE = "CART_RISK_LOG_LEVEL"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] [request %(request_id)s] %(message)s"
#: Fields a request line adds to the record (``extra=``); all are names or numbers, never values.
REQUEST_FIELDS = ("method", "endpoint", "status", "duration_ms")
_MARK = "_cart_risk_handler"


def log_format() -> str:
    """``$CART_RISK_LOG_FORMAT`` (``text`` when unset or empty).

    Raises
    ------
    ConfigurationError
        For any other value than ``text`` or ``json``.
    """
    value = os.environ.get(FORMAT_VARIABLE, "").strip().lower() or "text"
    if value not in FORMATS:
        raise ConfigurationError(f"{FORMAT_VARIABLE} must be one of {', '.join(FORMATS)} "
                                 f"(got {value!r})")
    return value


def log_level() -> int:
    """``$CART_RISK_LOG_LEVEL`` as a :mod:`logging` level (``info`` when unset or empty).

    Raises
    ------
    ConfigurationError
        For a value other than debug, info, warning or error.
    """
    value = os.environ.get(LEVEL_VARIABLE, "").strip().lower() or "info"
    if value not in LEVELS:
        raise ConfigurationError(f"{LEVEL_VARIABLE} must be one of {', '.join(LEVELS)} "
                                 f"(got {value!r})")
    return getattr(logging, value.upper())


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            from calculator.failures import request_id

            record.request_id = request_id()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, pid, request_id, message.

    A request line adds method, endpoint, status and duration_ms. An exception attached to a
    record is written as its type only: messages can quote a patient's value.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                 .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "pid": record.process, "request_id": getattr(record, "request_id", "-"),
                 "message": record.getMessage()}
        for name in REQUEST_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__qualname__
        return json.dumps(entry, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`; like :class:`JSONFormatter`, an exception's message is left out."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, exc_info) -> str:  # noqa: N802 (logging's name)
        return f"({exc_info[0].__qualname__})" if exc_info and exc_info[0] else ""


def formatter() -> logging.Formatter:
    """The formatter :func:`log_format` names."""
    return JSONFormatter() if log_format() == "json" else TextFormatter()


def stderr_handler() -> logging.Handler:
    """A handler writing to stderr in the configured format, with request ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(RequestIdFilter())
    setattr(handler, _MARK, True)
    return handler


def notice(text: str) -> None:
    """Print one line to stderr in the configured format (outside any request)."""
    if log_format() == "json":
        record = logging.LogRecord("calculator", logging.INFO, __file__, 0, text, None, None)
        record.request_id = "-"
        text = JSONFormatter().format(record)
    print(text, file=sys.stderr, flush=True)


def init_app(app) -> None:
    """Give ``app.logger`` the configured format and level, and log one line per request.

    Replaces Flask's default handler (its lines have no request id); building several apps in one
    process (tests) keeps one handler.

    Raises
    ------
    ConfigurationError
        A bad ``CART_RISK_LOG_FORMAT`` or ``CART_RISK_LOG_LEVEL``: the app is not built.
    """
    from flask.logging import default_handler

    handler, level = stderr_handler(), log_level()
    logger = app.logger
    logger.removeHandler(default_handler)
    for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    from flask import g

    g.request_started = time.perf_counter()


def _log_request(response):
    from flask import current_app, g, request

    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    endpoint = request.endpoint or "unmatched"
    current_app.logger.info("request %s %s %s", request.method, endpoint,
                            response.status_code,
                            extra={"method": request.method, "endpoint": endpoint,
                                   "status": response.status_code, "duration_ms": duration_ms})
    return response
