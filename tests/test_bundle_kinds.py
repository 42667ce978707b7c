"""Every page and command against every kind of bundle (issue 20, item 9).

Kinds: a single cohort (the session's bundle, trained on the reconstructed cohort), an ensemble
(the session's K = 3 ensemble bundle), an update of each on the synthetic center cohort, and an
update of the updated ensemble. Each page and command is checked for its content: the trained-on
sentence, numbers at risk never above one cohort's size (and, for the ensemble, equal to the mean
of the reconstructions' own counts), the report's patient count, and the lineage.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from calculator.cli import main
from model.bundle import load_predictor
from model.bundle_kind import ENSEMBLE, SINGLE, UPDATE_OF_UPDATE, UPDATED
from model.cohort import read_cohort
from training.paper.ensemble import read_index
from training.updating import update_bundle

from conftest import EXAMPLE_PATIENT, TEST_ENSEMBLE_MEMBERS

CENTER = Path(__file__).parent / "data" / "synthetic_center_cohort.csv"
SECOND_CENTER_N = 80
K = TEST_ENSEMBLE_MEMBERS
KINDS = {  # kind id -> (bundle kind, trained-on sentence, patients of one cohort)
    "single": (SINGLE, "78 patients", 78),
    "ensemble": (ENSEMBLE, f"78 patients in each of {K} reconstructed cohorts", 78),
    "updated-single": (UPDATED, "78 patients, updated on 160 center patients", 160),
    "updated-ensemble": (UPDATED, f"78 patients in each of {K} reconstructed cohorts, updated "
                                  "on 160 center patients", 160),
    "update-of-update": (UPDATE_OF_UPDATE, f"78 patients in each of {K} reconstructed cohorts, "
                         f"updated on 160 center patients, then on {SECOND_CENTER_N}",
                         SECOND_CENTER_N),
}


@pytest.fixture(scope="module")
def bundles(trained_bundle_path, ensemble_bundle_path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    second = root / "second_center.csv"
    second.write_text("\n".join(CENTER.read_text().splitlines()[:SECOND_CENTER_N + 1]) + "\n")
    paths = {"single": trained_bundle_path, "ensemble": ensemble_bundle_path}
    for kind, parent, cohort in (("updated-single", "single", CENTER),
                                 ("updated-ensemble", "ensemble", CENTER),
                                 ("update-of-update", "updated-ensemble", second)):
        update_bundle(paths[parent], cohort, root / kind, "intercept", bootstrap=2, seed=5)
        paths[kind] = root / kind
    return paths


@pytest.fixture(scope="module")
def clients(bundles):
    from calculator import create_app

    return {kind: create_app({"BUNDLE_PATH": str(path), "TESTING": True}).test_client()
            for kind, path in bundles.items()}


def _patient(path: Path) -> dict:
    needed = load_predictor(path).predictor.required_fields
    return {name: value for name, value in EXAMPLE_PATIENT.items() if name in needed}


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.mark.parametrize("kind", KINDS)
def test_the_bundle_says_what_it_rests_on(bundles, kind):
    expected_kind, sentence, size = KINDS[kind]
    basis = load_predictor(bundles[kind]).basis
    assert (basis.kind, basis.trained_on, basis.cohort_n) == (expected_kind, sentence, size)


@pytest.mark.parametrize("kind", KINDS)
def test_api_answer_and_result_page(clients, bundles, kind):
    _, sentence, size = KINDS[kind]
    client, patient = clients[kind], _patient(bundles[kind])
    answer = client.post("/api/v1/predict", json=patient).get_json()
    assert answer["model"]["trained_on"] == sentence
    assert (answer["model"]["lineage"] is not None) == kind.startswith("update")
    counts = [c for name in ("efs", "os") for c in answer[name]["at_risk"].values()
              if c is not None]
    assert counts and all(0 <= c <= size for c in counts) and max(counts) > 0
    for warning in answer["warnings"]:
        for count, total in re.findall(r"only (\d+) of the (\d+)", warning):
            assert int(count) <= int(total) == size
    assert client.get("/").status_code == 200
    form = {k: ("true" if v else "false") if isinstance(v, bool) else str(v)
            for k, v in patient.items()}
    page = client.post("/result", data=form)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and sentence in _text(html)
    drawn = [int(c) for c in re.findall(r'class="risk-count"[^>]*>(\d+)<', html)]
    assert drawn and max(drawn) <= size
    assert drawn[0] == size  # the "All" row at month 0: one whole cohort, never a stacked file
    shown = [int(c) for c in re.findall(r'id="(?:efs|os)-\d+-at-risk">(\d+) at risk', html)]
    assert shown == counts


def test_ensemble_counts_are_the_mean_of_the_reconstructions(clients, bundles,
                                                             small_ensemble_dir):
    _, paths = read_index(small_ensemble_dir)
    members = [read_cohort(p) for p in paths]
    answer = clients["ensemble"].post("/api/v1/predict",
                                      json=_patient(bundles["ensemble"])).get_json()
    assert answer["model"]["at_risk"] == f"mean of {K} reconstructions"
    for name in ("efs", "os"):
        for month, count in answer[name]["at_risk"].items():
            if count is not None:
                each = [int((m[f"{name}_months"] >= float(month)).sum()) for m in members]
                assert count == int(np.rint(np.mean(each)))
                assert answer[name]["at_risk_range"][month] == [min(each), max(each)]


@pytest.mark.parametrize("kind", KINDS)
def test_model_card(clients, bundles, kind):
    _, sentence, size = KINDS[kind]
    page = clients[kind].get("/about")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    trained = re.search(r'id="trained-on">([^<]*)<', html).group(1)
    assert trained == sentence
    assert ('id="lineage"' in html) == kind.startswith("update")
    if kind == "update-of-update":
        assert "update 2 of a chain" in _text(html)
    if kind.startswith("update"):  # the update cohort's own counts, observed
        assert "Observed" in html and "observed in the update cohort" in _text(html)
    _assert_the_study_of_its_kind(html, kind)


def _assert_the_study_of_its_kind(html: str, kind: str) -> None:
    """Ensemble-rooted bundles lead with the end-to-end study, single-cohort ones show the direct
    study alone; an update says no study checked its updated models."""
    section = html[html.index('id="honest-intervals"'):]
    ends = [section.find(marker) for marker in ("</section>", '<h2 id="model-')]
    section = section[:min(end for end in ends if end > 0)]
    ensemble_rooted = kind in ("ensemble", "updated-ensemble", "update-of-update")
    assert ('id="end-to-end-table"' in section) == ensemble_rooted
    assert 'id="coverage-table"' in section
    note = 'id="honest-update-note"'
    assert (note in section) == kind.startswith("update")
    if kind.startswith("update"):
        assert "no study has checked the intervals of updated models" in _text(section)


@pytest.mark.parametrize("kind", KINDS)
def test_cli_text_json_and_fhir(bundles, kind, capsys):
    _, sentence, _ = KINDS[kind]
    options = [item for name, value in _patient(bundles[kind]).items()
               for item in (f"--{name.replace('_', '-')}",
                            str(value).lower() if isinstance(value, bool) else str(value))]
    base = ["predict", "--bundle", str(bundles[kind]), *options]
    assert main(base) == 0
    assert sentence in capsys.readouterr().out.splitlines()[0]
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["trained_on"] == sentence
    assert main([*base, "--fhir"]) == 0
    notes = " ".join(note["text"] for note in json.loads(capsys.readouterr().out)["note"])
    assert sentence in notes


@pytest.mark.parametrize("kind", KINDS)
def test_cds_card(clients, kind):
    from test_cds_hooks import SERVICE, example_call, only_card

    card = only_card(clients[kind].post(SERVICE, json=example_call()))
    assert KINDS[kind][1] in card["detail"]
    if kind == "ensemble":  # the band is a range over the reconstructions, not one count
        assert f"across {K} reconstructions (assumed split)" in card["detail"]
        assert "training patients had severe CRS" not in card["detail"]


@pytest.mark.parametrize("kind", KINDS)
def test_report(bundles, kind, tmp_path):
    _, sentence, size = KINDS[kind]
    out = tmp_path / "report.html"
    assert main(["report", "--bundle", str(bundles[kind]), "--out", str(out)]) == 0
    html = out.read_text()
    patients = re.search(r"<tr><td>patients</td><td>([^<]*)</td>", html).group(1)
    assert patients == (f"78 per reconstruction ({K} reconstructions)" if kind == "ensemble"
                        else str(size))
    manifest = load_predictor(bundles[kind]).manifest
    if kind.startswith("update"):
        assert manifest["lineage"]["parent"]["id"] in html and sentence in _text(html)
    else:
        assert 'id="lineage"' not in html
    if kind == "ensemble":
        assert f"mean of {K} reconstructions" in html
    _assert_the_study_of_its_kind(html, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_validation_page(bundles, kind, tmp_path, capsys):
    _, sentence, _ = KINDS[kind]
    out = tmp_path / "validation.html"
    assert main(["validate", "--bundle", str(bundles[kind]), "--cohort", str(CENTER),
                 "--out", str(out)]) == 0
    assert sentence in capsys.readouterr().out
    assert sentence in _text(out.read_text())


def test_an_update_of_an_update_keeps_its_chain_flat(bundles):
    once = load_predictor(bundles["updated-ensemble"]).manifest["lineage"]
    twice = load_predictor(bundles["update-of-update"]).manifest["lineage"]
    assert twice["parent"]["id"] == load_predictor(bundles["updated-ensemble"]).id
    assert [a["id"] for a in twice["ancestors"]] == [twice["parent"]["id"]]
    assert twice["ancestors"][0]["parent_id"] == once["parent"]["id"]
    assert "lineage" not in twice["parent"]  # no nesting: a chain's depth never nears the cap

    def depth(value):
        if isinstance(value, dict):
            return 1 + max(map(depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(depth, value), default=0)
        return 0

    assert depth(twice) == depth(once)


def test_a_chain_past_the_cap_is_refused_with_a_message(bundles, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"already update 2 of a chain; cart-risk update builds "
                                         r"chains of at most 2 updates"):
        update_bundle(bundles["update-of-update"], CENTER, tmp_path / "third", "intercept",
                      bootstrap=2, max_depth=2)
    assert not (tmp_path / "third").exists()
