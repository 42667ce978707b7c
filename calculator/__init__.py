"""The cart-risk calculator: Flask app factory, web pages, JSON API and command line.

Nothing is created when this package is imported (the ``cart-risk`` command imports it on every
run, and ``predict`` must start fast): :func:`create_app` builds an app, loads and verifies its
bundle, and registers the ``web`` and ``api`` blueprints.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from model.release import __version__  # noqa: F401 (calculator.__version__, for users)

#: Largest request body accepted (a patient is a few hundred bytes); FHIR bodies and CDS Hooks
#: calls have a larger one (:data:`calculator.interop.MAX_CHART_BYTES`).
MAX_REQUEST_BYTES = 16 * 1024


def create_app(config: Mapping[str, Any] | None = None):
    """Build the calculator app around one verified bundle.

    Parameters
    ----------
    config : mapping, optional
        Overrides of the defaults. ``BUNDLE_PATH``: bundle directory (default
        ``$CART_RISK_BUNDLE``, else the default bundle, see :mod:`calculator.defaults`). Any Flask
        setting, e.g. ``TESTING``. Logs (:mod:`calculator.logs`) and ``/metrics``
        (:mod:`calculator.metrics`) follow their ``CART_RISK_...`` variables
        (docs/configuration.md).

    Returns
    -------
    flask.Flask

    Raises
    ------
    model.errors.BundleError
        If the bundle is missing or fails verification: the app refuses to exist without one.
    model.errors.ConfigurationError
        A setting it cannot work with (signing key, log format, metrics switch or token).
    """
    from werkzeug.exceptions import HTTPException

    from calculator import (api, extensions, failures, interop, json_requests, logs, metrics,
                            result_links, security, web)
    from calculator.defaults import configured_bundle_path, default_bundle_path
    from calculator.json_output import FastJSONProvider

    # static_folder=None: the web blueprint serves calculator/static
    app = failures.CalculatorFlask(__name__, static_folder=None)
    app.json = FastJSONProvider(app)
    app.config.from_mapping(
        BUNDLE_PATH=str(configured_bundle_path() or default_bundle_path()),
        # The service's address as other systems reach it (CDS card links, the JWT's aud), and
        # the CDS Hooks trusted issuers (calculator/interop/cds_auth.py); both optional.
        PUBLIC_URL=os.environ.get("CART_RISK_PUBLIC_URL") or None,
        CDS_ISSUERS_FILE=os.environ.get("CART_RISK_CDS_ISSUERS") or None,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
    )
    security.configure(app)
    if config:
        app.config.from_mapping(config)
    logs.init_app(app)  # ConfigurationError on a bad CART_RISK_LOG_FORMAT / _LEVEL
    extensions.init_app(app)
    failures.init_app(app)
    metrics.init_app(app, app.extensions[extensions.EXTENSION_KEY].bundle)
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
                message, field = failures.server_error_message(), "server"
            else:
                message = error.description or error.name
                field = {404: "path", 405: "method"}.get(code, "body")
            formatted = (answer_as(code, message)
                         for answer_as in app.extensions.get(json_requests.ERROR_FORMATS, ()))
            answer = next((item for item in formatted if item is not None), None) \
                or json_requests.error_response(code, message, field)
        else:
            answer = web.error_page(error)
        response = app.make_response(answer)
        for name, value in error.get_headers():  # e.g. Allow on 405, as HTTP requires
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    # Also answers unexpected exceptions (as InternalServerError) outside testing.
    app.register_error_handler(HTTPException, http_error)
    return app
