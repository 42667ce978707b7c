"""The cart-risk calculator: Flask app factory, web pages, JSON API and command line.

Nothing is created when this package is imported (the ``cart-risk`` command imports it on every
run, and ``predict`` must start fast): :func:`create_app` builds an app, loads and verifies its
bundle, and registers the ``web`` and ``api`` blueprints.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

#: Largest request body accepted (a patient is a few hundred bytes).
MAX_REQUEST_BYTES = 16 * 1024


def create_app(config: Mapping[str, Any] | None = None):
    """Build the calculator app around one verified bundle.

    Parameters
    ----------
    config : mapping, optional
        Overrides of the defaults. ``BUNDLE_PATH``: bundle directory (default
        ``$CART_RISK_BUNDLE``, else the default bundle, see :mod:`calculator.defaults`). Any Flask
        setting, e.g. ``TESTING``.

    Returns
    -------
    flask.Flask

    Raises
    ------
    model.errors.BundleError
        If the bundle is missing or fails verification: the app refuses to exist without one.
    """
    from werkzeug.exceptions import HTTPException

    from calculator import (api, extensions, failures, interop, json_requests, result_links,
                            security, web)
    from calculator.defaults import default_bundle_path
    from calculator.json_output import FastJSONProvider

    # static_folder=None: the web blueprint serves calculator/static
    app = failures.CalculatorFlask(__name__, static_folder=None)
    app.json = FastJSONProvider(app)
    app.config.from_mapping(
        BUNDLE_PATH=os.environ.get("CART_RISK_BUNDLE") or str(default_bundle_path()),
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
    )
    security.configure(app)
    if config:
        app.config.from_mapping(config)
    extensions.init_app(app)
    failures.init_app(app)
    security.init_app(app, csrf_exempt=[api.blueprint, *interop.blueprints()])
    app.register_blueprint(web.blueprint)
    app.register_blueprint(api.blueprint)
    interop.init_app(app)
    app.register_blueprint(result_links.blueprint)

    def http_error(error: HTTPException):
        # Routing errors (404, 405) happen before a blueprint is known, so one handler picks the
        # format: JSON under the API's paths, HTML everywhere else.
        if json_requests.is_api_path():
            code = error.code or 500
            if code >= 500:
                answer = json_requests.error_response(code, failures.server_error_message(), "server")
            else:
                field = {404: "path", 405: "method"}.get(code, "body")
                answer = json_requests.error_response(code, error.description or error.name, field)
        else:
            answer = web.error_page(error)
        body, code = answer
        response = app.make_response((body, code))
        for name, value in error.get_headers():  # e.g. Allow on 405, as HTTP requires
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    # Also answers unexpected exceptions (as InternalServerError) outside testing.
    app.register_error_handler(HTTPException, http_error)
    return app
