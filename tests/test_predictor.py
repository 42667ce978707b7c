"""The numpy predictor against independent scalar arithmetic (math.exp, per-bootstrap loops)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.bundle import load_predictor, write_bundle
from model.errors import BundleError, InputError
from model.features import BLASTS_FLOOR_PCT
from model.predictor import (HORIZONS_MONTHS, compile_predictor, input_warnings, predict,
                             predict_points, prediction_answer)

MONTHS = [i * 0.5 for i in range(73)]  # 0 to 36 months
N_BOOT = 40
FEATURES = {
    "cr": ["log10_blasts", "age_years", "male", "tb_after_fc"],
    "severe_crs": ["log10_blasts", "prior_hsct"],
    "efs": ["log10_blasts", "relapsed", "tp53_mutation"],
    "os": ["log10_blasts", "age_years"],
}
FOLLOW_UP = {"efs": 30.0, "os": 20.0}  # os stops before 24 months
HAZARD = {"efs": 0.05, "os": 0.03}


def _symmetric(rng, shape, spread):
    """Bootstrap deviations in +/- pairs: the bootstrap median is the point estimate."""
    half = rng.normal(0, spread, size=(shape[0] // 2, *shape[1:]))
    return np.concatenate([half, -half])


def make_predictor(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    models = {}
    for name, features in FEATURES.items():
        p = len(features)
        spec = {"kind": "logistic" if name in ("cr", "severe_crs") else "cox",
                "features": features,
                "center": rng.normal(0, 1, p).round(3).tolist(),
                "scale": rng.uniform(0.5, 2, p).round(3).tolist(),
                "coef": rng.normal(0, 0.6, p).round(3).tolist()}
        coef_dev = _symmetric(rng, (N_BOOT, p), 0.2)
        boot = {"coef": (np.asarray(spec["coef"]) + coef_dev).tolist()}
        if spec["kind"] == "logistic":
            spec["intercept"] = float(rng.normal(0, 1))
            boot["intercept"] = (spec["intercept"] + _symmetric(rng, (N_BOOT,), 0.3)).tolist()
        else:
            baseline = np.exp(-HAZARD[name] * np.asarray(MONTHS))
            spec["baseline_survival"] = baseline.tolist()
            spec["max_follow_up_months"] = FOLLOW_UP[name]
            shift = _symmetric(rng, (N_BOOT,), 0.2)
            boot["baseline_survival"] = (baseline[None, :] ** np.exp(shift)[:, None]).tolist()
        spec["bootstrap"] = boot
        models[name] = spec
    bands = [{"subgroup": s, "label": label, "events": e, "n": n, "rate": e / n,
              "ci95": [0.01, 0.6], "smoothed_rate": e / n}
             for s, label, e, n in [("a", "0% blasts, MRD positive", 1, 10),
                                    ("b", "0% < blasts < 5%", 2, 15),
                                    ("c", "5% <= blasts < 20%", 6, 17),
                                    ("d", "20% <= blasts < 50%", 7, 16),
                                    ("e", "blasts >= 50%", 9, 20)]]
    return {"format_version": 1, "blasts_floor_pct": BLASTS_FLOOR_PCT, "month_grid": MONTHS,
            "models": models, "scrs_bands": bands}


def make_manifest() -> dict:
    ranges = {"marrow_blasts_pct": [0, 95], "age_years": [9, 73], "tp53_mutation": [0, 0],
              "prior_hsct": [0, 1], "relapsed": [0, 1], "sex": ["M", "F"]}
    return {"provenance": "reconstructed-from-published-aggregates", "source": "test",
            "training_data": {"n": 78},
            "models": {name: {"kind": "x", "field_ranges": ranges} for name in FEATURES},
            "scrs_bands": make_predictor()["scrs_bands"]}


PATIENT = {"marrow_blasts_pct": 12.0, "mrd_positive": True, "age_years": 30.0, "sex": "M",
           "prior_hsct": False, "relapsed": True, "tp53_mutation": False,
           "tb_assessed": "before_fc"}


@pytest.fixture(scope="module")
def params():
    return make_predictor()


@pytest.fixture(scope="module")
def compiled(params):
    return compile_predictor(params, make_manifest())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, params):
    out = tmp_path_factory.mktemp("bundle") / "b"
    csv = out.parent / "cohort.csv"
    csv.write_text("patient_id,age_years\np1,30\np2,40\n")
    write_bundle(out, make_manifest(), params, {"fitted": "estimators"}, csv, check_cohort=False)
    return load_predictor(out)


def random_patients(n: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    blasts = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 100, n).round(2))
    return {"marrow_blasts_pct": blasts, "mrd_positive": np.ones(n, dtype=bool),
            "age_years": rng.uniform(1, 90, n).round(1), "sex": rng.choice(["M", "F"], n),
            "prior_hsct": rng.random(n) < 0.3, "relapsed": rng.random(n) < 0.5,
            "tp53_mutation": rng.random(n) < 0.1,
            "tb_assessed": rng.choice(["before_fc", "after_fc"], n)}


# --------------------------------------------------------------------------- independent arithmetic


def _x(name: str, patient: dict) -> list[float]:
    raw = {"log10_blasts": math.log10(max(patient["marrow_blasts_pct"], BLASTS_FLOOR_PCT)),
           "age_years": patient["age_years"], "male": float(patient["sex"] == "M"),
           "tb_after_fc": float(patient["tb_assessed"] == "after_fc"),
           "prior_hsct": float(patient["prior_hsct"]), "relapsed": float(patient["relapsed"]),
           "tp53_mutation": float(patient["tp53_mutation"])}
    return [raw[f] for f in FEATURES[name]]


def _lp(spec: dict, name: str, patient: dict, coef, intercept=0.0) -> float:
    x = _x(name, patient)
    return intercept + sum((xi - c) / s * b for xi, c, s, b in
                           zip(x, spec["center"], spec["scale"], coef))


def _probability(params, name, patient, b=None):
    spec = params["models"][name]
    coef = spec["coef"] if b is None else spec["bootstrap"]["coef"][b]
    intercept = spec["intercept"] if b is None else spec["bootstrap"]["intercept"][b]
    return 1 / (1 + math.exp(-_lp(spec, name, patient, coef, intercept)))


def _survival(params, name, patient, month_index, b=None):
    spec = params["models"][name]
    coef = spec["coef"] if b is None else spec["bootstrap"]["coef"][b]
    s0 = (spec["baseline_survival"] if b is None
          else spec["bootstrap"]["baseline_survival"][b])[month_index]
    return s0 ** math.exp(_lp(spec, name, patient, coef))


# --------------------------------------------------------------------------- tests


def test_probabilities_match_scalar_logistic(params, compiled):
    result = predict(compiled, [PATIENT])
    for name in ("cr", "severe_crs"):
        expected = _probability(params, name, PATIENT)
        boot = [_probability(params, name, PATIENT, b) for b in range(N_BOOT)]
        got = getattr(result, name)
        assert got.probability[0] == pytest.approx(expected, rel=1e-12)
        assert got.lower[0] == pytest.approx(np.percentile(boot, 2.5), rel=1e-12)
        assert got.upper[0] == pytest.approx(np.percentile(boot, 97.5), rel=1e-12)


def test_survival_matches_scalar_cox(params, compiled):
    result = predict(compiled, [PATIENT])
    for name in ("efs", "os"):
        curves = getattr(result, name)
        for i in range(0, len(curves.months), 7):
            assert curves.survival[0, i] == pytest.approx(_survival(params, name, PATIENT, i))
            boot = [_survival(params, name, PATIENT, i, b) for b in range(N_BOOT)]
            assert curves.lower[0, i] == pytest.approx(np.percentile(boot, 2.5))
            assert curves.upper[0, i] == pytest.approx(np.percentile(boot, 97.5))
        assert curves.at[12][0] == pytest.approx(_survival(params, name, PATIENT, MONTHS.index(12)))


def test_months_sharing_a_baseline_column_get_their_own_percentiles(params):
    """Step baselines (as fitted ones are: they change only at event times) repeat grid columns;
    the predictor computes each distinct column once, and every month must still get exactly the
    percentiles of its own bootstrap values."""
    stepped = json.loads(json.dumps(params))
    for name in ("efs", "os"):
        spec = stepped["models"][name]
        hold = [i - i % 4 for i in range(len(MONTHS))]  # each value held for 4 grid months
        spec["baseline_survival"] = [spec["baseline_survival"][i] for i in hold]
        spec["bootstrap"]["baseline_survival"] = [[row[i] for i in hold] for row in
                                                  spec["bootstrap"]["baseline_survival"]]
    compiled = compile_predictor(stepped, make_manifest())
    efs = compiled.models["efs"]
    assert efs.boot_log_hazard.shape[0] == math.ceil(efs.months.size / 4)
    result = predict(compiled, [PATIENT])
    for name in ("efs", "os"):
        curves = getattr(result, name)
        for i in range(len(curves.months)):
            boot = [_survival(stepped, name, PATIENT, i, b) for b in range(N_BOOT)]
            assert curves.lower[0, i] == pytest.approx(np.percentile(boot, 2.5), rel=1e-12)
            assert curves.upper[0, i] == pytest.approx(np.percentile(boot, 97.5), rel=1e-12)


def test_curves_stop_at_max_follow_up(compiled):
    result = predict(compiled, [PATIENT])
    assert result.efs.months[-1] == 30.0 and result.os.months[-1] == 20.0
    assert result.efs.survival.shape == (1, MONTHS.index(30.0) + 1)
    assert result.efs.at[24] is not None
    assert result.os.at[24] is None and result.os.at[12] is not None


def test_vectorized_equals_per_patient(compiled):
    patients = random_patients(60)
    together = predict(compiled, patients)
    points = predict_points(compiled, patients, intervals=True)
    rows = [{k: v[i].item() for k, v in patients.items()} for i in range(60)]
    for i, row in enumerate(rows):
        alone = predict(compiled, [row])
        for name in ("cr", "severe_crs"):
            a, b = getattr(together, name), getattr(alone, name)
            np.testing.assert_allclose([a.probability[i], a.lower[i], a.upper[i]],
                                       [b.probability[0], b.lower[0], b.upper[0]], rtol=1e-12)
            assert points[name][i] == pytest.approx(a.probability[i], rel=1e-12)
            assert points[f"{name}_upper"][i] == pytest.approx(a.upper[i], rel=1e-12)
        for name in ("efs", "os"):
            a, b = getattr(together, name), getattr(alone, name)
            np.testing.assert_allclose(a.survival[i], b.survival[0], rtol=1e-12)
            np.testing.assert_allclose(a.lower[i], b.lower[0], rtol=1e-12)
            for h in HORIZONS_MONTHS:
                if a.at[h] is None:
                    assert np.isnan(points[f"{name}_{h}mo"][i])
                else:
                    assert points[f"{name}_{h}mo"][i] == pytest.approx(a.at[h][i], rel=1e-12)
                    index = list(a.months).index(h)
                    assert points[f"{name}_{h}mo_lower"][i] == pytest.approx(a.lower[i, index])
    assert list(together.burden_subgroup) == list(points["burden_subgroup"])


def test_mapping_and_list_inputs_agree(compiled):
    patients = random_patients(20)
    rows = [{k: v[i].item() for k, v in patients.items()} for i in range(20)]
    a, b = predict_points(compiled, patients), predict_points(compiled, rows)
    c = predict_points(compiled, pd.DataFrame(patients))
    for key in a:
        if key == "burden_subgroup":
            assert list(a[key]) == list(b[key]) == list(c[key])
        else:
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])


def test_missing_or_non_finite_inputs_are_refused(compiled):
    patients = random_patients(5)
    del patients["relapsed"]
    with pytest.raises(ValueError, match="patients lack required field.*relapsed"):
        predict_points(compiled, patients)
    patients = random_patients(5)
    patients["age_years"][3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite inputs for patient row\(s\) \[3\]"):
        predict(compiled, patients)


@settings(max_examples=60, deadline=None)
@given(blasts=st.floats(0.001, 100), age=st.floats(0.5, 100), male=st.booleans(),
       relapsed=st.booleans(), hsct=st.booleans())
def test_interval_contains_point_and_survival_never_rises(compiled, blasts, age, male,
                                                          relapsed, hsct):
    patient = dict(PATIENT, marrow_blasts_pct=blasts, age_years=age, sex="M" if male else "F",
                   relapsed=relapsed, prior_hsct=hsct)
    result = predict(compiled, [patient])
    for name in ("cr", "severe_crs"):
        got = getattr(result, name)
        assert 0 <= got.lower[0] <= got.probability[0] <= got.upper[0] <= 1
    for name in ("efs", "os"):
        curves = getattr(result, name)
        for curve in (curves.survival[0], curves.lower[0], curves.upper[0]):
            assert np.all(np.diff(curve) <= 0) and curve[0] == 1.0
        assert np.all(curves.lower[0] <= curves.survival[0] + 1e-15)
        assert np.all(curves.survival[0] <= curves.upper[0] + 1e-15)


def test_extreme_linear_predictors_stay_finite(params):
    huge = json.loads(json.dumps(params))
    for spec in huge["models"].values():
        spec["scale"] = [1e-6] * len(spec["scale"])
    compiled = compile_predictor(huge)
    points = predict_points(compiled, dict(random_patients(50)), intervals=True)
    for key, values in points.items():
        if key != "burden_subgroup" and not key.startswith("os_24"):
            assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)), key


def test_outside_population_gets_no_numbers(compiled):
    patients = [dict(PATIENT, marrow_blasts_pct=0.0, mrd_positive=False), PATIENT]
    result = predict(compiled, patients)
    assert list(result.in_population) == [False, True]
    assert list(result.burden_subgroup) == ["", "c"]
    assert np.isnan(result.cr.probability[0]) and np.isfinite(result.cr.probability[1])
    assert np.all(np.isnan(result.efs.survival[0]))


def test_range_and_consistency_warnings(compiled):
    patients = [dict(PATIENT, age_years=81.0), dict(PATIENT, tp53_mutation=True),
                dict(PATIENT, marrow_blasts_pct=30.0, mrd_positive=False), PATIENT]
    warnings = input_warnings(compiled, patients)
    assert warnings[0] == ["age_years 81 is outside the training range 9-73"]
    assert warnings[1] == ["tp53_mutation is true but every training patient had false"]
    assert "mrd_positive is false with 30 % marrow blasts" in warnings[2][0]
    assert warnings[3] == []


def test_api_answer_shape_and_values(params, bundle):
    patient = dict(PATIENT, age_years=81.0)
    answer = prediction_answer(bundle, patient)
    json.dumps(answer, allow_nan=False)
    assert list(answer) == ["cr", "severe_crs", "efs", "os", "warnings", "model"]
    assert answer["cr"]["probability"] == round(_probability(params, "cr", patient), 3)
    low, high = answer["cr"]["ci95"]
    assert low <= answer["cr"]["probability"] <= high
    assert answer["severe_crs"]["band"] == {
        "subgroup": "c", "label": "5% <= blasts < 20%",
        "observed": {"events": 6, "n": 17, "rate": round(6 / 17, 3), "ci95": [0.01, 0.6]}}
    efs = answer["efs"]
    assert len(efs["months"]) == len(efs["survival"]) == len(efs["lower"]) == len(efs["upper"])
    assert efs["months"][-1] == 30.0
    assert efs["at"]["12"] == round(_survival(params, "efs", patient, MONTHS.index(12)), 3)
    assert answer["os"]["at"]["24"] is None and answer["os"]["months"][-1] == 20.0
    assert answer["warnings"] == ["age_years 81 is outside the training range 9-73"]
    evidence = answer["model"].pop("evidence")
    assert answer["model"] == {"id": bundle.id,
                               "provenance": "reconstructed-from-published-aggregates",
                               "trained_on": "78 patients", "created": bundle.manifest["created"],
                               "lineage": None}
    assert evidence["cr"].startswith("model output (trained on one cohort reconstructed")
    assert evidence["severe_crs.band"].startswith("assumed")
    assert evidence["severe_crs.band.published"].startswith("published")


def test_api_answer_refuses_patient_outside_population(bundle):
    with pytest.raises(InputError, match="marrow_blasts_pct: marrow blasts below 0.01 % \\(the MRD threshold\\) with negative MRD"):
        prediction_answer(bundle, dict(PATIENT, marrow_blasts_pct=0.0, mrd_positive=False))


def test_api_answer_for_a_bundle_without_an_os_model(params):
    partial = json.loads(json.dumps(params))
    del partial["models"]["os"]
    compiled = compile_predictor(partial)

    class Bundle:  # the attributes prediction_answer reads from a LoadedBundle
        id, manifest, predictor, follow_up, basis = "x", {}, compiled, {}, None

    answer = prediction_answer(Bundle(), PATIENT)
    assert answer["os"] is None
    assert any(w.startswith("os: this bundle has no os model") for w in answer["warnings"])
    json.dumps(answer, allow_nan=False)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["models"]["cr"].update(coef=[1.0]), r"cr\.coef has shape"),
    (lambda p: p["models"]["cr"].update(kind="cox"), "expected logistic"),
    (lambda p: p["models"]["cr"].update(features=["log10_blasts", "height", "male", "x"]),
     "unknown feature"),
    (lambda p: p["models"]["efs"]["baseline_survival"].__setitem__(5, 1.0), "non-increasing"),
    (lambda p: p["models"]["os"]["bootstrap"]["coef"][0].__setitem__(0, float("nan")),
     "non-finite"),
    (lambda p: p["models"]["cr"]["scale"].__setitem__(0, 0.0), "scale must be positive"),
    (lambda p: p["models"]["os"]["bootstrap"].update(coef=[[0.1, 0.2, 0.3, 0.4]]),
     r"os\.bootstrap\.coef has shape \(1, 4\); expected \(B, 2\)"),
    (lambda p: p["models"]["efs"]["bootstrap"]["baseline_survival"].pop(),
     r"efs\.bootstrap\.baseline_survival has shape"),
    (lambda p: p.update(format_version=2), "format_version 2"),
    (lambda p: p["models"].pop("cr")["bootstrap"], None),
])
def test_compile_refuses_malformed_predictor(params, edit, message):
    broken = json.loads(json.dumps(params))
    edit(broken)
    if message is None:  # a bundle may lack a model
        assert "cr" not in compile_predictor(broken).models
        return
    with pytest.raises(BundleError, match=message) as caught:
        compile_predictor(broken)
    assert caught.value.check == "predictor-structure"
