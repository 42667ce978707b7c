"""``GET /metrics`` in the Prometheus text format, off unless ``CART_RISK_METRICS=1``.

Series (every label is a name from a fixed set; no label or value holds a patient's data):

- ``cart_risk_requests_total{endpoint, status}``: answers, by Flask endpoint name (``api.predict``,
  ``web.result``; ``unmatched`` for a 404 outside every route), never the raw path.
- ``cart_risk_request_duration_seconds{endpoint, status}``: histogram of the time in the app.
- ``cart_risk_predictions_total{outcome}``: successful (2xx) answers of the prediction endpoints
  (:data:`PREDICTION_ENDPOINTS`), counted once for each outcome the bundle models. A CDS Hooks
  call counts when it answers 2xx, even if its card only says what is missing.
- ``cart_risk_bundle_info{bundle_id, bundle_format, version}``: 1; the bundle served and this
  release. (An ``Info`` metric renders the same; it is a gauge because ``Info`` does not work in
  prometheus_client's multiprocess mode.)

Under gunicorn every worker counts into files of one directory, ``PROMETHEUS_MULTIPROC_DIR``,
which :func:`prepare_multiprocess_dir` sets in the master before any worker starts (a fresh
temporary directory unless ``CART_RISK_METRICS_DIR`` names one); the master's hooks mark a dead
worker's files (:func:`worker_exited`) and remove a temporary directory at exit
(:func:`server_exited`). prometheus_client is imported only when metrics are on, and only after
that directory is set: it picks its storage when first imported.

With ``CART_RISK_METRICS_TOKEN`` set, ``/metrics`` answers 401 without
``Authorization: Bearer <token>``.
"""
from __future__ import annotations

import hmac
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from model.errors import ConfigurationError

SWITCH_VARIABLE = "CART_RISK_METRICS"
DIRECTORY_VARIABLE = "CART_RISK_METRICS_DIR"
TOKEN_VARIABLE = "CART_RISK_METRICS_TOKEN"
#: prometheus_client's own variable: where multiprocess workers write their counts.
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The directory :func:`prepare_multiprocess_dir` made in this (master) process, if any.
_made_here: list[Path] = []
MIN_TOKEN_LENGTH = 16
#: The endpoints whose 2xx answers carry predictions.
PREDICTION_ENDPOINTS = frozenset({"api.predict", "web.result", "result_links.result_page",
                                  "cds_hooks.call_service"})
#: Latency buckets (seconds): an API answer takes a few ms, a result page about 10 ms.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_enabled() -> bool:
    """``$CART_RISK_METRICS``: ``1``/``true``/``yes`` on; unset, empty, ``0``/``false``/``no`` off.

    Raises
    ------
    ConfigurationError
        For any other value.
    """
    value = os.environ.get(SWITCH_VARIABLE, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{SWITCH_VARIABLE} must be 1 or 0 (got {value!r})")


def metrics_token() -> str | None:
    """``$CART_RISK_METRICS_TOKEN`` (None when unset or empty).

    Raises
    ------
    ConfigurationError
        A token shorter than :data:`MIN_TOKEN_LENGTH` characters.
    """
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(f"{TOKEN_VARIABLE} has {len(token)} characters; at least "
                                 f"{MIN_TOKEN_LENGTH} are needed")
    return token or None


def prepare_multiprocess_dir() -> Path | None:
    """In the server's master, before workers fork: the directory the workers count into.

    Does nothing (None) when metrics are off, or when it was already prepared in this process.
    ``$CART_RISK_METRICS_DIR`` is used when set (its leftover ``*.db`` files from an earlier run
    are removed, as prometheus_client requires); otherwise a new temporary directory, removed by
    :func:`server_exited`.
    """
    if not metrics_enabled():
        return None
    if os.environ.get(MULTIPROC_VARIABLE):  # set by the operator, or prepared already
        return Path(os.environ[MULTIPROC_VARIABLE])
    configured = os.environ.get(DIRECTORY_VARIABLE, "").strip()
    if configured:
        directory = Path(configured)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob("*.db"):
                stale.unlink()
        except OSError as problem:
            raise ConfigurationError(f"{DIRECTORY_VARIABLE} {directory}: "
                                     f"{problem.strerror or problem}") from None
    else:
        directory = Path(tempfile.mkdtemp(prefix="cart-risk-metrics-"))
        _made_here.append(directory)
    os.environ[MULTIPROC_VARIABLE] = str(directory)
    return directory


def worker_exited(server, worker) -> None:
    """gunicorn's ``child_exit`` hook: the dead worker's live gauges no longer count."""
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def server_exited(server) -> None:
    """gunicorn's ``on_exit`` hook: remove the temporary metrics directory this master made."""
    while _made_here:
        shutil.rmtree(_made_here.pop(), ignore_errors=True)


@lru_cache(maxsize=1)
def _series():
    """The metric objects, made once per process (after the multiprocess directory is set)."""
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "requests": Counter("cart_risk_requests", "Answers by Flask endpoint and HTTP status",
                            ["endpoint", "status"]),
        "latency": Histogram("cart_risk_request_duration_seconds",
                             "Time to answer in the app, by Flask endpoint and HTTP status",
                             ["endpoint", "status"], buckets=LATENCY_BUCKETS),
        "predictions": Counter("cart_risk_predictions",
                               "Successful answers of the prediction endpoints, per outcome "
                               "the bundle models", ["outcome"]),
        "bundle": Gauge("cart_risk_bundle_info", "The bundle served and this release (always 1)",
                        ["bundle_id", "bundle_format", "version"], multiprocess_mode="max"),
    }


def init_app(app, bundle) -> None:
    """Count requests and serve ``/metrics`` when ``CART_RISK_METRICS`` is on; else nothing.

    Raises
    ------
    ConfigurationError
        A bad ``CART_RISK_METRICS`` or ``CART_RISK_METRICS_TOKEN``.
    """
    if not metrics_enabled():
        return
    from model.release import __version__
    from model.bundle import FORMAT_VERSION

    app.config["METRICS_TOKEN"] = metrics_token()
    series = _series()
    series["bundle"].labels(bundle_id=bundle.id,
                            bundle_format=str(bundle.manifest.get("format_version",
                                                                  FORMAT_VERSION)),
                            version=__version__).set(1)
    app.extensions["cart_risk_metrics"] = tuple(bundle.predictor.models)  # cr, severe_crs...
    app.before_request(_start_clock)
    app.after_request(_count)
    app.add_url_rule("/metrics", "metrics", _metrics_page)


def _start_clock() -> None:
    from flask import g

    g.metrics_started = time.perf_counter()


def _count(response):
    from flask import current_app, g, request

    series = _series()
    endpoint = request.endpoint or "unmatched"
    status = str(response.status_code)
    series["requests"].labels(endpoint=endpoint, status=status).inc()
    started = g.get("metrics_started")
    if started is not None:
        series["latency"].labels(endpoint=endpoint, status=status).observe(
            time.perf_counter() - started)
    if endpoint in PREDICTION_ENDPOINTS and 200 <= response.status_code < 300:
        for outcome in current_app.extensions["cart_risk_metrics"]:
            series["predictions"].labels(outcome=outcome).inc()
    return response


def _metrics_page():
    from flask import Response, current_app, request
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("a bearer token is needed for /metrics\n", status=401,
                            mimetype="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE)
