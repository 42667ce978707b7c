"""The "how we know the intervals are honest" section shows the study of the bundle's kind.

An ensemble bundle leads with the end-to-end study (training/data/simulation/end_to_end.*), a
single-cohort bundle shows the direct study (coverage.*); every number on the page is compared with
the packaged files, and the note beside a table appears exactly when the study trained other
features or methods than the bundle's models (or does not say which).
"""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from model.bundle import load_predictor
from training.simulation.honest import honest_intervals, mismatch_note, trained_with

PACKAGED = Path(__file__).resolve().parents[1] / "training" / "data" / "simulation"


def _client(bundle: Path):
    from calculator import create_app

    return create_app({"BUNDLE_PATH": str(bundle), "TESTING": True}).test_client()


def _section(page: str) -> str:
    start = page.index('id="honest-intervals"')
    return page[start:page.index("</section>", start)]


def _text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def _table(fragment: str, ident: str) -> list[list[str]]:
    """The body rows of table ``ident`` as cell texts."""
    table = fragment[fragment.index(f'id="{ident}"'):]
    body = table[table.index("<tbody>"):table.index("</tbody>")]
    return [[_text(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


@pytest.fixture(scope="module")
def end_to_end():
    return (pd.read_csv(PACKAGED / "end_to_end.csv"),
            json.loads((PACKAGED / "end_to_end.json").read_text(encoding="utf-8")))


def test_an_ensemble_bundle_leads_with_the_end_to_end_study(ensemble_bundle_path, end_to_end):
    summary, meta = end_to_end
    manifest = load_predictor(ensemble_bundle_path).manifest
    section = _section(_client(ensemble_bundle_path).get("/about").get_data(as_text=True))
    assert section.index('id="end-to-end-table"') < section.index('id="direct-study"') \
        < section.index('id="coverage-table"')  # the direct study follows, folded
    rows = _table(section, "end-to-end-table")
    assert len(rows) == summary["output"].nunique() == 8
    patients = list(dict.fromkeys(summary["patient"]))
    for row, (_, cells) in zip(rows, summary.groupby("output", sort=False)):
        for shown, r in zip(row[1:], cells.set_index("patient").loc[patients].itertuples()):
            assert shown == f"{r.coverage:.3f} ({r.coverage_mcse:.3f}) width {r.mean_width:.2f}"
    words = _text(section)
    trials, failures = meta["trials"], meta["failures"]
    assert (f"could not rebuild {failures} of the {trials} trials ({100 * failures / trials:.0f} %"
            in words and f"the other {trials - failures} were scored" in words)
    k = manifest["ensemble"]["members"]
    b = manifest["ensemble"]["bootstrap_per_member"] * k
    assert (f"pooled {meta['members']} reconstructions with {meta['bootstrap']} bootstrap refits "
            f"in total; this bundle pools {k} with {b}.") in words
    below = summary[summary["coverage"] < 0.90]
    assert f"Average coverage {summary['coverage'].mean():.3f} over 40 cells" in words
    assert f"{len(below)} below 0.90" in words
    for r in below.itertuples():
        assert f"at {r.patient} {r.coverage:.3f} (MCSE {r.coverage_mcse:.3f})" in words
    met = below.empty and summary["coverage"].mean() >= 0.93
    assert f"on average): {'met' if met else 'not met'}." in words
    note = mismatch_note(meta.get("trained_with"), trained_with(manifest))
    assert ('id="end-to-end-note"' in section) == (note is not None)
    if note is not None:
        assert note in words


def test_a_single_cohort_bundle_shows_the_direct_study_with_its_note(trained_bundle_path):
    """The session's single bundle has every covariate; the direct study's construction has
    log10 blasts alone: the note says so beside the table."""
    section = _section(_client(trained_bundle_path).get("/about").get_data(as_text=True))
    assert 'id="end-to-end-table"' not in section and 'id="direct-study"' not in section
    coverage = pd.read_csv(PACKAGED / "coverage.csv")
    shipped = json.loads((PACKAGED / "coverage.json").read_text())["shipped"]
    shown = coverage[(coverage["construction"] == shipped) & (coverage["truth"] == "smooth")]
    rows = _table(section, "coverage-table")
    assert len(rows) == len(shown)
    for row, r in zip(rows, shown.itertuples()):
        assert row[1] == r.patient and row[2] == f"{r.coverage:.2f} ({r.coverage_mcse:.2f})"
    note = _text(section[section.index('id="direct-note"'):])
    assert "This study trained its models with log10 marrow blasts" in note
    assert "this bundle's models use" in note and "age (years)" in note


def test_the_note_appears_only_when_the_study_trained_other_models(ensemble_bundle_path, tmp_path):
    manifest = load_predictor(ensemble_bundle_path).manifest
    folder = tmp_path / "simulation"
    shutil.copytree(PACKAGED, folder)
    meta = json.loads((folder / "end_to_end.json").read_text())
    meta["trained_with"] = {**trained_with(manifest), "source": "test: this bundle's own"}
    (folder / "end_to_end.json").write_text(json.dumps(meta))
    assert honest_intervals(manifest, folder)["end_to_end"]["note"] is None
    meta["trained_with"]["methods"] = {"logistic": "aic_ridge", "cox": "heuristic_shrinkage"}
    (folder / "end_to_end.json").write_text(json.dumps(meta))
    note = honest_intervals(manifest, folder)["end_to_end"]["note"]
    assert "aic ridge (logistic), heuristic shrinkage (Cox)" in note
    assert "this bundle's models use" in note and "firth (logistic), firth (Cox)" in note
    del meta["trained_with"]
    (folder / "end_to_end.json").write_text(json.dumps(meta))
    assert "cannot be told" in honest_intervals(manifest, folder)["end_to_end"]["note"]
    (folder / "end_to_end.csv").unlink()  # not installed: said, never a table from elsewhere
    assert honest_intervals(manifest, folder)["end_to_end"] == {"missing": True}
