"""Web security of the calculator: CSRF on the form, and the headers every response carries.

- The form (``POST /result``) needs a Flask-WTF CSRF token; the JSON API is exempt because it
  accepts only ``application/json``, which a cross-site HTML form cannot send.
- Every response (200, 4xx and 5xx alike) gets a Content-Security-Policy without inline script,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; everything but the
  static files is ``Cache-Control: no-store``, since pages, figures and answers hold a patient's
  values.
- A body larger than ``MAX_CONTENT_LENGTH`` is refused with 413, chunked ones included.
- Debug mode is off whatever ``FLASK_DEBUG`` says: a serving process never shows a traceback.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask, abort, current_app, request

#: CSRF tokens stay valid this long (seconds): a form left open for a clinic session still works.
CSRF_TIME_LIMIT_SECONDS = 8 * 3600
#: The policy of pages, API answers and errors: nothing but this origin's CSS and images.
CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
       "base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
SECRET_KEY_VARIABLE = "CART_RISK_SECRET_KEY"
SECRET_KEY_FILE = "secret_key"


def secret_key() -> str:
    """The key that signs CSRF tokens: ``$CART_RISK_SECRET_KEY``, else ``<home>/secret_key``.

    The file is made once (mode 0600) and shared by every worker on the host, so a form served by
    one gunicorn worker is accepted by another even without ``--preload``, and open forms survive
    a restart. Where the home cannot be written, a random key for this process is used.
    """
    from calculator.defaults import cart_risk_home

    configured = os.environ.get(SECRET_KEY_VARIABLE, "").strip()
    if configured:
        return configured
    path = cart_risk_home() / SECRET_KEY_FILE
    try:
        if not path.is_file():
            _create_key_file(path)
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        key = ""
    return key if len(key) >= 32 else secrets.token_hex(32)


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:  # mkstemp: mode 0600
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic, and never replaces a key already there
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def configure(app: Flask) -> None:
    """Set the security defaults in ``app.config`` (before the caller's overrides are applied).

    ``WTF_CSRF_ENABLED`` follows ``TESTING`` unless given (see :func:`init_app`).
    """
    app.config.from_mapping(
        SECRET_KEY=secret_key(),
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
    app.config["DEBUG"] = False  # whatever FLASK_DEBUG or a config said: never a debug server
    app.before_request(_refuse_oversized_streams)  # before the CSRF check reads the form
    protection = CSRFProtect(app)
    for blueprint in csrf_exempt:
        protection.exempt(blueprint)
    app.after_request(_secure_headers)


def _refuse_oversized_streams() -> None:
    """413 for a body without Content-Length (chunked) that reaches ``MAX_CONTENT_LENGTH``.

    Werkzeug refuses a declared length over the limit, but cuts an undeclared one at the limit
    without a word: the form or JSON parsed from the cut would look like a shorter, valid request.
    The body is read here once (at most the limit) and cached for the parsers.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if (limit is not None and request.content_length is None
            and request.method in ("POST", "PUT", "PATCH")
            and len(request.get_data(cache=True)) >= limit):
        abort(413)


def _secure_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response
