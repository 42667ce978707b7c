"""Web security: CSRF on the form, security headers on every answer, no debug, errors by request
id, and no patient value in any log line or file, in-process and under gunicorn."""
from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import start_calculator, stop_process

PREDICT = "/api/v1/predict"
#: Distinctive patient values: valid (blasts, age) and invalid (blasts, sex) ones.
SENTINELS = {"marrow_blasts_pct": "37.4159", "age_years": "61.2718"}
INVALID_SENTINELS = {"marrow_blasts_pct": "150.265", "sex": "Zq9Sentinel"}
SEARCHED = ("37.4159", "61.2718", "150.265", "Zq9Sentinel")


@pytest.fixture(scope="module")
def secure_app(trained_bundle_path):
    """The app as served: not TESTING, so CSRF is on and unexpected errors are handled."""
    from calculator import create_app

    return create_app({"BUNDLE_PATH": str(trained_bundle_path)})


@pytest.fixture()
def secure_client(secure_app):
    return secure_app.test_client()


def as_form(patient: dict) -> dict[str, str]:
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in patient.items()}


def csrf_token(client) -> str:
    """The token of a freshly served form (the client keeps the session cookie)."""
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def csp_of(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_secure_headers(response) -> None:
    csp = csp_of(response)
    script = csp.get("script-src", csp.get("default-src"))
    assert script is not None, "no script-src nor default-src"
    assert not {"'unsafe-inline'", "'unsafe-eval'", "data:", "*"} & set(script), script
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    images = csp.get("img-src", csp.get("default-src"))
    assert "data:" not in images and "*" not in images
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def _broken(*_args, **_kwargs):
    raise RuntimeError("internal detail 37.4159")


@pytest.fixture()
def every_kind_of_answer(secure_app, secure_client, patient, monkeypatch):
    """(label, response) for each page, figure, API answer and error the app gives."""
    query = urllib.parse.urlencode(as_form(patient))
    token = csrf_token(secure_client)
    form = {**as_form(patient), "csrf_token": token}
    answers = [
        ("form", secure_client.get("/")),
        ("result", secure_client.post("/result", data=form)),
        ("result 422", secure_client.post("/result", data={**form, "age_years": "x"})),
        ("csrf 400", secure_client.post("/result", data=as_form(patient))),
        ("about", secure_client.get("/about")),
        ("change inputs", secure_client.post("/", data=form)),
        ("change inputs csrf 400", secure_client.post("/", data=as_form(patient))),
        ("page 404", secure_client.get("/nothing")),
        ("page 405", secure_client.put("/result")),
        ("api", secure_client.post(PREDICT, json=patient)),
        ("api 422", secure_client.post(PREDICT, json={})),
        ("api 400", secure_client.post(PREDICT, data=b"{", content_type="application/json")),
        ("api 415", secure_client.post(PREDICT, data=b"{}")),
        ("api 413", secure_client.post(PREDICT, data=b"[" * 20_000,
                                       content_type="application/json")),
        ("api 404", secure_client.get("/api/v1/nothing")),
        ("openapi", secure_client.get("/api/v1/openapi.json")),
        ("healthz", secure_client.get("/healthz")),
    ]
    import calculator.api
    import calculator.results

    monkeypatch.setattr(calculator.api, "prediction_answer", _broken)
    monkeypatch.setattr(calculator.results, "result_view", _broken)
    monkeypatch.setattr(secure_app.logger, "disabled", True)  # the failures are expected
    answers += [("api 500", secure_client.post(PREDICT, json=patient)),
                ("result 500", secure_client.post("/result", data=form))]
    return answers


def test_every_answer_carries_the_security_headers(every_kind_of_answer):
    statuses = {}
    for label, response in every_kind_of_answer:
        assert_secure_headers(response)
        statuses[label] = response.status_code
        assert response.headers["Cache-Control"] == "no-store", label
        assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"]), label
    assert {statuses[label] for label in ("result 500", "api 500")} == {500}
    assert statuses["csrf 400"] == 400 and statuses["api 413"] == 413


def test_static_files_have_the_headers_and_may_be_cached(secure_client):
    with secure_client.get("/static/calculator.css") as css:
        assert css.status_code == 200
        assert_secure_headers(css)
        assert "no-store" not in css.headers.get("Cache-Control", "")


def test_pages_allow_no_inline_code_and_images_only_from_this_origin(secure_client, patient):
    answer = secure_client.post("/result", data={**as_form(patient),
                                                 "csrf_token": csrf_token(secure_client)})
    csp = csp_of(answer)
    assert csp["default-src"] == ["'none'"] and csp["img-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"] and "script-src" not in csp
    html = answer.get_data(as_text=True)
    assert "<img" not in html and html.count("<svg") == 4  # figures inline, no image request
    assert "<script" not in html and " style=" not in html and "<style" not in html
    assert "data:" not in html and not re.search(r"\son\w+=", html)


# --------------------------------------------------------------------------- CSRF


def test_a_form_post_without_a_token_is_refused_saying_why(secure_client, patient):
    answer = secure_client.post("/result", data=as_form(patient))
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert 'id="form-refused"' in html and "nothing was calculated" in html
    assert "security token is missing, invalid or expired" in html
    assert 'id="cr-probability"' not in html
    assert f'value="{patient["age_years"]}"' in html  # the values are kept for a resubmission
    assert re.search(r'name="csrf_token" value="[^"]+"', html)  # with a fresh token


@pytest.mark.parametrize("token", ["", "not-a-token", "ImFiYyI.ZZZZZZ.forged-signature"])
def test_a_form_post_with_a_bad_token_is_refused(secure_client, patient, token):
    csrf_token(secure_client)  # the session exists; only the token is wrong
    answer = secure_client.post("/result", data={**as_form(patient), "csrf_token": token})
    assert answer.status_code == 400 and 'id="form-refused"' in answer.get_data(as_text=True)


def test_a_token_from_another_session_is_refused(secure_app, patient):
    token = csrf_token(secure_app.test_client())
    other = secure_app.test_client()
    answer = other.post("/result", data={**as_form(patient), "csrf_token": token})
    assert answer.status_code == 400


def test_the_forms_own_token_is_accepted_over_http_and_https(secure_client, patient):
    answer = secure_client.post("/result", data={**as_form(patient),
                                                 "csrf_token": csrf_token(secure_client)})
    assert answer.status_code == 200 and 'id="cr-probability"' in answer.get_data(as_text=True)
    # Over HTTPS with Referrer-Policy no-referrer the browser sends no Referer: still accepted.
    secure = secure_client.post("/result", base_url="https://localhost",
                                data={**as_form(patient), "csrf_token": csrf_token(secure_client)})
    assert secure.status_code == 200


def test_the_session_cookie_is_http_only_and_same_site(secure_app):
    cookie = secure_app.test_client().get("/").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_api_needs_no_token_but_only_takes_json(secure_client, patient):
    assert secure_client.post(PREDICT, json=patient).status_code == 200
    as_a_form_would_send = secure_client.post(PREDICT, data=as_form(patient))
    assert as_a_form_would_send.status_code == 415


def test_csrf_is_on_unless_a_test_turns_it_off(trained_bundle_path):
    from calculator import create_app

    bundle = str(trained_bundle_path)
    assert create_app({"BUNDLE_PATH": bundle}).config["WTF_CSRF_ENABLED"] is True
    assert create_app({"BUNDLE_PATH": bundle, "TESTING": True}).config["WTF_CSRF_ENABLED"] is False
    assert create_app({"BUNDLE_PATH": bundle, "TESTING": True,
                       "WTF_CSRF_ENABLED": True}).config["WTF_CSRF_ENABLED"] is True


def test_workers_share_the_signing_key_through_the_home(trained_bundle_path, cart_risk_home,
                                                        patient, monkeypatch):
    from calculator import create_app
    from calculator.security import SECRET_KEY_VARIABLE

    monkeypatch.delenv(SECRET_KEY_VARIABLE, raising=False)
    first = create_app({"BUNDLE_PATH": str(trained_bundle_path)}).test_client()
    second = create_app({"BUNDLE_PATH": str(trained_bundle_path)}).test_client()
    token = csrf_token(first)
    second.set_cookie("session", first.get_cookie("session").value)
    answer = second.post("/result", data={**as_form(patient), "csrf_token": token})
    assert answer.status_code == 200  # a form from one worker is accepted by another
    key_file = cart_risk_home / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only


# --------------------------------------------------------------------------- debug and errors


def test_debug_is_never_on(trained_bundle_path, monkeypatch):
    from calculator import create_app

    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app({"BUNDLE_PATH": str(trained_bundle_path), "DEBUG": True})
    assert app.debug is False


def test_a_failure_is_logged_with_its_request_id_and_shown_plainly(secure_app, secure_client,
                                                                   patient, monkeypatch, caplog):
    import calculator.api
    import calculator.results

    monkeypatch.setattr(secure_app.logger, "disabled", False)  # whatever another test left

    monkeypatch.setattr(calculator.api, "prediction_answer", _broken)
    monkeypatch.setattr(calculator.results, "result_view", _broken)
    caplog.set_level(logging.DEBUG)
    api = secure_client.post(PREDICT, json=patient)
    page = secure_client.post("/result", data={**as_form(patient),
                                               "csrf_token": csrf_token(secure_client)})
    for answer in (api, page):
        assert answer.status_code == 500
        text = answer.get_data(as_text=True)
        request_id = answer.headers["X-Request-ID"]
        assert f"reference {request_id}" in text
        assert "Traceback" not in text and "internal detail" not in text and ".py" not in text
        logged = [record.getMessage() for record in caplog.records
                  if request_id in record.getMessage()]
        assert len(logged) == 1 and "RuntimeError" in logged[0]
        assert "_broken" in logged[0]  # the stack, for the operator
    assert api.get_json()["errors"][0]["field"] == "server"
    assert 'id="request-id"' in page.get_data(as_text=True)
    assert "37.4159" not in caplog.text  # the exception's message held a patient value


def test_no_patient_value_reaches_the_logs_in_process(secure_app, secure_client, patient,
                                                      monkeypatch, caplog):
    monkeypatch.setattr(secure_app.logger, "disabled", False)  # whatever another test left
    caplog.set_level(logging.DEBUG)
    valid = {**patient, "marrow_blasts_pct": 37.4159, "age_years": 61.2718}
    invalid = {**patient, "marrow_blasts_pct": 150.265, "sex": "Zq9Sentinel"}
    token = csrf_token(secure_client)
    assert secure_client.post(PREDICT, json=valid).status_code == 200
    assert secure_client.post(PREDICT, json=invalid).status_code == 422
    assert secure_client.post("/result", data={**as_form(valid), "csrf_token": token}) \
        .status_code == 200
    assert secure_client.post("/result", data={**as_form(invalid), "csrf_token": token}) \
        .status_code == 422
    assert secure_client.post("/result", data=as_form(invalid)).status_code == 400  # no token
    assert secure_client.post("/", data={**as_form(valid), "csrf_token": token}) \
        .status_code == 200
    assert caplog.records  # the CSRF refusal at least is logged ...
    for value in SEARCHED:
        assert value not in caplog.text  # ... and no value


# --------------------------------------------------------------------------- under gunicorn


def _files_below(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]


def _digest_tree(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in _files_below(folder)}


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _fetch(opener, url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _chunked_post(base_url: str, path: str, size: int, content_type: str) -> int:
    """POST ``size`` bytes as a chunked body (no Content-Length); the answer's status."""
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        chunks = (b"x" * 4096 for _ in range(size // 4096))
        connection.request("POST", path, body=chunks, encode_chunked=True,
                           headers={"Content-Type": content_type})
        return connection.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        return 0  # the server may close the connection before the whole body is sent
    finally:
        connection.close()


def test_under_gunicorn_no_patient_value_is_logged_or_written(trained_bundle_path, tmp_path,
                                                              patient):
    sandbox = {name: tmp_path / name for name in ("home", "tmp", "mpl", "cart-risk", "cwd")}
    for folder in sandbox.values():
        folder.mkdir()
    env = {**os.environ, "HOME": str(sandbox["home"]), "TMPDIR": str(sandbox["tmp"]),
           "MPLCONFIGDIR": str(sandbox["mpl"]), "CART_RISK_HOME": str(sandbox["cart-risk"]),
           "FLASK_DEBUG": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    bundle_before = _digest_tree(trained_bundle_path)
    log = tmp_path / "server.log"
    server, base = start_calculator(trained_bundle_path, log, workers=2, env=env,
                                    cwd=sandbox["cwd"])
    try:
        valid = {**as_form(patient), **SENTINELS}
        invalid = {**as_form(patient), **INVALID_SENTINELS}
        json_headers = {"Content-Type": "application/json"}
        api = _opener()
        for body, expected in (({**patient, "marrow_blasts_pct": 37.4159,
                                 "age_years": 61.2718}, 200),
                               ({**patient, "marrow_blasts_pct": 150.265,
                                 "sex": "Zq9Sentinel"}, 422)):
            status, _ = _fetch(api, base + PREDICT, json.dumps(body).encode(), json_headers)
            assert status == expected
        browser = _opener()
        status, html = _fetch(browser, base + "/")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', html).group(1).decode()
        for fields, expected in ((valid, 200), (invalid, 422)):
            status, page = _fetch(browser, base + "/result",
                                  urllib.parse.urlencode({**fields, "csrf_token": token}).encode())
            assert status == expected
            for source in re.findall(rb'<img[^>]+src="([^"]+)"', page):
                figure, _ = _fetch(browser, base + source.decode().replace("&amp;", "&"))
                assert figure == 200
        status, page = _fetch(_opener(), base + "/result", urllib.parse.urlencode(valid).encode())
        assert status == 400 and b"nothing was calculated" in page  # no token: refused
        assert _chunked_post(base, PREDICT, 64 * 1024, "application/json") in (413, 0)
        assert _chunked_post(base, "/result", 64 * 1024,
                             "application/x-www-form-urlencoded") in (413, 0)
        status, _ = _fetch(api, base + "/healthz")
        assert status == 200  # the server is unharmed
    finally:
        stop_process(server)
    logged = log.read_text(errors="replace")
    assert "Booting worker" in logged  # the log was captured at all
    assert "/result" not in logged and "/plot/" not in logged  # no access log
    for value in SEARCHED:
        assert value not in logged, f"{value} in the server's log"
    for path in _files_below(tmp_path):
        if path != log:
            content = path.read_bytes()
            for value in SEARCHED:
                assert value.encode() not in content, f"{value} written to {path}"
    assert _digest_tree(trained_bundle_path) == bundle_before


def test_serving_never_imports_the_unpickling_stack(trained_bundle_path, patient):
    import subprocess
    import sys

    code = f"""
import sys
from calculator import create_app
app = create_app({{"BUNDLE_PATH": {str(trained_bundle_path)!r}, "WTF_CSRF_ENABLED": False}})
client = app.test_client()
assert client.post("/api/v1/predict", json={patient!r}).status_code == 200
form = {{**{as_form(patient)!r}, "target_marrow_blasts_pct": "1"}}
assert client.post("/result", data=form).status_code == 200
assert "matplotlib" not in sys.modules  # figures are drawn without it
loaded = sorted(name for name in ("joblib", "pickle", "sklearn", "lifelines")
                if name in sys.modules)
assert loaded in ([], ["pickle"]), loaded  # pickle: imported by the standard library itself
"""
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)
