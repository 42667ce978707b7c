"""/metrics and JSON logs of a real ``cart-risk serve`` (gunicorn, two workers) (issue 23).

The server runs with ``CART_RISK_METRICS=1``, a metrics token and ``CART_RISK_LOG_FORMAT=json``;
requests carry distinctive patient values, which must reach neither a metric nor a log line.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from model.release import __version__
from conftest import free_port, start_calculator, stop_process

TOKEN = "t0ken-for-the-metrics-scraper"
#: Distinctive values sent as patient fields and in a query string; searched for everywhere.
SECRETS = ("37.123", "41.77")
PROXY_ID = "nginx-5f2b9c1e-request"


def _call(url: str, *, data: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def _post_patient(base: str, patient: dict, request_id: str | None = None):
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return _call(f"{base}/api/v1/predict", data=json.dumps(patient).encode(), headers=headers)


def _samples(base: str) -> dict[tuple, float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, headers, body = _call(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _worker_pids(server) -> list[int]:
    return [int(pid) for pid in
            Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def observed(trained_bundle_path, tmp_path_factory):
    """(base URL, log path, process, temp dir) of serve --workers 2 with metrics and JSON logs."""
    folder = tmp_path_factory.mktemp("observed")
    temporary = folder / "tmp"
    temporary.mkdir()
    env = {**os.environ, "CART_RISK_METRICS": "1", "CART_RISK_METRICS_TOKEN": TOKEN,
           "CART_RISK_LOG_FORMAT": "json", "TMPDIR": str(temporary)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = folder / "serve.log"
    process, base = start_calculator(trained_bundle_path, log, workers=2, env=env)
    yield base, log, process, temporary
    stop_process(process)


def test_metrics_count_every_worker_by_endpoint_and_outcome_without_patient_values(
        observed, patient, loaded_bundle):
    base, _, process, temporary = observed
    before = _samples(base)
    sent = 6
    for _ in range(sent):
        status, _, _ = _post_patient(base, {**patient, "marrow_blasts_pct": 37.123})
        assert status == 200
    refused, _, _ = _post_patient(base, {**patient, "marrow_blasts_pct": 141.77})
    assert refused == 422
    assert _call(f"{base}/no-such-page?marrow_blasts_pct=41.77")[0] == 404
    after = _samples(base)

    def added(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert added("cart_risk_requests_total", endpoint="api.predict", status="200") == sent
    assert added("cart_risk_requests_total", endpoint="api.predict", status="422") == 1
    assert added("cart_risk_requests_total", endpoint="unmatched", status="404") == 1
    assert added("cart_risk_request_duration_seconds_count", endpoint="api.predict",
                 status="200") == sent
    outcomes = set(loaded_bundle.predictor.models)
    assert outcomes >= {"cr", "severe_crs"}
    for outcome in outcomes:
        assert added("cart_risk_predictions_total", outcome=outcome) == sent
    info = {dict(labels)["bundle_id"]: (dict(labels), value)
            for (name, labels), value in after.items() if name == "cart_risk_bundle_info"}
    assert list(info) == [loaded_bundle.id]
    labels, value = info[loaded_bundle.id]
    assert value == 1 and labels["version"] == __version__ and labels["bundle_format"] == "1"
    every_label = " ".join(f"{k}={v}" for (_, labels), _ in after.items() for k, v in labels)
    for secret in (*SECRETS, "141.77", "no-such-page", "/api/"):
        assert secret not in every_label
    # Both workers wrote into the one directory the master made under TMPDIR.
    assert len(_worker_pids(process)) == 2
    (directory,) = temporary.glob("cart-risk-metrics-*")
    assert len(list(directory.glob("counter_*.db"))) >= 1


def test_metrics_need_the_token_and_survive_a_worker_restart(observed, patient):
    base, _, process, _ = observed
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                    {"Authorization": TOKEN}):
        status, answer_headers, _ = _call(f"{base}/metrics", headers=headers)
        assert status == 401 and answer_headers["WWW-Authenticate"].startswith("Bearer")
    assert _post_patient(base, patient)[0] == 200
    counted = _value(_samples(base), "cart_risk_requests_total", endpoint="api.predict",
                     status="200")
    assert counted >= 1
    old = _worker_pids(process)
    os.kill(old[0], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (len(_worker_pids(process)) < 2 or old[0] in _worker_pids(process)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert old[0] not in _worker_pids(process)
    # The exited worker's counts still count: the total never goes back.
    for _ in range(4):  # whichever worker answers
        assert _value(_samples(base), "cart_risk_requests_total", endpoint="api.predict",
                      status="200") == counted


def test_json_log_lines_carry_the_request_id_and_no_patient_value(observed, patient):
    base, log, _, _ = observed
    start = log.stat().st_size
    status, headers, _ = _post_patient(base, {**patient, "marrow_blasts_pct": 37.123}, PROXY_ID)
    assert status == 200 and headers["X-Request-ID"] == PROXY_ID
    for unsafe in ("short", "x" * 65, "has space in it", "semi;colon-and-more"):
        status, headers, _ = _post_patient(base, patient, unsafe)
        assert status == 200
        assert re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-ID"]), unsafe
    generated = _call(f"{base}/about?age_years=41.77")[1]["X-Request-ID"]
    time.sleep(0.5)
    lines = log.read_bytes()[start:].decode().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [r for r in records if r["request_id"] == PROXY_ID]
    assert len(mine) == 1
    assert mine[0]["endpoint"] == "api.predict" and mine[0]["status"] == 200
    assert mine[0]["method"] == "POST" and mine[0]["duration_ms"] > 0
    assert [r["endpoint"] for r in records if r["request_id"] == generated] == ["web.about"]
    for record in records:
        assert set(record) >= {"time", "level", "logger", "pid", "request_id", "message"}
    text = "\n".join(lines)
    for secret in SECRETS:
        assert secret not in text
    assert "short" not in text and "semi;colon" not in text


def test_metrics_directory_is_removed_when_the_server_stops(trained_bundle_path, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "CART_RISK_METRICS": "1", "TMPDIR": str(temporary)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process, base = start_calculator(trained_bundle_path, tmp_path / "serve.log", env=env)
    try:
        assert _call(f"{base}/metrics")[0] == 200  # no token configured: open
        assert list(temporary.glob("cart-risk-metrics-*"))
    finally:
        stop_process(process)
    assert process.returncode == 0
    assert not list(temporary.glob("cart-risk-metrics-*"))


def test_every_line_of_the_server_log_is_json(observed):
    _, log, _, _ = observed
    records = [json.loads(line) for line in log.read_text().splitlines()]
    messages = [record["message"] for record in records]
    assert any(message.startswith("cart-risk: serving bundle") for message in messages)
    # start-up warnings (no CDS Hooks issuers, no public URL) are JSON lines too
    assert any("CDS Hooks calls are not authenticated" in message for message in messages)
    assert {"calculator", "gunicorn.error"} <= {record["logger"] for record in records}


def test_metrics_are_off_by_default(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("variable, value, message", [
    ("CART_RISK_LOG_FORMAT", "xml", "CART_RISK_LOG_FORMAT must be one of text, json"),
    ("CART_RISK_LOG_LEVEL", "loud", "CART_RISK_LOG_LEVEL must be one of"),
    ("CART_RISK_METRICS", "maybe", "CART_RISK_METRICS must be 1 or 0"),
])
def test_a_bad_setting_stops_serve_with_one_line(trained_bundle_path, variable, value, message):
    import subprocess
    import sys

    env = {**os.environ, variable: value}
    result = subprocess.run([sys.executable, "-m", "calculator.cli", "serve", "--bundle",
                             str(trained_bundle_path), "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
