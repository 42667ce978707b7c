"""WSGI entry point for any server: ``gunicorn calculator.wsgi:app``.

The bundle is ``$CART_RISK_BUNDLE`` or the default bundle (``$CART_RISK_HOME/bundles/default``).
It is not trained here (several workers would train it at once): ``cart-risk serve`` or
``cart-risk train`` creates it first. Without a verified bundle, or without a signing key that
every worker shares, this module prints one line saying what failed and raises, so the server
does not start. Run it with the settings of ``cart-risk serve``
(``gunicorn -c python:calculator.server calculator.wsgi:app``): threads that idle clients cannot
starve, no access log (figure URLs carry patient fields), logs without query strings.
"""
import sys

from calculator import create_app
from model.errors import BundleError, ConfigurationError

try:
    app = create_app()
except (BundleError, ConfigurationError) as error:
    print(f"cart-risk: refusing to serve: {error}", file=sys.stderr, flush=True)
    raise
