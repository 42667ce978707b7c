"""Unexpected failures: a request id on every answer, and logs that never hold a patient's values.

Each request gets a random id, sent back as ``X-Request-ID`` and shown on any 5xx page or API
error, so a user can quote it and the operator can find the one log line about it. That line
names the request (method and path, never the query string, which can carry patient fields) and
the failure (exception types and the stack, file:line in function), but not exception messages:
a message such as ``could not convert '37.2'`` would put a patient's value into the log.
"""
from __future__ import annotations

import secrets
import traceback

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"


class CalculatorFlask(Flask):
    """Flask with :meth:`log_exception` replaced by a log line without exception messages."""

    def log_exception(self, exc_info) -> None:
        """Log an unhandled exception with its request id, without its message (see module)."""
        _type, error, _traceback = exc_info
        where = (f"{request.method} {request.path}" if has_request_context() else "outside a "
                 "request")
        self.logger.error("request %s failed: %s (%s)\n%s", request_id(), where,
                     " <- ".join(_exception_chain(error)), _stack(error))


def _exception_chain(error: BaseException | None) -> list[str]:
    names = []
    while error is not None and len(names) < 10:
        names.append(f"{type(error).__module__}.{type(error).__qualname__}")
        error = error.__cause__ or error.__context__
    return names


def _stack(error: BaseException | None) -> str:
    if error is None or error.__traceback__ is None:
        return "  (no stack)"
    frames = traceback.extract_tb(error.__traceback__)
    return "\n".join(f"  {frame.filename}:{frame.lineno} in {frame.name}" for frame in frames)


def request_id() -> str:
    """The current request's id (``"-"`` outside a request)."""
    if not has_request_context():
        return "-"
    if "request_id" not in g:
        g.request_id = secrets.token_hex(8)
    return g.request_id


def init_app(app: Flask) -> None:
    """Give every request an id and send it back in ``X-Request-ID``.

    A client's own ``X-Request-ID`` is not trusted (ids must be unique and plain) and not used.
    """
    app.before_request(_assign_request_id)
    app.after_request(_send_request_id)
    app.context_processor(lambda: {"request_id": request_id()})


def _assign_request_id() -> None:
    request_id()  # returns None: a before_request function that returned a value would answer


def _send_request_id(response):
    response.headers[REQUEST_ID_HEADER] = request_id()
    return response


def server_error_message() -> str:
    """What a user is told about an unexpected failure: nothing internal, and the request id."""
    return (f"the server failed to answer this request; nothing was stored. If it happens "
            f"again, quote reference {request_id()} to the service's operator")
