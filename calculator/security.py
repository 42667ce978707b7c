"""Web security of the calculator: CSRF on the form, and the headers every response carries.

- The form (``POST /result``) needs a Flask-WTF CSRF token; the JSON API is exempt because it
  accepts only ``application/json``, which a cross-site HTML form cannot send.
- Every response (200, 4xx and 5xx alike) gets a Content-Security-Policy without inline script,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; everything but the
  static files is ``Cache-Control: no-store``, since pages, figures and answers hold a patient's
  values.
- A body larger than ``MAX_CONTENT_LENGTH`` (or the larger limit a path registers in
  :data:`BODY_LIMITS`: a CDS Hooks chart, a FHIR Bundle) is refused with 413, chunked ones
  included; a body that cannot be read (broken chunked framing) with 400.
- Redirects are relative: the ``Location`` never carries a host taken from the request.
- Debug mode is off whatever ``FLASK_DEBUG`` says: a serving process never shows a traceback.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, abort, current_app, request
from werkzeug.exceptions import HTTPException

from model.atomic import atomic_path
from model.errors import ConfigurationError

#: CSRF tokens stay valid this long (seconds): a form left open for a clinic session still works.
CSRF_TIME_LIMIT_SECONDS = 8 * 3600
#: The policy of pages, API answers and errors: nothing but this origin's CSS and images.
CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
       "base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
SECRET_KEY_VARIABLE = "CART_RISK_SECRET_KEY"
SECRET_KEY_FILE = "secret_key"
#: ``app.extensions`` key: functions ``() -> bytes or None`` giving the current request a body
#: limit other than ``MAX_CONTENT_LENGTH`` (the first that answers wins; CDS Hooks charts).
BODY_LIMITS = "cart_risk.body_limits"
#: Shortest signing key accepted, from the environment or the key file (characters).
MIN_SECRET_KEY_LENGTH = 32


def secret_key(*, process_key_allowed: bool = False) -> str:
    """The key that signs CSRF tokens: ``$CART_RISK_SECRET_KEY``, else ``<home>/secret_key``.

    The file is made once (mode 0600) and shared by every worker on the host, so a form served by
    one gunicorn worker is accepted by another even without ``--preload``, and open forms survive
    a restart. Both sources need at least :data:`MIN_SECRET_KEY_LENGTH` characters.

    Parameters
    ----------
    process_key_allowed : bool
        Where the home cannot be written, use a random key for this process instead of refusing.
        Only safe when one process serves (``cart-risk serve --workers 1``): with several
        workers that do not share it, forms from one would be refused by another.

    Raises
    ------
    ConfigurationError
        A key shorter than the minimum (from either source), or no usable key file when a
        process key is not allowed.
    """
    from calculator.defaults import cart_risk_home

    configured = os.environ.get(SECRET_KEY_VARIABLE, "").strip()
    if configured:
        if len(configured) < MIN_SECRET_KEY_LENGTH:
            raise ConfigurationError(
                f"{SECRET_KEY_VARIABLE} has {len(configured)} characters; at least "
                f"{MIN_SECRET_KEY_LENGTH} are needed (e.g. python -c 'import secrets; "
                f"print(secrets.token_hex(32))')")
        return configured
    path = cart_risk_home() / SECRET_KEY_FILE
    try:
        if not path.is_file():
            _create_key_file(path)
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as problem:
        if process_key_allowed:
            return secrets.token_hex(32)
        reason = getattr(problem, "strerror", None) or type(problem).__name__
        raise ConfigurationError(
            f"cannot read or create the signing key {path} ({reason}), and several workers "
            f"cannot share a key made for one process; set {SECRET_KEY_VARIABLE} (at least "
            f"{MIN_SECRET_KEY_LENGTH} characters) or make {path.parent} writable") from None
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(f"the signing key {path} has {len(key)} characters; at least "
                                 f"{MIN_SECRET_KEY_LENGTH} are needed (delete it to make a new one)")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, keep_existing=True, private=True) as temporary:
        temporary.write_text(secrets.token_hex(32) + "\n", encoding="ascii")


def configure(app: Flask) -> None:
    """Set the security defaults in ``app.config`` (before the caller's overrides are applied).

    ``WTF_CSRF_ENABLED`` follows ``TESTING`` unless given, and ``SECRET_KEY`` comes from
    :func:`secret_key` unless given (both in :func:`init_app`, after the overrides:
    ``PROCESS_KEY_ALLOWED`` says whether a per-process key may be used).
    """
    app.config.from_mapping(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=CSRF_TIME_LIMIT_SECONDS,
        # Referrer-Policy: no-referrer means browsers send no Referer, which Flask-WTF's strict
        # HTTPS check would demand; the token and the SameSite cookie carry the protection.
        WTF_CSRF_SSL_STRICT=False,
    )


def init_app(app: Flask, csrf_exempt=()) -> None:
    """Turn on CSRF protection (except for ``csrf_exempt`` blueprints) and the response headers.

    Parameters
    ----------
    app : flask.Flask
        Configured by :func:`configure` and then by the caller's overrides. Unit tests that post
        the form without a token run with ``TESTING``, which turns the CSRF check off unless
        ``WTF_CSRF_ENABLED`` is set explicitly; nothing that serves sets ``TESTING``.
    csrf_exempt : iterable of flask.Blueprint
    """
    from flask_wtf.csrf import CSRFProtect

    app.config.setdefault("WTF_CSRF_ENABLED", not app.config.get("TESTING", False))
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(
            process_key_allowed=bool(app.config.get("PROCESS_KEY_ALLOWED", False)))
    app.config["DEBUG"] = False  # whatever FLASK_DEBUG or a config said: never a debug server
    app.before_request(_read_body)  # before the CSRF check reads the form
    protection = CSRFProtect(app)
    for blueprint in csrf_exempt:
        protection.exempt(blueprint)
    app.after_request(_secure_headers)


def _read_body() -> None:
    """Read any request body once, here: 400 if it cannot be read, 413 if it is too large.

    A body whose framing is broken (a malformed chunk, a client that stops half-way) makes the
    server's input stream raise; read inside a view, that would be a 500 and a stack trace in
    the log. Werkzeug refuses a declared length over ``MAX_CONTENT_LENGTH``, but cuts an
    undeclared (chunked) one at the limit without a word: the form or JSON parsed from the cut
    would look like a shorter, valid request. The body is cached for the parsers.
    """
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not (request.content_length or chunked):
        return
    for larger_limit in current_app.extensions.get(BODY_LIMITS, ()):
        limit = larger_limit()
        if limit is not None:
            request.max_content_length = limit
            break
    try:
        body = request.get_data(cache=True)
    except HTTPException:
        raise
    except Exception:  # the server's stream: gunicorn parse errors, resets, timeouts
        abort(400, description="the request body could not be read (malformed chunked "
                               "encoding, or the upload stopped); nothing was calculated")
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(body) >= limit:
        abort(413)


def _secure_headers(response):
    location = response.headers.get("Location")
    if location:  # relative: never a host taken from the request's Host header
        parts = urlsplit(location)
        if parts.scheme or parts.netloc:
            path = "/" + parts.path.lstrip("/")  # "//x" would name a host again
            response.headers["Location"] = urlunsplit(("", "", path, parts.query, parts.fragment))
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response
