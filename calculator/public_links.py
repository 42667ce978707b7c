"""Absolute links the calculator hands to other systems (a CDS Hooks card's links and source).

They start with the configured public address (``PUBLIC_URL``, from ``$CART_RISK_PUBLIC_URL``),
never with the request's ``Host`` header: a client could set that header to any host and have
the card link a clinician to it. Without a configured address there is no absolute link.
"""
from __future__ import annotations

from flask import current_app, url_for

PUBLIC_URL_CONFIG = "PUBLIC_URL"


def public_url_for(endpoint: str, **values) -> str | None:
    """``PUBLIC_URL`` + the path of ``endpoint`` (None when no public address is configured)."""
    base = current_app.config.get(PUBLIC_URL_CONFIG)
    if not base:
        return None
    return base.rstrip("/") + url_for(endpoint, **values)
