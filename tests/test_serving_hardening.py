"""``cart-risk serve`` against slow, idle and malformed clients (issue 15, items 1, 2 and 8).

Real gunicorn on a loopback port, raw sockets for what a polite client would never send. The
server runs ONE worker here, which is harsher than the default.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from calculator import server as serving
from conftest import REPO, start_calculator, stop_process

#: Distinctive patient values sent in request targets and bodies, searched for in the log.
SECRET_VALUES = ("37.123", "41.77", "12.987")
TARGET = "/result?marrow_blasts_pct=37.123&age_years=41.77"


@pytest.fixture(scope="module")
def live(trained_bundle_path, tmp_path_factory):
    """(base URL, log path, server process) of ``cart-risk serve --workers 1``."""
    log = tmp_path_factory.mktemp("hardened") / "serve.log"
    process, base = start_calculator(trained_bundle_path, log, workers=1)
    yield base, log, process
    stop_process(process)


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _exchange(base: str, raw: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the answer until the server closes: (status, headers, body)."""
    with socket.create_connection(_address(base), timeout=timeout) as connection:
        connection.sendall(raw)
        received = b""
        while True:
            try:
                data = connection.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                lengths = [line for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")]
                if lengths and len(body) >= int(lengths[0].split(b":")[1]):
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, value in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return int(lines[0].split()[1]), headers, body


def _healthz_seconds(base: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(base + "/healthz", timeout=30) as answer:
        assert answer.status == 200
    return time.monotonic() - started


def _worker_pids(server: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_idle_and_half_sent_connections_do_not_block_healthz(live):
    """Before: two idle connections blocked both sync workers; /healthz waited 30.8 s."""
    base, _, _ = live
    idle = [socket.create_connection(_address(base)) for _ in range(50)]
    half_sent = []
    for i in range(serving.THREADS - 1):  # each holds a thread until its request deadline
        connection = socket.create_connection(_address(base))
        connection.sendall(f"POST {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                           f"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                           f"marrow_blasts_pct=12.987&".encode() if i % 2 else
                           f"GET {TARGET} HTTP/1.1\r\nHost: x\r\n".encode())
        half_sent.append(connection)
    try:
        time.sleep(0.5)  # let the server take them all in
        assert _healthz_seconds(base) < 1.0
    finally:
        for connection in idle + half_sent:
            connection.close()


def test_a_half_sent_request_is_cut_at_its_deadline(monkeypatch):
    """However slowly the bytes trickle in, a request's reads share one deadline."""
    monkeypatch.setattr(serving, "REQUEST_SECONDS", 0.5)
    server_side, client_side = socket.socketpair()
    connection = serving.DeadlineSocket(server_side.family, server_side.type, server_side.proto,
                                        fileno=server_side.detach())
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            client_side.sendall(b"x")
            time.sleep(0.05)

    sender = threading.Thread(target=trickle)
    sender.start()
    received = 0
    try:
        connection.setblocking(True)
        with pytest.raises(ConnectionResetError, match="request not received in time"):
            while True:
                received += len(connection.recv(1))
    finally:
        stop.set()
        sender.join()
        connection.close()
        client_side.close()
    assert 3 <= received  # it was reading all along, then the shared deadline ended it


@pytest.mark.parametrize("path, as_json", [("/api/v1/predict?age_years=41.77", True),
                                           (TARGET, False)])
def test_a_malformed_chunked_body_is_a_400_without_a_trace(live, path, as_json):
    """Before: 500, and a stack trace in the log."""
    base, log, _ = live
    before = log.stat().st_size
    content_type = "application/json" if as_json else "application/x-www-form-urlencoded"
    status, headers, body = _exchange(base, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\nzz\r\n").encode())
    assert status == 400
    if as_json:
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["errors"][0]["field"] == "body"
    assert "content-security-policy" in headers
    time.sleep(0.2)
    added = log.read_bytes()[before:].decode(errors="replace")
    assert " in " not in added and "Traceback" not in added, added  # no stack frames


GUNICORN_REFUSALS = [
    ("request line too long", f"GET /?{'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("header too large", f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nX-Pad: {'b' * 9000}\r\n\r\n",
     431),
    ("garbage request line", f"{TARGET} 41.77\r\n\r\n", 400),
    ("unsupported transfer coding", f"POST {TARGET} HTTP/1.1\r\nHost: x\r\n"
                                    f"Transfer-Encoding: br\r\n\r\n", 501),
    ("API path, chunked twice", "POST /api/v1/predict?age_years=41.77 HTTP/1.1\r\n"
                                "Host: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
]


@pytest.mark.parametrize("case, raw, expected", GUNICORN_REFUSALS,
                         ids=[case for case, _, _ in GUNICORN_REFUSALS])
def test_requests_gunicorn_refuses_carry_the_security_headers(live, case, raw, expected):
    """Before: gunicorn's own pages had none of the headers (and its log had the target)."""
    base, _, _ = live
    status, headers, body = _exchange(base, raw.encode())
    assert status == expected
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    if raw.startswith("POST /api/"):
        assert json.loads(body)["errors"][0]["field"] == "request"


def test_after_a_killed_worker_the_log_holds_no_patient_value(live):
    """Before: the aborted worker logged 'Error handling request POST /result?marrow_...'."""
    base, log, process = live
    stuck = socket.create_connection(_address(base))
    stuck.sendall(f"POST {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n"
                  f"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                  f"marrow_blasts_pct=12.987&".encode())
    time.sleep(0.5)
    (worker,) = _worker_pids(process)
    os.kill(worker, signal.SIGABRT)  # what gunicorn's worker timeout sends
    stuck.close()
    deadline = time.monotonic() + 30
    while _worker_pids(process) in ([], [worker]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _healthz_seconds(base) < 30  # a new worker serves
    logged = log.read_text(errors="replace")
    assert str(worker) in logged  # the log saw the worker go
    for value in SECRET_VALUES:
        assert value not in logged, f"{value} in the server's log"
    assert "?marrow" not in logged and "age_years=" not in logged


def test_405_says_which_methods_are_allowed(client):
    api = client.put("/api/v1/predict", json={})
    assert api.status_code == 405 and api.headers["Allow"].split(", ").count("POST") == 1
    page = client.post("/about")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_redirects_never_carry_the_request_host(client):
    """Before: GET // answered 308 with Location http://<Host header>/ (the body re-sent there)."""
    answer = client.get("//", headers={"Host": "attacker.example"})
    assert answer.status_code in (301, 308)
    assert answer.headers["Location"] == "/"
    bare = client.get("//result?age_years=41", headers={"Host": "attacker.example"})
    assert "attacker.example" not in bare.headers["Location"]
    assert not bare.headers["Location"].startswith("//")


def _serve(bundle: Path, env: dict, workers: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calculator.cli", "serve", "--bundle",
                           str(bundle), "--port", "1", "--workers", str(workers)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_short_secret_key_is_refused_at_start_up(trained_bundle_path):
    """Before: a 1-character CART_RISK_SECRET_KEY was accepted (the key file needs 32)."""
    served = _serve(trained_bundle_path, {**os.environ, "CART_RISK_SECRET_KEY": "k"}, 1)
    assert served.returncode == 1
    assert served.stderr == ("cart-risk serve: CART_RISK_SECRET_KEY has 1 characters; at least "
                             "32 are needed (e.g. python -c 'import secrets; "
                             "print(secrets.token_hex(32))')\n")


def test_several_workers_without_a_shared_key_are_refused(trained_bundle_path, tmp_path):
    """Before: an unwritable home fell back to a per-process key; forms failed across workers."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = {key: value for key, value in os.environ.items() if key != "CART_RISK_SECRET_KEY"}
    served = _serve(trained_bundle_path, {**env, "CART_RISK_HOME": str(home)}, 2)
    assert served.returncode == 1, served.stderr
    assert served.stderr.count("\n") == 1
    assert "set CART_RISK_SECRET_KEY" in served.stderr and "Traceback" not in served.stderr


@pytest.mark.parametrize("path", ["/cds-services/cart-risk-patient-view", "/fhir/CodeSystem/x",
                                  "/api/v1/predict"])
def test_gunicorns_refusals_under_json_paths_are_json(live, path):
    """Issue 22, item 8. Before: an HTML 400 under /cds-services and /fhir/."""
    base, _, _ = live
    status, headers, body = _exchange(base, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
    ).encode())
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["errors"][0]["field"] == "request"
