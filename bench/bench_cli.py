"""One-shot CLI: whole-process time of ``cart-risk predict --json ...``.

The figure is the median wall time of N complete processes (interpreter start, imports, bundle
verification, prediction, JSON output), target <= 1.0 s on the 2-core reference machine. In the
same run the script times ``python -c "import lifelines"`` (what the prediction path would pay if
it imported the fitting stack) and ``python -c pass`` (the interpreter's own start), so the
figures can be compared on any machine.

Timing uses hyperfine (``--shell=none``) when it is installed, else this script's own
subprocess timing (fork to exit, measured by a small launcher process). The patient is
the example patient of docs/api.md; the bundle is the default one (``cart-risk`` without ``--bundle``), trained
first if missing, unless ``--bundle`` is given.

Run::

    .venv/bin/python bench/bench_cli.py
    .venv/bin/python bench/bench_cli.py --runs 50 --timer subprocess
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import REPO, print_header, run_measured  # noqa: E402

PATIENT_OPTIONS = ["--blasts", "12", "--mrd-positive", "true", "--age-years", "30", "--sex", "M",
                   "--ph-positive", "false", "--prior-therapy-ge-6mo", "true",
                   "--prior-chemo-ge-3", "true", "--prior-hsct", "false", "--relapsed", "true",
                   "--tp53-mutation", "false", "--poor-cytogenetics", "false",
                   "--tb-assessed", "before_fc"]


def commands(bundle: Path | None) -> dict[str, list[str]]:
    """The timed commands, by label."""
    console = Path(sys.executable).parent / "cart-risk"
    cart_risk = [str(console)] if console.exists() else [sys.executable, "-m", "calculator.cli"]
    bundle_option = ["--bundle", str(bundle)] if bundle is not None else []
    return {"cart-risk predict --json": [*cart_risk, "predict", *bundle_option, "--json",
                                         *PATIENT_OPTIONS],
            'python -c "import lifelines"': [sys.executable, "-c", "import lifelines"],
            'python -c "pass"': [sys.executable, "-c", "pass"]}


def with_subprocess(timed: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Wall times (s) of each command, the commands interleaved run by run (so that a busy
    moment of the machine does not land on one command only)."""
    times: dict[str, list[float]] = {label: [] for label in timed}
    for run in range(warmup + runs):
        for label, command in timed.items():
            measured = run_measured(command)
            if measured.returncode != 0:
                raise SystemExit(f"{label} failed ({measured.returncode}): "
                                 f"{measured.stderr[-2000:]}")
            if run >= warmup:
                times[label].append(measured.seconds)
    return times


def with_hyperfine(timed: dict[str, list[str]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Wall times (s) of each command measured by hyperfine (no shell in between)."""
    import shlex

    with tempfile.TemporaryDirectory() as workdir:
        report = Path(workdir) / "hyperfine.json"
        subprocess.run(["hyperfine", "--shell=none", "--style", "none", "--warmup", str(warmup),
                        "--runs", str(runs), "--export-json", str(report),
                        *(shlex.join(command) for command in timed.values())],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        results = json.loads(report.read_text())["results"]
    return {label: result["times"] for label, result in zip(timed, results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timer", choices=["auto", "hyperfine", "subprocess"], default="auto")
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the default "
                                                    "bundle, trained first if missing)")
    args = parser.parse_args(argv)
    print_header("one-shot CLI: cart-risk predict --json", argv)
    if args.bundle is None:
        from calculator.defaults import ensure_default_bundle

        print(f"bundle: the default bundle, {ensure_default_bundle()}")
    else:
        print(f"bundle: {args.bundle}")
    timer = args.timer
    if timer == "auto":
        timer = "hyperfine" if shutil.which("hyperfine") else "subprocess"
    timed = commands(args.bundle)
    measure = with_hyperfine if timer == "hyperfine" else with_subprocess
    print(f"timer: {timer}; {args.runs} runs of each command after {args.warmup} warm-up runs",
          flush=True)
    times = measure(timed, args.runs, args.warmup)
    for label, values in times.items():
        print(f"{label:<30} median {statistics.median(values):.3f} s  (min "
              f"{min(values):.3f}, max {max(values):.3f}, mean {statistics.fmean(values):.3f})")
    predict, lifelines = (statistics.median(times[label]) for label in list(timed)[:2])
    print(f"cart-risk predict --json takes {predict / lifelines:.2f} x the time of importing "
          f"lifelines; target <= 1.0 s: {'met' if predict <= 1.0 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
