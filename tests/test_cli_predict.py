"""`cart-risk predict`, `score` and `serve`: same answers as the API, one-line errors, fast start."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from calculator import defaults
from calculator.cli import main
from conftest import predict_options

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calculator.cli", *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)


# --------------------------------------------------------------------------- predict


def test_predict_json_is_the_api_answer(client, patient, trained_bundle_path, capsys):
    code = main(["predict", "--bundle", str(trained_bundle_path), "--json", *predict_options(patient)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == client.post("/api/v1/predict", json=patient).get_json()


def test_predict_text_shows_the_same_numbers(client, patient, trained_bundle_path, capsys):
    assert main(["predict", "--bundle", str(trained_bundle_path), *predict_options(patient)]) == 0
    text = capsys.readouterr().out
    api = client.post("/api/v1/predict", json=patient).get_json()
    assert f"Complete remission: {round(api['cr']['probability'] * 100)} %" in text
    assert f"{round(api['severe_crs']['probability'] * 100)} %" in text
    assert "burden subgroup c (5% <= blasts < 20%)" in text
    assert f"{round(api['efs']['at']['12'] * 100)} %" in text
    assert "cannot estimate a dose effect" in text and "CTCAE v4.03" in text
    assert "reconstructed cohort" in text
    assert text.isascii()


def test_predict_errors_are_one_line_each_with_the_option(trained_bundle_path, capsys):
    code = main(["predict", "--bundle", str(trained_bundle_path), "--blasts", "150",
                 "--mrd-positive", "maybe"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert "cart-risk predict: --blasts: must be between 0 and 100 (got 150)" in lines
    assert any(line.startswith("cart-risk predict: --mrd-positive: must be true or false")
               for line in lines)
    assert any(line == "cart-risk predict: --age-years: is required" for line in lines)


def test_predict_refuses_zero_blasts_mrd_negative(trained_bundle_path, patient, capsys):
    changed = {**patient, "marrow_blasts_pct": 0, "mrd_positive": False}
    assert main(["predict", "--bundle", str(trained_bundle_path), *predict_options(changed)]) == 2
    assert "outside the population the models describe" in capsys.readouterr().err


def test_predict_never_imports_the_fitting_stack(trained_bundle_path, patient):
    code = f"""
import sys
from calculator.cli import main
assert main({["predict", "--bundle", str(trained_bundle_path), "--json", *predict_options(patient)]!r}) == 0
heavy = {{"sklearn", "lifelines", "statsmodels", "training", "flask", "matplotlib", "pandas",
         "pandera", "scipy", "joblib", "dask", "distributed"}}
loaded = sorted(name for name in sys.modules if name.split(".")[0] in heavy)
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cr"]["probability"] is not None


def test_predict_uses_the_default_bundle_without_training(trained_bundle_path, patient,
                                                          tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained_bundle_path, home / "bundles" / "default")
    code = f"""
import sys
from calculator.cli import main
assert main({["predict", "--json", *predict_options(patient)]!r}) == 0
assert "training" not in sys.modules and "sklearn" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "CART_RISK_HOME": str(home)},
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "training it" not in result.stderr


@pytest.mark.slow
def test_default_bundle_is_trained_once_when_missing(first_serve, monkeypatch):
    """The real default: the packaged ensemble trained with the shared defaults, then reused.

    The bundle is the one `serve` trained into an empty CART_RISK_HOME (``first_serve``: the
    real default takes a minute or more to train, so the suite trains it there only once).
    """
    from model.bundle import MANIFEST, load_predictor
    from model.provenance import is_reconstructed

    home, log = first_serve
    assert "training it on the ensemble" in log  # missing, so ensure_default_bundle trained it
    monkeypatch.setenv("CART_RISK_HOME", str(home))
    path = defaults.ensure_default_bundle(quiet=True)
    assert path == home / "bundles" / "default"
    bundle = load_predictor(path)  # verified
    assert is_reconstructed(bundle.manifest)
    assert bundle.manifest["bootstrap"] == 200 and bundle.manifest["seed"] == 20170201
    assert bundle.manifest["ensemble"]["members"] == 20
    stamp = (path / MANIFEST).stat().st_mtime_ns
    assert defaults.ensure_default_bundle(quiet=True) == path
    assert (path / MANIFEST).stat().st_mtime_ns == stamp  # not trained again


def test_default_home_is_cart_risk_home_or_dot_cart_risk(monkeypatch):
    monkeypatch.setenv("CART_RISK_HOME", "/somewhere")
    assert defaults.default_bundle_path() == Path("/somewhere/bundles/default")
    monkeypatch.delenv("CART_RISK_HOME")
    assert defaults.default_bundle_path() == Path.home() / ".cart-risk" / "bundles" / "default"


# --------------------------------------------------------------------------- score


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def as_text(patient: dict) -> dict[str, str]:
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v)
            for k, v in patient.items()}


def test_score_scores_valid_rows_and_reports_bad_ones(client, patient, trained_bundle_path,
                                                      tmp_path, capsys):
    rows = [{"patient_id": "P1", **as_text(patient)},
            {"patient_id": "P2", **as_text({**patient, "marrow_blasts_pct": 150})},
            {"patient_id": "P3", **as_text({**patient, "marrow_blasts_pct": 0,
                                            "mrd_positive": False})},
            {"patient_id": "P4", **as_text({**patient, "marrow_blasts_pct": 60,
                                            "age_years": 81})}]
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    code = main(["score", "--bundle", str(trained_bundle_path), str(source), "-o", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "line 3 (patient_id P2): marrow_blasts_pct: must be between 0 and 100" in err
    assert "line 4 (patient_id P3): marrow_blasts_pct: marrow blasts below 0.01 %" in err
    assert "2 of 4 rows failed" in err
    scored = read_csv(out)
    assert [row["patient_id"] for row in scored] == ["P1", "P2", "P3", "P4"]
    assert [bool(row["error"]) for row in scored] == [False, True, True, False]
    assert scored[1]["cr"] == "" and scored[2]["efs_12mo"] == ""
    for row, sent in ((scored[0], patient), (scored[3], {**patient, "marrow_blasts_pct": 60,
                                                         "age_years": 81})):
        api = client.post("/api/v1/predict", json=sent).get_json()
        assert float(row["cr"]) == api["cr"]["probability"]
        assert [float(row["cr_lower"]), float(row["cr_upper"])] == api["cr"]["ci95"]
        assert float(row["severe_crs"]) == api["severe_crs"]["probability"]
        assert row["burden_subgroup"] == api["severe_crs"]["band"]["subgroup"]
        assert float(row["os_24mo"]) == api["os"]["at"]["24"]
        assert row["model_id"] == api["model"]["id"]
        assert row["model_provenance"] == api["model"]["provenance"] == "reconstructed-from-published-aggregates"
        assert row["warnings"] == "; ".join(api["warnings"])
    assert "age_years 81 is outside the training range" in scored[3]["warnings"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temp left


def test_score_all_valid_exits_zero(patient, trained_bundle_path, tmp_path, capsys):
    source = write_csv(tmp_path / "in.csv", [as_text(patient)] * 3)
    out = tmp_path / "out.csv"
    assert main(["score", "--bundle", str(trained_bundle_path), str(source), "-o",
                 str(out)]) == 0
    assert len(read_csv(out)) == 3 and "scored 3 rows" in capsys.readouterr().out


@pytest.mark.parametrize("rows, message", [
    ([{"marrow_blasts": "12", "mrd_positive": "true"}], "marrow_blasts"),
    ([{"marrow_blasts_pct": "12", "mrd_positive": "true"}], "age_years: column is missing"),
])
def test_score_refuses_bad_columns_and_keeps_the_old_output(trained_bundle_path, tmp_path,
                                                            capsys, rows, message):
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    out.write_text("earlier output\n")
    assert main(["score", "--bundle", str(trained_bundle_path), str(source), "-o",
                 str(out)]) == 2
    assert message in capsys.readouterr().err
    assert out.read_text() == "earlier output\n"


def test_score_reports_unreadable_files(trained_bundle_path, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xff\xfe\x00bad")
    assert main(["score", "--bundle", str(trained_bundle_path), str(source), "-o",
                 str(tmp_path / "out.csv")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["score", "--bundle", str(trained_bundle_path), str(tmp_path / "none.csv"),
                 "-o", str(tmp_path / "out.csv")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------- serve


def test_serve_refuses_without_a_verified_bundle(tmp_path, trained_bundle_path, unused_port):
    missing = run_cli("serve", "--bundle", str(tmp_path / "missing"), "--port",
                      str(unused_port))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "no bundle directory" in missing.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(trained_bundle_path, tampered)
    with open(tampered / "predictor.json", "ab") as handle:
        handle.write(b"\n")
    refused = run_cli("serve", "--bundle", str(tampered), "--port", str(unused_port))
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "'file-hash' failed" in refused.stderr


def test_serve_runs_gunicorn_with_the_bundle(served_calculator, loaded_bundle):
    with urllib.request.urlopen(f"{served_calculator}/healthz", timeout=10) as answer:
        assert json.loads(answer.read())["bundle"]["id"] == loaded_bundle.id
        assert "gunicorn" in answer.headers.get("Server", "")



@pytest.fixture(scope="module")
def first_serve(tmp_path_factory) -> tuple[Path, str]:
    """The first `make run`: `cart-risk serve` with an empty CART_RISK_HOME trains the default
    bundle, answers /healthz and is stopped with SIGTERM; (that home, the server's log)."""
    from conftest import free_port, stop_process

    home, port = tmp_path_factory.mktemp("first-serve") / "home", free_port()
    log = home.parent / "serve.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "calculator.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
            env={**os.environ, "CART_RISK_HOME": str(home)})
    try:  # training the default bundle with its pooled validation: ~75 s quiet, minutes loaded
        for _ in range(1800):
            assert server.poll() is None, log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert json.loads(answer.read())["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the calculator did not answer: " + log.read_text(errors="replace"))
    finally:
        stop_process(server)
    return home, log.read_text(errors="replace")


@pytest.mark.slow
def test_serve_trains_the_missing_default_and_shuts_down_without_a_traceback(first_serve):
    """First `make run`: the default bundle is trained, served, and a clean stop logs no trace.

    Training once ran joblib's worker pool in the process that then forks gunicorn's workers,
    and every worker printed tracebacks at shutdown.
    """
    home, text = first_serve
    assert "training it on the ensemble" in text and "Shutting down: Master" in text
    assert "Traceback" not in text
    assert (home / "bundles" / "default" / "manifest.json").is_file()
