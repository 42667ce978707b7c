"""WSGI entry point for any server: ``gunicorn calculator.wsgi:app``.

The bundle is ``$CART_RISK_BUNDLE`` or the default bundle (``$CART_RISK_HOME/bundles/default``).
It is not trained here (several workers would train it at once): ``cart-risk serve`` or
``cart-risk train`` creates it first. Without a verified bundle, importing this module raises
:class:`model.errors.BundleError` and the server does not start.
"""
from calculator import create_app

app = create_app()
