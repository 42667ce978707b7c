"""API throughput: ``POST /api/v1/predict`` against ``GET /healthz`` on the same gunicorn server.

Starts ``cart-risk serve`` (gunicorn, sync workers) on a free port of 127.0.0.1, warms it up, then
measures, in one run and against the same server:

- memory: the resident set (RSS) of each worker after warm-up and after 1,000 more predictions
  (target: at most 150 MB a worker);
- throughput and latency of ``GET /healthz`` and of ``POST /api/v1/predict`` (patients varied
  over blasts and age), each ``--requests`` requests at ``--concurrency`` from the keep-alive load
  client of ``bench/load_client.py``, alternated over ``--rounds`` rounds so that a slower moment
  of the machine hits both alike; the median round of each is reported (target: predict at least
  50 % of healthz's requests/s, zero errors).

The load client runs in this process, on the same cores as the server: the figures are for the
whole loopback system, not the server alone. Load only ever goes to 127.0.0.1 and every phase is
bounded in count and time.

Run (prints the machine, the package versions, each figure and this command)::

    .venv/bin/python bench/bench_api.py
    .venv/bin/python bench/bench_api.py --workers 2 --concurrency 32 --requests 5000
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from load_client import REPO, Call, Server, rss_mb, run_load
from machine import print_header

sys.path.insert(0, str(REPO))

#: Targets from the performance issue.
TARGET_RATIO = 0.5
TARGET_RSS_MB = 150.0


def predict_calls(required: list[str], n: int = 97) -> list[Call]:
    """``n`` different valid patients as API calls (blasts 0.1-95 %, ages 9-73)."""
    calls = []
    for i in range(n):
        patient = {"marrow_blasts_pct": round(0.1 + (94.9 * i / (n - 1)), 2),
                   "mrd_positive": True, "age_years": 9 + (i * 7) % 65, "sex": "MF"[i % 2],
                   "ph_positive": i % 3 == 0, "prior_hsct": i % 4 == 0, "relapsed": i % 2 == 0,
                   "prior_therapy_ge_6mo": i % 5 == 0, "prior_chemo_ge_3": i % 2 == 1,
                   "tp53_mutation": False, "poor_cytogenetics": i % 7 == 0,
                   "tb_assessed": "before_fc"}
        body = json.dumps({name: patient[name] for name in required}).encode()
        calls.append(Call("POST", "/api/v1/predict", body,
                          {"Content-Type": "application/json"}, label="predict"))
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained on first use)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000, help="per endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-requests", type=int, default=1000)
    args = parser.parse_args(argv)
    print_header("API throughput: POST /api/v1/predict vs GET /healthz (gunicorn, loopback)")

    from calculator.defaults import ensure_default_bundle
    from model.bundle import load_predictor

    bundle_path = args.bundle or ensure_default_bundle()
    bundle = load_predictor(bundle_path)
    print(f"bundle: {bundle.id[:12]} (B = {bundle.manifest.get('bootstrap')}), "
          f"workers: {args.workers} sync, client: {args.concurrency} threads with keep-alive")
    predict = predict_calls(list(bundle.predictor.required_fields))
    healthz = [Call("GET", "/healthz", label="healthz")]

    with tempfile.TemporaryDirectory() as folder, \
            Server(bundle_path, args.workers, Path(folder) / "server.log") as server:
        warm = run_load(server.base_url, predict + healthz, 400, 4, time_limit=120)
        assert warm.error_count == 0, warm.summary()
        pids = server.worker_pids()
        after_warm_up = {pid: rss_mb(pid) for pid in pids}
        memory = run_load(server.base_url, predict, args.memory_requests, args.concurrency,
                          time_limit=300)
        after_more = {pid: rss_mb(pid) for pid in pids}
        rounds = {"healthz": [], "predict": []}
        for _ in range(args.rounds):
            for name, calls in (("healthz", healthz), ("predict", predict)):
                rounds[name].append(run_load(server.base_url, calls, args.requests,
                                             args.concurrency, time_limit=300))
        after_all = {pid: rss_mb(pid) for pid in server.worker_pids()}

    print()
    print("memory (RSS of each worker, MB):")
    for pid in pids:
        print(f"  worker {pid}: after warm-up {after_warm_up[pid]:.1f}, after "
              f"{args.memory_requests} more predictions {after_more[pid]:.1f}, after all "
              f"{after_all.get(pid, float('nan')):.1f}")
    worst = max(after_more.values())
    print(f"  largest after {args.memory_requests} predictions: {worst:.1f} MB "
          f"(target <= {TARGET_RSS_MB:.0f} MB: {'met' if worst <= TARGET_RSS_MB else 'MISSED'})"
          f"; memory phase: {memory.summary()}")
    print()
    median = {}
    for name, results in rounds.items():
        for number, result in enumerate(results, 1):
            print(f"{name:8s} round {number}: {result.summary()}")
        median[name] = statistics.median(result.throughput for result in results)
    ratio = median["predict"] / median["healthz"]
    print(f"median req/s: healthz {median['healthz']:.0f}, predict {median['predict']:.0f}")
    errors = sum(result.error_count for result in
                 (warm, memory, *rounds["healthz"], *rounds["predict"]))
    print(f"predict / healthz throughput: {ratio:.0%} (target >= {TARGET_RATIO:.0%}: "
          f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}); errors in all phases: {errors}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
