"""WSGI entry point for any server: ``gunicorn calculator.wsgi:app``.

The bundle is ``$CART_RISK_BUNDLE`` or the default bundle (``$CART_RISK_HOME/bundles/default``).
It is not trained here (several workers would train it at once): ``cart-risk serve`` or
``cart-risk train`` creates it first. Without a verified bundle this module prints one line
saying which check failed and raises :class:`model.errors.BundleError`, so the server does not
start. Keep the server's access log off (gunicorn's default): figure URLs carry patient fields.
"""
import sys

from calculator import create_app
from model.errors import BundleError

try:
    app = create_app()
except BundleError as error:
    print(f"cart-risk: refusing to serve: {error}", file=sys.stderr, flush=True)
    raise
