"""Load and fault tolerance of the served calculator: gunicorn under sustained load, and a worker
killed mid-run.

Starts ``cart-risk serve`` (gunicorn, ``--workers`` threaded workers of
:data:`calculator.server.THREADS` threads) on a free port of 127.0.0.1 and
runs, from the bounded keep-alive client of ``bench/load_client.py``:

1. a warm-up of result pages (with their inline figures) and of the mix on every thread of
   every worker, so that everything is loaded and each thread's allocator arena has grown
   before memory is measured;
2. ``--requests`` requests (default 20,000) at ``--concurrency`` (default 32) of a clinic-like mix:
   in every 100 requests, 82 API predictions, 8 health checks, 4 form pages, 5 form posts (with
   their CSRF token; each result page carries its figures inline) and 1 "Change inputs" post
   (the values posted back to the form). Target: zero
   errors, and worker memory (RSS, sampled every second) that does not grow;
3. ``--kill-requests`` more requests of the same mix, during which one worker is SIGKILLed. Target:
   the service keeps answering, only the requests on that worker's connections fail (each
   client thread loses at most the one it had in flight, so at most ``--concurrency``), and
   gunicorn starts a replacement.

The client runs on the same cores as the server. Load only ever goes to 127.0.0.1; every phase is
bounded in count and time.

Run (prints the machine, the package versions, each figure and this command)::

    .venv/bin/python bench/bench_load.py
    .venv/bin/python bench/bench_load.py --requests 20000 --concurrency 32 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from load_client import REPO, Call, Server, form_session, rss_mb, run_load
from machine import print_header

sys.path.insert(0, str(REPO))

from calculator.server import THREADS  # noqa: E402  (after the path is set)

#: Growth of a worker's RSS over the main run above which memory counts as growing (MB).
GROWTH_TOLERANCE_MB = 5.0


def patient(i: int, required: list[str]) -> dict:
    """The ``i``-th of 97 different valid patients (blasts 0.1-95 %, ages 9-73)."""
    full = {"marrow_blasts_pct": round(0.1 + 94.9 * (i % 97) / 96, 2), "mrd_positive": True,
            "age_years": 9 + (i * 7) % 65, "sex": "MF"[i % 2], "ph_positive": i % 3 == 0,
            "prior_hsct": i % 4 == 0, "relapsed": i % 2 == 0, "prior_therapy_ge_6mo": i % 5 == 0,
            "prior_chemo_ge_3": i % 2 == 1, "tp53_mutation": False,
            "poor_cytogenetics": i % 7 == 0, "tb_assessed": "before_fc"}
    return {name: full[name] for name in required}


def as_text(values: dict) -> dict[str, str]:
    return {name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in values.items()}


def clinic_mix(required: list[str], cookie: str, token: str):
    """Request ``i`` of the mix described in the module docstring."""
    def call(i: int) -> Call:
        slot, person = i % 100, patient(i, required)
        if slot < 82:
            return Call("POST", "/api/v1/predict", json.dumps(person).encode(),
                        {"Content-Type": "application/json"}, label="api predict")
        if slot < 90:
            return Call("GET", "/healthz", label="healthz")
        if slot < 94:
            return Call("GET", "/", label="form page")
        if slot < 99:
            body = urllib.parse.urlencode({**as_text(person), "csrf_token": token}).encode()
            return Call("POST", "/result", body,
                        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
                        label="form post")
        body = urllib.parse.urlencode({**as_text(person), "csrf_token": token}).encode()
        return Call("POST", "/", body,
                    {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
                    label="change inputs")
    return call


class MemorySampler(threading.Thread):
    """RSS of the server's workers every ``interval`` seconds until stopped."""

    def __init__(self, server: Server, interval: float = 1.0):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.interval):
            sample = {}
            for pid in self.server.worker_pids():
                try:
                    sample[pid] = rss_mb(pid)
                except (OSError, AttributeError):
                    continue
            self.samples.append((time.monotonic() - started, sample))


def print_result(title: str, result) -> None:
    print(f"{title}: {result.summary()}")
    for label, (sent, failed) in sorted(result.by_label.items()):
        print(f"    {label:12s} {sent:6d} requests, {failed} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained on first use)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kill-requests", type=int, default=6_000)
    parser.add_argument("--kill-after", type=float, default=2.0, metavar="SECONDS",
                        help="SIGKILL a worker this long into the kill phase")
    args = parser.parse_args(argv)
    print_header("Load and worker-kill benchmark (gunicorn, loopback)")

    from calculator.defaults import ensure_default_bundle
    from model.bundle import load_predictor

    bundle_path = args.bundle or ensure_default_bundle()
    bundle = load_predictor(bundle_path)
    required = list(bundle.predictor.required_fields)
    print(f"bundle: {bundle.id[:12]} (B = {bundle.manifest.get('bootstrap')}), workers: "
          f"{args.workers} x {THREADS} threads, client: {args.concurrency} threads with "
          f"keep-alive")
    ok = True
    with tempfile.TemporaryDirectory() as folder, \
            Server(bundle_path, args.workers, Path(folder) / "server.log") as server:
        cookie, token = form_session(server.base_url)
        mix = clinic_mix(required, cookie, token)
        pages = [mix(94 + 100 * k) for k in range(3)]
        # Every thread of every worker draws result pages and answers the mix before memory is
        # measured: each thread's first requests grow its own allocator arena.
        threads = args.workers * THREADS
        warm = run_load(server.base_url, pages * (2 * threads), 6 * threads, threads,
                        time_limit=300)
        warm_mix = run_load(server.base_url, mix, 2000, max(8, 2 * threads), time_limit=300)
        print_result("warm-up (result pages)", warm)
        print_result("warm-up (mix)", warm_mix)
        pids = server.worker_pids()
        before = {pid: rss_mb(pid) for pid in pids}

        sampler = MemorySampler(server)
        sampler.start()
        main_run = run_load(server.base_url, mix, args.requests, args.concurrency,
                            time_limit=900)
        sampler.stopped.set()
        sampler.join()
        after = {pid: rss_mb(pid) for pid in pids}
        print()
        print_result(f"main run ({args.requests} requests, concurrency {args.concurrency})",
                     main_run)
        print("worker memory (RSS, MB):")
        for pid in pids:
            series = [sample[pid] for _, sample in sampler.samples if pid in sample] \
                or [after[pid]]
            quarters = ", ".join(f"{series[min(len(series) - 1, len(series) * k // 4)]:.1f}"
                                 for k in (1, 2, 3))
            growth = after[pid] - before[pid]
            print(f"    worker {pid}: after warm-up {before[pid]:.1f}; at 1/4, 1/2, 3/4 of the "
                  f"run {quarters}; after it {after[pid]:.1f}; peak {max(series):.1f} "
                  f"(growth {growth:+.1f} MB, tolerance {GROWTH_TOLERANCE_MB:.0f})")
            ok &= growth <= GROWTH_TOLERANCE_MB
        ok &= main_run.error_count == 0

        victim = pids[0]
        killed_at: list[float] = []

        def kill_one() -> None:
            time.sleep(args.kill_after)
            os.kill(victim, signal.SIGKILL)
            killed_at.append(time.monotonic())

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        kill_run = run_load(server.base_url, mix, args.kill_requests, args.concurrency,
                            time_limit=600)
        killer.join()
        replaced = server.wait_for_workers(exclude={victim})
        new = sorted(set(replaced) - set(pids))
        health = run_load(server.base_url, [Call("GET", "/healthz")], 50, 4, time_limit=60)
        print()
        print_result(f"kill run ({args.kill_requests} requests; worker {victim} SIGKILLed "
                     f"{args.kill_after:.0f} s in)", kill_run)
        print(f"    replacement worker(s): {new}; workers now {replaced}; afterwards: "
              f"{health.summary()}")
        # A killed threaded worker drops every connection it holds: each client thread loses
        # at most the one request it had in flight there.
        ok &= (kill_run.error_count <= args.concurrency and health.error_count == 0
               and bool(new))
    print()
    print("result: " + ("all targets met" if ok else "TARGET MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
