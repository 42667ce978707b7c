"""The reconstructed cohort: deterministic, and every published statistic reproduced."""
import json
import subprocess
import sys

import numpy as np
import pytest
from statsmodels.duration.survfunc import survdiff

from model.cohort import read_cohort
from training.paper import derivations, reconstruction
from training.paper.analyses import derive, load_published, reproduce
from training.paper.provenance import default_cohort_path

PUBLISHED = load_published()["statistics"]


@pytest.fixture(scope="module")
def cohort():
    return read_cohort(default_cohort_path())


@pytest.fixture(scope="module")
def reproduced(cohort):
    return {row.id: row for row in reproduce(cohort)}


@pytest.mark.slow
def test_generator_rewrites_the_committed_file_byte_for_byte(tmp_path):
    out = tmp_path / "cohort.csv"
    done = subprocess.run([sys.executable, "-m", "training.paper.reconstruction", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == default_cohort_path().read_bytes()


@pytest.mark.slow
def test_another_seed_gives_another_cohort_that_still_reproduces_the_paper():
    other = reconstruction.reconstruct(seed=7)
    committed = read_cohort(default_cohort_path())
    assert not np.array_equal(other["age_years"].to_numpy(), committed["age_years"].to_numpy())
    rows = reproduce(read_cohort_from_frame(other))
    assert all(row.match for row in rows), [r.id for r in rows if not r.match]


def read_cohort_from_frame(frame):
    from model.cohort import validate_cohort
    return validate_cohort(frame.astype(str))


@pytest.mark.parametrize("entry", PUBLISHED, ids=[e["id"] for e in PUBLISHED])
def test_each_published_statistic_is_reproduced(reproduced, entry):
    row = reproduced[entry["id"]]
    assert row.match is True, f"{entry['id']}: paper {entry['printed']}, recomputed {row.recomputed}"


def test_p_values_rounded_to_the_printed_decimals(reproduced):
    for entry in PUBLISHED:
        if entry["kind"] == "p_value" and entry.get("decimals"):
            value = reproduced[entry["id"]].recomputed
            assert round(value, entry["decimals"]) == entry["value"], entry["id"]


def test_log_rank_agrees_with_an_independent_implementation(cohort, reproduced):
    df = derive(cohort)
    for outcome in ("os", "efs"):
        _, p = survdiff(df[f"{outcome}_months"], df[f"{outcome}_event"], df["burden_group"])
        assert p == pytest.approx(reproduced[f"{outcome}.logrank.p"].recomputed, abs=1e-4)


def test_counts_derived_from_the_published_numbers():
    assert derivations.severe_crs_counts() == [(4, 19), (29, 26)]
    assert (reconstruction.SEVERE_CRS["low"], reconstruction.SEVERE_CRS["high"]) == (4, 19)
    assert round(31 / 33 * 100, 2) == 93.94 and round(34 / 45 * 100, 2) == 75.56
    assert [k for k in range(46) if round(100 * k / 45, 2) == 75.56] == [34]


def test_assumed_configurations_are_among_the_solutions():
    sizes = tuple(reconstruction.SUBGROUP_SIZES.values())
    events = tuple(reconstruction.SUBGROUP_SEVERE_CRS.values())
    solutions = derivations.subgroup_configurations(4, 19)
    assert (sizes, events) in [(s, e) for s, e, _ in solutions]
    grades = reconstruction.CRS_GRADE_COUNTS
    assert round(derivations.crs_grade_p(grades["low"], grades["high"]), 4) == 0.0080
    neuro = {g: sum(c[1:]) for g, c in reconstruction.NEUROTOX_COUNTS.items()}
    assert (neuro["low"], neuro["high"]) in derivations.neurotoxicity_counts()


def test_survival_times_fit_the_enrolment_window_and_cut_off(cohort):
    assert cohort["os_months"].max() <= reconstruction.MAX_FOLLOW_UP
    censored = cohort[cohort["os_event"] == 0]
    assert (censored["os_months"] >= reconstruction.MIN_FOLLOW_UP - 0.01).all()
    no_response = cohort[cohort["response"] == "nr"]
    assert (no_response["efs_event"] == 1).all() and (no_response["efs_months"] <= 1.2).all()


def test_subgroups_and_severe_crs_rates_rise_with_burden(cohort):
    df = derive(cohort)
    counts = df.groupby("burden_subgroup").size().to_dict()
    assert counts == reconstruction.SUBGROUP_SIZES
    rates = df.groupby("burden_subgroup")["severe_crs"].mean().to_numpy()
    assert np.all(np.diff(rates) > 0)


def test_reproduce_json_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "calculator.cli", "reproduce", "--json",
                           "--plots", str(tmp_path / "plots")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["provenance"] == "reconstructed-from-published-aggregates"
    assert document["summary"]["matched"] == document["summary"]["total"] == len(PUBLISHED)
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["efs_burden_group.png", "efs_tb_assessed.png", "os_burden_group.png", "os_tb_assessed.png"]
    for png in (tmp_path / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_reproduce_on_a_center_cohort_reports_what_is_unavailable(tmp_path):
    import pandas as pd
    frame = pd.read_csv(default_cohort_path(), dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["il6_peak_pg_ml", "cart_peak_copies_per_ug"])
    frame.loc[0, "age_years"] = "55"
    path = tmp_path / "center.csv"
    frame.to_csv(path, index=False)
    done = subprocess.run([sys.executable, "-m", "calculator.cli", "reproduce", "--cohort", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Cohort: center's own data" in done.stdout
    assert "(2 unavailable)" in done.stdout
