"""Short-lived links to a result page that carry no readable patient value: ``GET /r/<token>``.

The CDS Hooks card links to the full result page. The page needs the patient's values, and a URL
must not show them (URLs end up in browser history, proxy logs and screenshots). The token is
the patient's values encrypted and authenticated with Fernet (AES-128-CBC with HMAC-SHA256, from
the ``cryptography`` package), under a key derived (HKDF-SHA256) from the app's ``SECRET_KEY``:
unreadable and unforgeable without the key, and usable by every worker on the host, which shares
that key (:func:`calculator.security.secret_key`). Fernet stamps the token with its creation
time; it is honoured for :data:`RESULT_LINK_LIFETIME_SECONDS` and then answered with 410 Gone
(one dated in the future beyond :data:`CLOCK_SKEW_SECONDS` is refused). The token names the
bundle it was made with: opened where another bundle serves, it is refused (409) rather than
showing numbers other than the card's.

Nothing is stored on the server. The page itself is the one ``POST /result`` renders
(:func:`calculator.web.result_response` with the decrypted values, inside this GET request, so
its "Change inputs" form carries a CSRF token with its session cookie).
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any, Mapping

from flask import Blueprint, abort, current_app

blueprint = Blueprint("result_links", __name__)

#: How long a result link works (seconds): long enough to open it from a chart viewed now.
RESULT_LINK_LIFETIME_SECONDS = 30 * 60
#: Longest token looked at; a patient's values make about 400 characters.
MAX_TOKEN_LENGTH = 2048
#: A token dated later than now by more than this (seconds) is refused: clocks of the hosts
#: sharing the key may differ a little, never by more.
CLOCK_SKEW_SECONDS = 60
_KEY_CONTEXT = b"cart-risk result link v1"


def _fernet():
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    secret = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def make_token(patient: Mapping[str, Any]) -> str:
    """An encrypted, time-stamped token of a parsed patient and the app's bundle (needs an app
    context): the page shows what the card said only where the same bundle serves."""
    from calculator.extensions import calculator_state

    payload = json.dumps({"bundle": calculator_state().bundle.id, "patient": dict(patient)},
                         separators=(",", ":"), allow_nan=False)
    return _fernet().encrypt(payload.encode("utf-8")).decode("ascii")


def result_url(patient: Mapping[str, Any]) -> str | None:
    """Absolute URL of the patient's result page on the configured public address (None
    without one: :func:`calculator.public_links.public_url_for`)."""
    from calculator.public_links import public_url_for

    return public_url_for("result_links.result_page", token=make_token(patient))


def read_token(token: str, now: float | None = None) -> dict[str, Any]:
    """The patient in a token.

    Raises
    ------
    werkzeug.exceptions.NotFound
        A token that was not made with this key, was altered, or is dated more than
        :data:`CLOCK_SKEW_SECONDS` in the future.
    werkzeug.exceptions.Gone
        A token older than :data:`RESULT_LINK_LIFETIME_SECONDS`.
    werkzeug.exceptions.Conflict
        A token made by a calculator serving another bundle (its numbers would differ from the
        card's).
    """
    from cryptography.fernet import InvalidToken

    from calculator.extensions import calculator_state

    if len(token) > MAX_TOKEN_LENGTH:
        abort(404)
    fernet = _fernet()
    now = time.time() if now is None else now
    try:
        created = fernet.extract_timestamp(token.encode("ascii"))
        if created - now > CLOCK_SKEW_SECONDS:
            abort(404, description="This result link is dated in the future, so this server "
                                   "did not make it now; open the patient's chart again for a "
                                   "new card.")
        if now - created > RESULT_LINK_LIFETIME_SECONDS:
            abort(410, description=(
                f"This result link has expired: links from the chart's card work for "
                f"{RESULT_LINK_LIFETIME_SECONDS // 60} minutes. Open the patient's chart again "
                "for a new card, or enter the values in the calculator."))
        content = json.loads(fernet.decrypt(token.encode("ascii")))
    except (InvalidToken, UnicodeEncodeError, ValueError):
        abort(404)
    if not isinstance(content, dict) or not isinstance(content.get("patient"), dict):
        abort(404)
    serving = calculator_state().bundle.id
    if content.get("bundle") != serving:
        abort(409, description=(
            f"This result link was made with another model (bundle "
            f"{str(content.get('bundle'))[:12]}); this server runs bundle {serving[:12]}, whose "
            "numbers could differ from the card's. Open the patient's chart again for a new "
            "card."))
    return content["patient"]


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@blueprint.get("/r/<token>")
def result_page(token: str):
    """The result page of the patient in ``token`` (the form's own result view)."""
    from calculator.web import result_response

    patient = read_token(token)
    return result_response({name: _form_text(value) for name, value in patient.items()})
