"""Unexpected failures: a request id on every answer, and logs that never hold a patient's values.

Each request gets an id, sent back as ``X-Request-ID``, written on each of its log lines
(:mod:`calculator.logs`) and shown on any 5xx page or API error, so a user can quote it and the
operator can find the lines about it. A proxy's well-formed ``X-Request-ID`` is kept, so its log
and ours join on one id; otherwise the id is random. That line
names the request (method and path, never the query string, which can carry patient fields) and
the failure (exception types and the stack, file:line in function), but not exception messages:
a message such as ``could not convert '37.2'`` would put a patient's value into the log.
"""
from __future__ import annotations

import re
import secrets
import traceback

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
#: An incoming request id is kept only in this shape: 8 to 64 letters, digits and ``._:-``
#: (a UUID, a hex token, nginx's $request_id); anything else is replaced by a new id.
WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


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
    """The current request's id (``"-"`` outside a request).

    The incoming ``X-Request-ID`` when it is well-formed (:data:`WELL_FORMED_REQUEST_ID`), else
    16 random hex digits. An id is a correlation handle, not a secret and not proof of anything.
    """
    if not has_request_context():
        return "-"
    if "request_id" not in g:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = (incoming if WELL_FORMED_REQUEST_ID.fullmatch(incoming)
                        else secrets.token_hex(8))
    return g.request_id


def init_app(app: Flask) -> None:
    """Give every request an id (see :func:`request_id`) and send it back in ``X-Request-ID``."""
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
