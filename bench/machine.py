"""What every benchmark prints first: the command that reproduces it and the machine it ran on.

Also the single-core setup of the scoring benchmarks: :func:`one_core` pins the process (and the
subprocesses it starts) to one CPU and limits BLAS / OpenMP to one thread.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Packages whose versions a benchmark reports (absent ones are skipped).
PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "lifelines", "joblib", "flask",
            "gunicorn", "dask", "distributed", "threadpoolctl")
#: Environment variables that cap the threads of BLAS / OpenMP libraries.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def command_line(argv: list[str] | None = None) -> str:
    """The command that reproduces this run, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    python = ".venv/bin/python" if Path(sys.executable).parent.parent == REPO / ".venv" \
        else sys.executable
    return " ".join(shlex.quote(part) for part in
                    [python, str(script), *(sys.argv[1:] if argv is None else argv)])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines() -> list[str]:
    """Cores, CPU, OS, Python and library versions, one fact a line."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    lines = [f"machine: {os.cpu_count()} cores ({usable} usable by this process), "
             f"{_cpu_model()}, {platform.platform()}",
             f"python: {platform.python_implementation()} {platform.python_version()}",
             "versions: " + ", ".join(versions)]
    try:
        import numpy  # noqa: F401  (loads the BLAS library that threadpoolctl then reports)
        from threadpoolctl import threadpool_info

        pools = [f"{pool['internal_api']} {pool.get('version') or ''} "
                 f"({pool['num_threads']} threads)".replace("  ", " ")
                 for pool in threadpool_info()]
        if pools:
            lines.append("thread pools: " + ", ".join(pools))
    except ImportError:
        pass
    return lines


def print_header(title: str, argv: list[str] | None = None) -> None:
    """Print the title, the reproducing command and the machine lines."""
    print(f"== {title}")
    print(f"command: {command_line(argv)}")
    for line in machine_lines():
        print(line)
    sys.stdout.flush()


def one_core() -> int:
    """Pin this process to one CPU and its BLAS / OpenMP pools to one thread.

    The environment variables are also set, so subprocesses started afterwards inherit the
    limit (and the CPU affinity). Call before timing; returns the CPU used.

    Returns
    -------
    int
        The CPU number this process now runs on.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # numpy's own loops are single-threaded; only BLAS could use more
        pass
    return cpu


# A small process that starts the measured command and reports its wall time and peak memory.
# Measuring from the benchmark process itself would count that (larger) process's pages in the
# child's peak resident memory: they are the child's until it execs.
_MEASURE = """
import json, os, subprocess, sys, time
report, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
process = subprocess.Popen(command)
_, status, usage = os.wait4(process.pid, 0)
elapsed = time.perf_counter() - started
with open(report, "w") as handle:
    json.dump({"seconds": elapsed, "max_rss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, handle)
"""


@dataclass(frozen=True)
class Measured:
    """One measured process: wall time (s), peak resident memory (MB), exit code, output."""

    seconds: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(command: list[str], cwd: Path = REPO) -> Measured:
    """Run ``command`` and measure its wall time (fork to exit) and peak resident memory."""
    with tempfile.TemporaryDirectory() as workdir:
        report = Path(workdir) / "report.json"
        out, err = Path(workdir) / "stdout", Path(workdir) / "stderr"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            subprocess.run([sys.executable, "-c", _MEASURE, str(report), *command], cwd=cwd,
                           stdout=stdout, stderr=stderr, check=False)
        if not report.exists():
            raise RuntimeError(f"could not measure {command}: {err.read_text(errors='replace')}")
        figures = json.loads(report.read_text())
        return Measured(figures["seconds"], figures["max_rss_kb"] / 1024, figures["returncode"],
                        out.read_text(errors="replace"), err.read_text(errors="replace"))
