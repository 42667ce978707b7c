"""Result links (issue 22, items 6 and 11): bound to the bundle that made them, refused when
dated in the future, and the page's "Change inputs" works (its CSRF token has its cookie)."""
from __future__ import annotations

import json
import re
import time

import pytest

from test_cds_hooks import EXAMPLE_AS_JSON


@pytest.fixture(scope="module")
def guarded(trained_bundle_path):
    """The app as served: CSRF checked (TESTING turns it off unless set)."""
    from calculator import create_app

    return create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True,
                       "WTF_CSRF_ENABLED": True, "PUBLIC_URL": "http://localhost"})


def _token(app, payload: dict, at: int | None = None) -> str:
    """A token as a server with this key makes it (optionally dated ``at``)."""
    from calculator.result_links import _fernet

    with app.test_request_context("/"):
        data = json.dumps(payload).encode()
        fernet = _fernet()
        return (fernet.encrypt(data) if at is None else fernet.encrypt_at_time(data, at)).decode()


def test_change_inputs_on_a_result_link_page_passes_the_csrf_check(guarded):
    """Before: the page's token had no session cookie, and "Change inputs" answered 400."""
    from calculator.result_links import make_token

    with guarded.test_request_context("/"):
        token = make_token(EXAMPLE_AS_JSON)
    client = guarded.test_client()
    page = client.get(f"/r/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    form = re.search(r'<form[^>]*id="change-inputs".*?</form>', html, re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    assert fields["csrf_token"] and fields["marrow_blasts_pct"] == "12"
    again = client.post("/", data=fields)
    assert again.status_code == 200, again.get_data(as_text=True)[:500]
    assert 'value="12"' in again.get_data(as_text=True)


def test_a_link_made_with_another_bundle_is_refused_with_a_clear_page(guarded):
    token = _token(guarded, {"bundle": "f" * 64, "patient": EXAMPLE_AS_JSON})
    page = guarded.test_client().get(f"/r/{token}")
    assert page.status_code == 409 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "another model" in text and "ffffffffffff" in text
    assert "cr-probability" not in text


def test_a_link_of_the_old_format_without_a_bundle_is_not_shown(guarded):
    token = _token(guarded, EXAMPLE_AS_JSON)  # the patient alone, as before issue 22
    assert guarded.test_client().get(f"/r/{token}").status_code == 404


def test_a_link_dated_in_the_future_is_refused(guarded):
    from calculator.extensions import calculator_state
    from calculator.result_links import CLOCK_SKEW_SECONDS

    with guarded.app_context():
        bundle = calculator_state().bundle.id
    payload = {"bundle": bundle, "patient": EXAMPLE_AS_JSON}
    client = guarded.test_client()
    future = _token(guarded, payload, at=int(time.time()) + 24 * 3600)
    answer = client.get(f"/r/{future}")
    assert answer.status_code == 404 and "dated in the future" in answer.get_data(as_text=True)
    within_skew = _token(guarded, payload, at=int(time.time()) + CLOCK_SKEW_SECONDS // 2)
    assert client.get(f"/r/{within_skew}").status_code == 200
