"""The bootstrap on a dask.distributed cluster gives the local run's bundle, number for number.

The test starts its own two-worker ``LocalCluster`` (separate processes, as a real cluster's
workers are) and trains through the command line, ``cart-risk train --backend dask --scheduler
ADDRESS``, with the seed and B of the session's locally trained bundle (``conftest.py``).
"""
from __future__ import annotations

import json

import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]'); "
                          "the dask backend is optional")

from calculator.cli import main  # noqa: E402
from conftest import TEST_FEATURES  # noqa: E402
from training.reproduce import default_cohort_path  # noqa: E402

pytestmark = pytest.mark.slow  # starts a two-process cluster and trains twice


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of two single-threaded worker processes, no dashboard (no fixed port)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def dask_bundle(cluster, trained_bundle_path, tmp_path_factory):
    """Trained on the cluster with the B and seed of the session's local bundle."""
    local = json.loads((trained_bundle_path / "manifest.json").read_text())
    out = tmp_path_factory.mktemp("dask") / "bundle"
    code = main(["train", "--cohort", str(default_cohort_path()), "--out", str(out),
                 "--bootstrap", str(local["bootstrap"]), "--seed", str(local["seed"]),
                 "--jobs", "2", "--backend", "dask", "--scheduler", cluster.scheduler_address,
                 "--features", str(TEST_FEATURES)])
    assert code == 0
    return out


def test_the_bootstrap_ran_on_the_cluster(cluster, dask_bundle):
    with distributed.Client(cluster.scheduler_address) as client:
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert any("_repetition" in prefix for prefix in prefixes), prefixes
    assert sum(executed.values()) > 0


def test_dask_and_local_runs_give_identical_bundles(dask_bundle, trained_bundle_path):
    for name in ("predictor.json", "estimators.joblib"):
        assert (dask_bundle / name).read_bytes() == (trained_bundle_path / name).read_bytes(), name
    local = json.loads((trained_bundle_path / "manifest.json").read_text())
    remote = json.loads((dask_bundle / "manifest.json").read_text())
    assert remote["models"].keys() == local["models"].keys()
    for model, entry in local["models"].items():
        for block in ("apparent", "optimism", "optimism_corrected", "optimism_mean",
                      "bootstrap_estimable", "bootstrap_redraws"):
            assert remote["models"][model][block] == entry[block], (model, block)
