"""How gunicorn serves the calculator: slow clients cannot starve it, and its logs hold no patient.

``cart-risk serve`` applies :func:`gunicorn_settings`; ``gunicorn -c python:calculator.server
calculator.wsgi:app`` reads the same settings from this module's top-level names.

- **Threads, and idle connections cost none** (:class:`CalculatorWorker`, gunicorn's ``gthread``
  worker): a new connection waits in the worker's poller, not in a thread, until its first bytes
  arrive, and is closed after :data:`IDLE_SECONDS` if none do. Kept-alive connections wait there
  too. A sync worker would be blocked by one silent connection until its 30 s timeout.
- **Every request has a deadline** (:class:`DeadlineSocket`): its request line, headers and body
  must arrive within :data:`REQUEST_SECONDS` in all, however the bytes trickle in; then the
  connection is closed. A client that sends half a request therefore holds one of
  :data:`THREADS` threads for at most that long. More simultaneous slow clients than threads
  need a buffering reverse proxy in front (SECURITY.md).
- **Malformed requests** that gunicorn refuses before the app sees them (bad request line,
  headers too long, URI too long, unsupported transfer coding, broken chunks) are answered by
  :meth:`CalculatorWorker.handle_error` with the app's security headers, JSON in the API's error
  shape under the paths whose errors the app answers in JSON (``/api/``, ``/cds-services``,
  ``/fhir/``, ``/healthz``), and a log line naming only the error's type: gunicorn's own handler
  would log the request target (which can carry patient fields) and answer without headers.
- **Logs** (:class:`CalculatorLogger`): any query string is cut from every line, and
  exceptions are logged as types and stack frames without their messages; lines are text or JSON
  as the app's (``CART_RISK_LOG_FORMAT``, :mod:`calculator.logs`).
- **Metrics** (``CART_RISK_METRICS=1``): the master prepares the directory the workers count
  into before they start, marks each exited worker's files, and removes a temporary directory
  at exit (:mod:`calculator.metrics`).
"""
from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import sys
import time
from functools import partial

from gunicorn import glogging
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

#: Threads of each worker: simultaneous requests being read or answered.
THREADS = 4
#: A connection that sends nothing for this long (new or kept alive) is closed (seconds).
IDLE_SECONDS = 5
#: A request's line, headers and body must all arrive within this time (seconds).
REQUEST_SECONDS = 10.0
#: Any one write of an answer may wait this long for a slow reader (seconds).
WRITE_SECONDS = 30.0

#: gunicorn errors answered with a status other than 400.
_STATUS = {http_errors.LimitRequestLine: (414, "URI Too Long"),
           http_errors.LimitRequestHeaders: (431, "Request Header Fields Too Large"),
           http_errors.UnsupportedTransferCoding: (501, "Not Implemented"),
           http_errors.ExpectationFailed: (417, "Expectation Failed"),
           http_errors.ForbiddenProxyRequest: (403, "Forbidden")}
_QUERY = re.compile(r"\?[^\s'\"]*")


def gunicorn_settings(workers: int) -> dict:
    """The gunicorn settings of ``cart-risk serve`` (and of this module as a config file)."""
    return {"workers": workers, "worker_class": "calculator.server.CalculatorWorker",
            "threads": THREADS, "keepalive": IDLE_SECONDS,
            "logger_class": "calculator.server.CalculatorLogger",
            "accesslog": None,  # a second line of defence for patient values (SECURITY.md)
            "on_starting": on_starting, "child_exit": child_exit, "on_exit": on_exit}


def on_starting(server) -> None:
    """Master, before any worker: the metrics directory (a no-op when metrics are off)."""
    from calculator.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir()


def child_exit(server, worker) -> None:
    """Master, after a worker exited: its metrics files stop counting as live."""
    from calculator.metrics import worker_exited

    worker_exited(server, worker)


def on_exit(server) -> None:
    """Master, at shutdown: remove the temporary metrics directory it made."""
    from calculator.metrics import server_exited

    server_exited(server)


# gunicorn -c python:calculator.server reads these names.
worker_class = "calculator.server.CalculatorWorker"
threads = THREADS
keepalive = IDLE_SECONDS
logger_class = "calculator.server.CalculatorLogger"
accesslog = None  # as above
control_socket_disable = True  # gunicorn >= 25: no control socket in ~/.gunicorn


class DeadlineSocket(socket.socket):
    """A connection whose reads share one deadline per request.

    gunicorn switches a connection to blocking mode at the start of each request
    (``setblocking(True)``); here that arms a deadline of :data:`REQUEST_SECONDS`, and every read
    until the next request waits at most for what is left of it. A read past the deadline
    resets the connection (gunicorn closes it quietly). Writes wait at most
    :data:`WRITE_SECONDS` each.
    """

    deadline: float | None = None

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.deadline = time.monotonic() + REQUEST_SECONDS
            self.settimeout(REQUEST_SECONDS)
        else:
            self.deadline = None
            super().setblocking(False)

    def _wait_for_read(self) -> None:
        if self.deadline is None:
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionResetError(errno.ECONNRESET, "request not received in time")
        self.settimeout(remaining)

    def _receive(self, read, *args):
        self._wait_for_read()
        try:
            return read(*args)
        except TimeoutError:
            raise ConnectionResetError(errno.ECONNRESET, "request not received in time") from None

    def recv(self, *args):
        return self._receive(super().recv, *args)

    def recv_into(self, *args):
        return self._receive(super().recv_into, *args)

    def _for_write(self) -> None:
        if self.deadline is not None:
            self.settimeout(WRITE_SECONDS)

    def send(self, *args):
        self._for_write()
        return super().send(*args)

    def sendall(self, *args):
        self._for_write()
        return super().sendall(*args)

    def sendfile(self, *args, **kwargs):
        self._for_write()
        return super().sendfile(*args, **kwargs)


class CalculatorWorker(ThreadWorker):
    """gunicorn's threaded worker, hardened against slow clients (see the module docstring)."""

    def accept(self, listener):
        """Accept a connection and park it in the poller until it sends something."""
        try:
            accepted, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        connection = DeadlineSocket(accepted.family, accepted.type, accepted.proto,
                                    fileno=accepted.detach())
        self.nr_conns += 1
        conn = TConn(self.cfg, connection, client, listener.getsockname())  # non-blocking
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(connection, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def handle_error(self, req, client, addr, exc):
        """Answer a request gunicorn could not parse, or one that failed outside the app."""
        status, reason = _STATUS.get(type(exc), (400, "Bad Request"))
        if not isinstance(exc, http_errors.ParseException) or isinstance(
                exc, http_errors.ConfigurationProblem):
            status, reason = 500, "Internal Server Error"
            self.log.exception("request failed outside the application")
        else:
            self.log.info("refused a malformed request (%s %s): %s", status, reason,
                          type(exc).__name__)
        path = getattr(req or getattr(exc, "req", None), "path", None) or ""
        try:
            client.sendall(error_response(status, reason, answers_json(path)))
        except Exception:  # the client is gone; nothing to answer
            self.log.debug("could not send the error answer")


def answers_json(path: str) -> bool:
    """Whether the app answers errors at ``path`` in JSON (the API, CDS Hooks, FHIR paths)."""
    from calculator.json_requests import JSON_PATHS, JSON_PREFIXES

    return path.startswith(JSON_PREFIXES) or path in JSON_PATHS


def error_response(status: int, reason: str, as_json: bool) -> bytes:
    """An HTTP/1.1 error answer with the app's security headers, closing the connection."""
    from calculator.security import CSP

    message = ("the request could not be read (malformed HTTP); nothing was calculated"
               if status < 500 else "the server failed to answer this request; nothing was stored")
    if as_json:
        body = json.dumps({"errors": [{"field": "request", "message": message}]}).encode()
        media_type = "application/json"
    else:
        body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} "
                f"{reason}</title></head><body><h1>{status} {reason}</h1><p>{message}.</p>"
                f"</body></html>").encode()
        media_type = "text/html; charset=utf-8"
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {media_type}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Security-Policy: {CSP}\r\n"
            f"X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
            f"Cache-Control: no-store\r\n\r\n")
    return head.encode("ascii") + body


class CalculatorLogger(glogging.Logger):
    """gunicorn's logger without query strings or exception messages (they can hold values),
    in the app's line format (:mod:`calculator.logs`)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        from calculator.logs import RequestIdFilter, formatter
        from model.errors import ConfigurationError

        try:
            shape = formatter()
        except ConfigurationError:
            return  # the app refuses to be built with the same message; keep gunicorn's lines
        for handler in self.error_log.handlers:
            handler.setFormatter(shape)
            handler.addFilter(RequestIdFilter())

    def _clean(self, msg, args) -> str:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = str(msg)
        return _QUERY.sub("?...", text)

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical("%s", self._clean(msg, args))

    def error(self, msg, *args, **kwargs):
        self.error_log.error("%s", self._clean(msg, args))

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning("%s", self._clean(msg, args))

    def info(self, msg, *args, **kwargs):
        self.error_log.info("%s", self._clean(msg, args))

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug("%s", self._clean(msg, args))

    def log(self, lvl, msg, *args, **kwargs):
        self.error_log.log(glogging.Logger.LOG_LEVELS.get(str(lvl).lower(), lvl) if isinstance(
            lvl, str) else lvl, "%s", self._clean(msg, args))

    def exception(self, msg, *args, **kwargs):
        from calculator.failures import _exception_chain, _stack

        error = sys.exc_info()[1]
        self.error_log.error("%s: %s\n%s", self._clean(msg, args),
                             " <- ".join(_exception_chain(error)) or "no exception", _stack(error))
