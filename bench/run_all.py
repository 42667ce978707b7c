"""Run every benchmark in bench/, one after the other, and print their figures (``make bench``).

Each script runs as its own process with its default settings and prints its command, the
machine and its figures. The load benchmarks (``bench_api.py``, ``bench_load.py``) run too when
they are present. Nothing here judges speed: a slow machine prints slow figures, and the exit
code is non-zero only when a script fails.

Run::

    .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --only bench_cli bench_scoring
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
#: In order: quick ones first, the long training run last but one.
SCRIPTS = ("bench_cli", "bench_page", "bench_scoring", "bench_training", "bench_simulation",
           "bench_api", "bench_load", "bench_updating", "bench_ensemble", "bench_install")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=SCRIPTS,
                        help="run only these scripts")
    args = parser.parse_args(argv)
    chosen = [name for name in SCRIPTS if args.only is None or name in args.only]
    results = []
    for name in chosen:
        script = BENCH / f"{name}.py"
        if not script.exists():
            results.append((name, None, 0.0))
            continue
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], cwd=BENCH.parent).returncode
        results.append((name, code, time.perf_counter() - started))
        print(flush=True)
    print("== summary")
    for name, code, elapsed in results:
        state = "not present" if code is None else "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name:<16} {state}" + (f" in {elapsed:.0f} s" if code is not None else ""))
    return 1 if any(code not in (None, 0) for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
