"""End-to-end coverage study: a trial's statistics file, the generator aimed at it, tiny studies.

The study itself (200 trials) is docs/simulation/end_to_end.md; here two trials, K = 2, B = 4.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from calculator.cli import main
from model.cohort import read_cohort
from training.simulation import end_to_end as e2e
from training.paper import reconstruction as rec
from training.paper.analyses import reproduce
from training.paper.assumptions import NR, N, SEVERE_CRS, subgroup_splits
from training.paper.ensemble import build_member, member_plan, unmatched
from training.paper.provenance import default_cohort_path
from training.paper.targets import TargetError, paper_targets, targets_from_statistics
from training.paper.trial_statistics import statistics_of
from training.train_ensemble import train_ensemble

SEED = e2e.DEFAULT_SEED


def test_the_paper_targets_are_the_generator_constants():
    t = paper_targets()
    assert t.table1_counts() == rec.TABLE1_COUNTS
    assert t.age_summary() == {g: tuple(float(v) for v in s) for g, s in rec.AGE_SUMMARY.items()}
    assert t.neurotox_counts() == rec.NEUROTOX_COUNTS
    assert (t.groups, t.nr, t.severe, t.cr) == (N, NR, SEVERE_CRS, (31, 34))
    assert (t.il6_p, t.cart_p, t.age_p) == (rec.IL6_P, rec.CART_P, rec.AGE_P)
    assert len(subgroup_splits(t)) == 66


def test_the_packaged_cohort_written_as_a_statistics_file_gives_the_paper_targets():
    cohort = read_cohort(default_cohort_path())
    document = statistics_of(cohort, "packaged cohort")
    assert len(document["statistics"]) == 61
    assert targets_from_statistics(document) == paper_targets()
    assert all(row.match is True for row in reproduce(cohort, document))


def test_a_statistics_file_missing_an_entry_is_refused_by_name():
    document = statistics_of(read_cohort(default_cohort_path()), "packaged cohort")
    document["statistics"] = [s for s in document["statistics"] if s["id"] != "age.p"]
    with pytest.raises(TargetError, match="age.p"):
        targets_from_statistics(document)


@pytest.fixture(scope="module")
def trial_two():
    """Trial 2 of the study's seed: groups of 30 and 48, both even (half-year medians possible)."""
    return e2e.trial_statistics(SEED, 2)


def test_a_trial_statistics_file_differs_from_the_paper_and_is_reproduced_by_a_member(trial_two):
    targets = targets_from_statistics(trial_two)
    assert targets.n == (30, 48) and targets != paper_targets()
    seed, split = member_plan(1, 777, targets)[0]
    member = build_member(0, seed, split, trial_two)
    assert len(member.cohort) == 78
    assert unmatched(member.cohort, trial_two) == []
    assert unmatched(member.cohort) != []  # it reproduces the trial, not the paper


def test_trial_cohorts_are_the_method_study_patients():
    from training.simulation import dgp

    cohort = e2e.trial_cohort(SEED, 0)
    patients = dgp.sample_patients(np.random.default_rng([SEED, 78, 0]), 78)
    np.testing.assert_array_equal(cohort["marrow_blasts_pct"], patients["marrow_blasts_pct"])
    np.testing.assert_array_equal(cohort["response"], patients["response"])
    assert ((cohort["crs_grade"] >= 3).astype(int) == patients["severe_crs"]).all()


def test_true_risks_extend_the_dgp_twelve_month_risks():
    from training.simulation import dgp

    risks, dgp_risks = e2e.true_risks(), dgp.true_risks()
    for outcome in ("efs", "os"):
        assert risks[f"{outcome}_12mo_risk"] == dgp_risks[outcome]
        for letter in dgp.SUBGROUPS:
            six, twelve, two_years = (risks[f"{outcome}_{h}mo_risk"][letter] for h in e2e.HORIZONS)
            assert 0 < six < twelve < two_years < 1
    assert e2e.panel_subgroups() == ["b", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The tiny study, run with --update-packaged into a temporary package-data folder (its
    ``packaged`` sibling), never the installed training/data/simulation/."""
    out = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e2e, "PACKAGED_DIR", out.parent / f"{out.name}-packaged")
        code = main(["simulate", "--study", "end-to-end", "--trials", "2", "--members", "2",
                     "--bootstrap", "4", "--seed", str(SEED), "--jobs", "1", "--out", str(out),
                     "--update-packaged"])
    assert code == 0
    return out


def test_update_packaged_writes_the_table_and_what_the_trials_were_trained_with(tiny_study):
    from training.development.config import load_config
    from training.development.fit_models import DEFAULT_METHODS

    packaged = tiny_study.parent / f"{tiny_study.name}-packaged"
    assert sorted(p.name for p in packaged.iterdir()) == ["end_to_end.csv", "end_to_end.json"]
    assert (packaged / "end_to_end.csv").read_bytes() == (tiny_study / "end_to_end.csv").read_bytes()
    meta = json.loads((packaged / "end_to_end.json").read_text())
    assert meta == json.loads((tiny_study / "end_to_end.json").read_text())
    trained = meta["trained_with"]
    assert trained["features"] == {name: list(f) for name, f in load_config().models.items()}
    assert trained["methods"] == DEFAULT_METHODS
    assert "trial 0" in trained["source"]  # trial 1 failed: trial 0 is the first reconstructed


def test_packaging_a_study_without_the_record_re_trains_its_first_trial(tiny_study, tmp_path):
    import shutil

    from training.simulate import package_main

    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    meta = json.loads((study / "end_to_end.json").read_text())
    recorded = meta.pop("trained_with")
    (study / "end_to_end.json").write_text(json.dumps(meta))
    assert package_main(["--package", str(study), "--to", str(tmp_path / "out")]) == 0
    packaged = json.loads((tmp_path / "out" / "end_to_end.json").read_text())
    established = packaged.pop("trained_with")
    assert packaged == meta
    assert {k: established[k] for k in ("features", "methods")} == \
        {k: recorded[k] for k in ("features", "methods")}
    assert "re-training trial 0" in established["source"]
    # without the trials' predictions nothing can be compared: the record stays absent
    (study / "end_to_end_trials.csv").unlink()
    packaged, how = e2e.package_study(study, tmp_path / "again", train=train_ensemble)
    assert "trained_with" not in packaged and "left absent" in how
    assert json.loads((tmp_path / "again" / "end_to_end.json").read_text()) == meta


def test_packaging_a_directory_without_a_study_exits_2_naming_the_file(tmp_path, capsys):
    from training.simulate import package_main

    assert package_main(["--package", str(tmp_path), "--to", str(tmp_path / "out")]) == 2
    assert str(tmp_path / "end_to_end.csv") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_tiny_study_counts_a_failure_and_scores_every_cell(tiny_study):
    meta = json.loads((tiny_study / "end_to_end.json").read_text())
    assert (meta["trials"], meta["failures"], meta["members"], meta["bootstrap"]) == (2, 1, 2, 4)
    table = pd.read_csv(tiny_study / "end_to_end.csv")
    assert len(table) == len(e2e.OUTPUTS) * len(e2e.PANEL_BLASTS) == 40
    assert (table["n_trials"] == 1).all() and (table["failures"] == 1).all()
    rows = pd.read_csv(tiny_study / "end_to_end_trials.csv", keep_default_na=False)
    failed = rows[rows["failed"] == 1]
    assert list(failed["trial"]) == [1] and "crs_grade.p" in failed["reason"].iloc[0]
    scored = rows[rows["failed"] == 0].astype({"point": float, "lower": float, "upper": float})
    assert ((scored["lower"] <= scored["point"]) & (scored["point"] <= scored["upper"])).all()
    truth = e2e.true_risks()
    for r in table.itertuples():
        cell = scored[(scored["output"] == r.output) & (scored["patient"] == r.patient)]
        true = truth[dict(e2e.OUTPUTS)[r.output]][r.subgroup]
        assert r.coverage == float(((cell["lower"] <= true) & (true <= cell["upper"])).mean())
        assert r.bias == pytest.approx(float(cell["point"].iloc[0]) - true, abs=6e-5)


@pytest.mark.slow  # two worker processes, each drawing the process's true risks once
def test_the_tiny_study_is_identical_with_two_processes(tiny_study, tmp_path):
    rows = e2e.trial_rows(e2e.run_study(train_ensemble, 2, 2, 4, SEED, jobs=2))
    e2e.write_study(rows, tmp_path, "same", SEED, 2, 4)
    for name in ("end_to_end.csv", "end_to_end_trials.csv"):
        assert (tmp_path / name).read_bytes() == (tiny_study / name).read_bytes(), name


@pytest.mark.parametrize("argv, message", [
    (["--members", "0"], "--members must be 1 or more"),
    (["--backend", "dask"], "--backend dask needs --scheduler ADDRESS"),
    (["--scheduler", "tcp://127.0.0.1:1", "--backend", "loky"], "--scheduler needs backend 'dask'"),
])
def test_bad_end_to_end_options_exit_2_naming_the_option(argv, message, tmp_path, capsys):
    code = main(["simulate", "--study", "end-to-end", "--out", str(tmp_path / "x"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_tiny_study_on_a_dask_cluster_is_identical(tiny_study, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        code = main(["simulate", "--study", "end-to-end", "--trials", "2", "--members", "2",
                     "--bootstrap", "4", "--seed", str(SEED), "--out", str(tmp_path),
                     "--backend", "dask", "--scheduler", cluster.scheduler_address])
        with distributed.Client(cluster.scheduler_address) as client:
            prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert code == 0
    assert any("run_trial" in prefix for prefix in prefixes), prefixes
    for name in ("end_to_end.csv", "end_to_end_trials.csv"):
        assert (tmp_path / name).read_bytes() == (tiny_study / name).read_bytes(), name
