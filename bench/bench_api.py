"""API throughput: ``POST /api/v1/predict`` against ``GET /healthz`` on the same gunicorn server.

Starts ``cart-risk serve`` (gunicorn, threaded workers: calculator/server.py) on a free port of 127.0.0.1, warms it up, then
measures, in one run and against the same server:

- memory: the resident set (RSS) of each worker after warm-up and after 1,000 more predictions
  (target: at most 150 MB a worker);
- the answer: every benchmark patient's answer from the server is compared with
  :func:`model.predictor.prediction_answer` computed here (unchanged by serving);
- throughput and latency of ``GET /healthz`` and of ``POST /api/v1/predict`` (97 patients varied
  over blasts, age and history, in turn) with **wrk** (Debian's ``wrk`` package: ``-t2 -c16``,
  ``--seconds`` each; a Lua script sends the patients and counts any non-2xx answer as an
  error), alternated over ``--rounds`` rounds so that a slower moment of the machine hits both
  alike; the median round of each is reported (target: predict at least 50 % of healthz's
  requests/s, zero errors). Without wrk (``--client python``) the bounded keep-alive client of
  ``bench/load_client.py`` sends ``--requests`` requests instead.

The load tool runs on the same cores as the server: the figures are for the whole loopback
system, not the server alone. Load only ever goes to 127.0.0.1 and every phase is bounded in
count or time.

Run (prints the machine, the package versions, each figure and this command)::

    .venv/bin/python bench/bench_api.py
    .venv/bin/python bench/bench_api.py --workers 2 --connections 16 --seconds 10 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
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


#: wrk's Lua script: the bodies in turn, and one machine-readable line at the end.
WRK_SCRIPT = """
local bodies = {%s}
local index = 0
wrk.method = "%s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  if #bodies == 0 then return wrk.format() end
  index = index %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[index])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%.0f %%.0f\\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50),
    latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    """One wrk run: requests, socket errors, non-2xx answers, p50/p99 latency (us), duration."""

    requests: int
    socket_errors: int
    status_errors: int
    p50_us: float
    p99_us: float
    seconds: float

    @property
    def error_count(self) -> int:
        return self.socket_errors + self.status_errors

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> str:
        return (f"{self.requests} requests in {self.seconds:.0f} s, {self.throughput:.0f} req/s, "
                f"p50 {self.p50_us / 1000:.1f} ms, p99 {self.p99_us / 1000:.1f} ms, "
                f"{self.socket_errors} socket errors, {self.status_errors} non-2xx")


def run_wrk(wrk: str, url: str, bodies: list[bytes], seconds: int, threads: int,
            connections: int, folder: Path) -> WrkResult:
    """One bounded wrk run against ``url`` (loopback only), POSTing ``bodies`` in turn if any."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load only goes to 127.0.0.1 (got {url})")
    quoted = ", ".join("[==[" + body.decode() + "]==]" for body in bodies)
    script = folder / "wrk.lua"
    script.write_text(WRK_SCRIPT % (quoted, "POST" if bodies else "GET"))
    done = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                           "--timeout", "10s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    requests, socket_errors, status_errors, p50, p99 = line.split()[1:]
    return WrkResult(int(requests), int(socket_errors), int(status_errors), float(p50),
                     float(p99), float(seconds))


def workers_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the given processes so far (seconds), from ``/proc``."""
    import os

    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def answers_unchanged(base_url: str, calls: list[Call], bundle) -> int:
    """How many served answers differ from :func:`prediction_answer` computed in this process."""
    from model.patient import parse_patient
    from model.predictor import prediction_answer

    differing = 0
    for call in calls:
        request = urllib.request.Request(base_url + call.path, data=call.body,
                                         headers=call.headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            served = json.loads(answer.read())
        patient = parse_patient(json.loads(call.body),
                                required=bundle.predictor.required_fields)
        expected = json.loads(json.dumps(prediction_answer(bundle, patient)))
        differing += served != expected
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained on first use)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (threaded, calculator.server.THREADS threads each)")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk",
                        help="load tool (default: wrk, Debian package)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--seconds", type=int, default=10, help="wrk run length, per endpoint")
    parser.add_argument("--concurrency", type=int, default=32, help="python client threads")
    parser.add_argument("--requests", type=int, default=5000,
                        help="python client requests, per endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-requests", type=int, default=1000)
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if args.client == "wrk" and wrk is None:
        print("wrk not found (apt-get install wrk), or run with --client python", file=sys.stderr)
        return 2
    print_header("API throughput: POST /api/v1/predict vs GET /healthz (gunicorn, loopback)")

    from calculator.defaults import ensure_default_bundle
    from calculator.server import THREADS
    from model.bundle import load_predictor

    bundle_path = args.bundle or ensure_default_bundle()
    bundle = load_predictor(bundle_path)
    client = (f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s" if args.client == "wrk"
              else f"python client, {args.concurrency} threads with keep-alive")
    print(f"bundle: {bundle.id[:12]} (B = {bundle.manifest.get('bootstrap')}), "
          f"workers: {args.workers} threaded (x {THREADS} threads), load: {client}")
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
        differing = answers_unchanged(server.base_url, predict, bundle)
        rounds = {"healthz": [], "predict": []}
        cpu_ms = {"healthz": [], "predict": []}
        for _ in range(args.rounds):
            for name, calls in (("healthz", healthz), ("predict", predict)):
                before = workers_cpu_seconds(server.worker_pids())
                if args.client == "wrk":
                    bodies = [call.body for call in calls if call.body]
                    rounds[name].append(run_wrk(wrk, server.base_url + calls[0].path, bodies,
                                                args.seconds, args.threads, args.connections,
                                                Path(folder)))
                else:
                    rounds[name].append(run_load(server.base_url, calls, args.requests,
                                                 args.concurrency, time_limit=300))
                spent = workers_cpu_seconds(server.worker_pids()) - before
                done = rounds[name][-1]
                count = done.requests if isinstance(done, WrkResult) else done.sent
                cpu_ms[name].append(spent * 1000 / max(count, 1))
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
    print(f"server CPU a request (gunicorn workers, /proc): healthz "
          f"{statistics.median(cpu_ms['healthz']):.2f} ms, predict "
          f"{statistics.median(cpu_ms['predict']):.2f} ms (median round; robust to a busy "
          "machine, unlike req/s)")
    errors = sum(result.error_count for result in
                 (warm, memory, *rounds["healthz"], *rounds["predict"]))
    print(f"answers: {len(predict) - differing} of {len(predict)} served answers identical to "
          f"prediction_answer computed in this process")
    print(f"predict / healthz throughput: {ratio:.0%} (target >= {TARGET_RATIO:.0%}: "
          f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}); errors in all phases: {errors}")
    return 0 if errors == 0 and differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
