"""A bounded HTTP load client for loopback benchmarks, and the gunicorn server it runs against.

:func:`run_load` sends a fixed number of requests from a fixed number of threads, each with its own
keep-alive ``http.client`` connection (reopened whenever the server closes it, e.g. after its
keep-alive timeout). It is bounded twice, by the request count and by a time limit,
and it only ever targets the loopback interface: any other host is refused before a request is
sent. :class:`Server` starts ``cart-risk serve`` on a free loopback port and reads its workers'
memory from ``/proc``.

Used by ``bench/bench_api.py`` and ``bench/bench_load.py``.
"""
from __future__ import annotations

import http.client
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
#: Longest a run may last whatever its request count (seconds).
DEFAULT_TIME_LIMIT = 600.0


@dataclass(frozen=True)
class Call:
    """One request to send: method, path (with query), body and headers."""

    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expected: tuple[int, ...] = (200,)
    label: str = ""


@dataclass
class LoadResult:
    """What a run measured.

    Attributes
    ----------
    sent : int
        Requests attempted.
    elapsed : float
        Wall time of the run, seconds.
    latencies : list of float
        Seconds from sending to the whole answer read, one per successful request.
    statuses : collections.Counter
        HTTP status -> count (0 for a request that got no answer).
    errors : collections.Counter
        Error kind -> count: an unexpected status, or the exception of a failed exchange.
    by_label : dict
        Label of the calls -> (requests, errors).
    """

    sent: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    by_label: dict[str, list[int]] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Successful requests a second."""
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the latencies, milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    def summary(self) -> str:
        return (f"{self.sent} requests in {self.elapsed:.1f} s: {self.throughput:.0f} req/s, "
                f"p50 {self.percentile_ms(50):.1f} ms, p99 {self.percentile_ms(99):.1f} ms, "
                f"errors {self.error_count}" + (f" {dict(self.errors)}" if self.errors else ""))


def require_loopback(base_url: str) -> tuple[str, int]:
    """(host, port) of ``base_url``; refuses any host that is not on the loopback interface."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"expected http://127.0.0.1:PORT, got {base_url!r}")
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None if parts.hostname != "localhost" else ipaddress.ip_address("127.0.0.1")
    if address is None or not address.is_loopback:
        raise ValueError(f"load is only ever sent to the loopback interface, not {parts.hostname}")
    return parts.hostname, parts.port


def run_load(base_url: str, calls: Sequence[Call] | Callable[[int], Call], total: int,
             concurrency: int, *, time_limit: float = DEFAULT_TIME_LIMIT,
             timeout: float = 30.0) -> LoadResult:
    """Send ``total`` requests from ``concurrency`` threads; stop early at ``time_limit``.

    Parameters
    ----------
    base_url : str
        ``http://127.0.0.1:PORT`` (loopback only, see :func:`require_loopback`).
    calls : sequence of Call, or callable
        Request ``i`` is ``calls[i % len(calls)]``, or ``calls(i)``.
    total : int
        Requests to send (at most).
    concurrency : int
        Threads, each with one connection.
    time_limit : float
        Seconds after which no new request is started.
    timeout : float
        Socket timeout of each connection, seconds.

    Returns
    -------
    LoadResult
    """
    host, port = require_loopback(base_url)
    pick = calls if callable(calls) else (lambda i: calls[i % len(calls)])
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.monotonic() + time_limit

    def next_index() -> int | None:
        with lock:
            if time.monotonic() > deadline:
                return None
            return next(counter, None)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        latencies, statuses, errors, labels = [], Counter(), Counter(), {}
        while (index := next_index()) is not None:
            call = pick(index)
            counts = labels.setdefault(call.label or call.path.split("?")[0], [0, 0])
            counts[0] += 1
            started = time.perf_counter()
            try:
                connection.request(call.method, call.path, body=call.body, headers=call.headers)
                answer = connection.getresponse()
                answer.read()
                elapsed = time.perf_counter() - started
                statuses[answer.status] += 1
                if answer.status in call.expected:
                    latencies.append(elapsed)
                else:
                    errors[f"status {answer.status}"] += 1
                    counts[1] += 1
                if answer.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as problem:
                statuses[0] += 1
                errors[type(problem).__name__] += 1
                counts[1] += 1
                connection.close()  # the next request reconnects
        connection.close()
        with lock:
            result.latencies.extend(latencies)
            result.statuses.update(statuses)
            result.errors.update(errors)
            for label, (sent, failed) in labels.items():
                merged = result.by_label.setdefault(label, [0, 0])
                merged[0] += sent
                merged[1] += failed

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - started
    result.sent = sum(result.statuses.values())
    return result


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``cart-risk serve`` (gunicorn, threaded workers) on a free port of 127.0.0.1.

    Parameters
    ----------
    bundle : path
    workers : int
    log : path
        Where the server's output goes.
    """

    def __init__(self, bundle: str | os.PathLike, workers: int, log: str | os.PathLike):
        self.bundle, self.workers, self.log = Path(bundle), workers, Path(log)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "calculator.cli", "serve", "--bundle", str(self.bundle),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers)], cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"cart-risk serve exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2):
                    pass
                if len(self.worker_pids()) == self.workers:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"no answer from {self.base_url} in 60 s")
            time.sleep(0.2)

    def __exit__(self, *_exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def worker_pids(self) -> list[int]:
        """PIDs of the gunicorn workers (children of the master this object started)."""
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(child) for child in text.split())

    def wait_for_workers(self, exclude: set[int], timeout: float = 30) -> list[int]:
        """Wait until there are ``workers`` workers none of which is in ``exclude``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) == self.workers and not set(pids) & exclude:
                return pids
            time.sleep(0.1)
        raise RuntimeError(f"workers not replaced within {timeout} s: {self.worker_pids()}")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MB (``VmRSS`` in ``/proc/PID/status``)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def form_session(base_url: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a freshly served form, for form posts under load."""
    require_loopback(base_url)
    with urllib.request.urlopen(base_url + "/", timeout=30) as answer:
        cookie = answer.headers["Set-Cookie"].split(";", 1)[0]
        html = answer.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return cookie, token
