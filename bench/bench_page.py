"""Server CPU of one complete result page: the HTML and every figure (inline SVG, one request).

Two measurements, both on varied patients (blasts 0.1-95 %, ages 9-73, half of them with a
debulking target, which adds a second prediction and target arrows):

- in process: ``POST /result`` through Flask's test client, CPU time (``time.process_time``) of
  each request; median, 90th percentile and maximum (target: median <= 100 ms). The split into
  prediction, figures and template is measured the same way on the same patients;
- under gunicorn: ``cart-risk serve`` with one sync worker on 127.0.0.1, the pages posted one
  after the other with a CSRF token; the worker's CPU time (``/proc/PID/stat``, user + system)
  over all of them divided by their number (the kernel counts CPU in 10 ms ticks, so only the
  mean over many pages is meaningful).

Before this page drew its figures inline, each of its three figures was a separate
``GET /plot/...`` rendered by matplotlib: 0.1-0.27 s of CPU each, about 0.65 s a page.

Run (prints the machine, the package versions, each figure and this command)::

    .venv/bin/python bench/bench_page.py
    .venv/bin/python bench/bench_page.py --pages 400
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from load_client import REPO, Server, form_session
from machine import print_header

sys.path.insert(0, str(REPO))

TARGET_MS = 100.0


def patients(required: list[str], n: int) -> list[dict[str, str]]:
    """``n`` different valid patients as form text; every other one with a debulking target."""
    forms = []
    for i in range(n):
        blasts = round(0.1 + 94.9 * i / max(n - 1, 1), 2)
        patient = {"marrow_blasts_pct": f"{blasts:g}", "mrd_positive": "true",
                   "age_years": str(9 + (i * 7) % 65), "sex": "MF"[i % 2],
                   "ph_positive": str(i % 3 == 0).lower(), "prior_hsct": str(i % 4 == 0).lower(),
                   "relapsed": str(i % 2 == 0).lower(),
                   "prior_therapy_ge_6mo": str(i % 5 == 0).lower(),
                   "prior_chemo_ge_3": str(i % 2 == 1).lower(), "tp53_mutation": "false",
                   "poor_cytogenetics": str(i % 7 == 0).lower(), "tb_assessed": "before_fc"}
        form = {name: patient[name] for name in required}
        if i % 2:
            form["target_marrow_blasts_pct"] = f"{blasts / 4:g}"
        forms.append(form)
    return forms


def cpu_ms(function) -> tuple[float, object]:
    started = time.process_time()
    value = function()
    return (time.process_time() - started) * 1000, value


def describe(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"{label}: median {statistics.median(values):.2f} ms, p90 {p90:.2f} ms, "
            f"max {max(values):.2f} ms (n = {len(values)})")


def in_process(bundle_path: Path, forms: list[dict[str, str]]) -> float:
    from calculator import create_app, plots, results
    from calculator.extensions import calculator_state
    from model.outcomes import SURVIVAL_NAMES
    from model.patient import parse_form

    app = create_app({"BUNDLE_PATH": str(bundle_path), "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    for form in forms[:10]:  # warm-up: first-call imports and caches
        assert client.post("/result", data=form).status_code == 200
    pages, answers, figures, sizes = [], [], [], []
    with app.app_context():
        state = calculator_state()
        for form in forms:
            spent, response = cpu_ms(lambda: client.post("/result", data=form))
            assert response.status_code == 200 and b"<svg" in response.data
            pages.append(spent)
            sizes.append(len(response.data))
            patient = parse_form(form, required=state.bundle.predictor.required_fields,
                                 ignore=(results.TARGET_FIELD,))
            target = results.parse_target(form.get(results.TARGET_FIELD), patient)
            spent, view = cpu_ms(lambda: results.result_view(state.bundle, patient, target))
            answers.append(spent)

            def draw():
                answer = view["answer"]
                for name in SURVIVAL_NAMES:
                    plots.survival_figure(name, answer[name], state.cohort_curves.get(name, {}),
                                          state.bundle.follow_up.get(name))
                plots.treatment_window_figure(results.treatment_window(state.bundle, patient),
                                              patient["marrow_blasts_pct"], target)
                plots.scrs_bands_figure(view["bands"], answer["severe_crs"])
            figures.append(cpu_ms(draw)[0])
    median = statistics.median(pages)
    print(describe("complete result page, in process (POST /result, HTML + 4 inline figures)",
                   pages))
    print("  of which " + describe("prediction(s) (result_view)", answers))
    print("  of which " + describe("the 4 figures (incl. the treatment-window grid)", figures))
    print(f"  page size: median {statistics.median(sizes) / 1024:.0f} KB of HTML, no other "
          "request")
    print(f"  target: median <= {TARGET_MS:.0f} ms of server CPU: "
          f"{'met' if median <= TARGET_MS else 'MISSED'}")
    return median


def worker_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def under_gunicorn(bundle_path: Path, forms: list[dict[str, str]]) -> float:
    with tempfile.TemporaryDirectory() as folder, \
            Server(bundle_path, 1, Path(folder) / "server.log") as server:
        cookie, token = form_session(server.base_url)
        (pid,) = server.worker_pids()

        def post(form):
            body = urllib.parse.urlencode({**form, "csrf_token": token}).encode()
            request = urllib.request.Request(server.base_url + "/result", data=body, headers={
                "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200 and b"<svg" in answer.read()

        for form in forms[:10]:
            post(form)
        before, started = worker_cpu_seconds(pid), time.perf_counter()
        for form in forms:
            post(form)
        spent = worker_cpu_seconds(pid) - before
        wall = time.perf_counter() - started
    mean = spent / len(forms) * 1000
    print(f"complete result page under gunicorn (1 sync worker): worker CPU {mean:.1f} ms a page "
          f"on average over {len(forms)} pages; {len(forms) / wall:.0f} pages/s one at a time")
    return mean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained on first use)")
    parser.add_argument("--pages", type=int, default=200, help="patients (pages) measured")
    parser.add_argument("--no-server", action="store_true", help="skip the gunicorn run")
    args = parser.parse_args(argv)
    print_header("Result page: server CPU of the HTML and every figure")

    from calculator.defaults import ensure_default_bundle
    from model.bundle import load_predictor

    bundle_path = args.bundle or ensure_default_bundle()
    bundle = load_predictor(bundle_path)
    print(f"bundle: {bundle.id[:12]} (B = {bundle.manifest.get('bootstrap')})")
    forms = patients(list(bundle.predictor.required_fields), args.pages)
    in_process(bundle_path, forms)
    if not args.no_server:
        under_gunicorn(bundle_path, forms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
