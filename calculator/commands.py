"""``cart-risk predict``, ``score`` and ``serve``: the calculator on the command line.

Each returns an exit code, or raises :class:`~model.errors.InputError` /
:class:`~model.errors.BundleError` for :func:`calculator.cli.main` to report as one line. Patient
input goes through :mod:`model.patient` and answers come from
:func:`model.predictor.prediction_answer`, as in the web app and the API. Nothing here imports the
fitting libraries (unless the default bundle has to be trained first) or Flask (except ``serve``).
"""
from __future__ import annotations

import errno
import json
import socket
import sys
from pathlib import Path

from model.errors import FieldError, InputError
from model.outcomes import LOGISTIC_NAMES, SURVIVAL_NAMES

#: At most this many row errors are printed; all are in the output's ``error`` column.
MAX_PRINTED_ROW_ERRORS = 20
DOSE_SENTENCE = ("Every cohort patient received the same split dose (5 x 10^6 cells/kg as 10 %, "
                 "30 %, 60 %): the model cannot estimate a dose effect.")


def _bundle_path(args) -> Path:
    from calculator.defaults import bundle_or_default

    return bundle_or_default(getattr(args, "bundle", None))


def _option(field: str) -> str:
    """The command-line option of a patient field, for error messages."""
    from model.patient import PATIENT_FIELDS

    if field == "marrow_blasts_pct":
        return "--blasts"
    return "--" + field.replace("_", "-") if field in PATIENT_FIELDS else field


# --------------------------------------------------------------------------- predict


def predict_command(args) -> int:
    """Predict for the patient given as options; print text, or the API's JSON with ``--json``."""
    from model.bundle import load_predictor
    from model.patient import PATIENT_FIELDS, parse_form
    from model.predictor import prediction_answer

    bundle = load_predictor(_bundle_path(args))
    raw = {name: getattr(args, name) for name in PATIENT_FIELDS
           if getattr(args, name, None) is not None}
    try:
        patient = parse_form(raw, required=bundle.predictor.required_fields)
        answer = prediction_answer(bundle, patient)
    except InputError as error:
        raise InputError([FieldError(_option(problem.field), problem.message)
                          for problem in error.errors]) from None
    if getattr(args, "fhir", False):
        from calculator.interop.fhir_output import risk_assessment

        print(json.dumps(risk_assessment(answer, patient, bundle.manifest), allow_nan=False,
                         indent=2))
    elif args.json:
        print(json.dumps(answer, allow_nan=False, indent=2))
    else:
        print(format_answer(answer, patient, bundle.manifest))
    return 0


def format_answer(answer: dict, patient: dict, manifest: dict) -> str:
    """The API answer as text for a terminal (ASCII only)."""
    from calculator.results import (OUTCOME_LABELS, describe_value, is_reconstructed_manifest,
                                    percent, percent_interval, survival_at)
    from model.bundle_kind import bundle_basis
    from model.patient import PATIENT_FIELDS
    from model.predictor import HORIZONS_MONTHS

    def pct(value):
        return "n/a" if value is None else percent(value)

    def ci(bounds):
        return percent_interval(bounds, dash="-")

    origin = ("reconstructed cohort: synthetic, not patient data"
              if is_reconstructed_manifest(manifest) else str(manifest.get("source", "")))
    lines = [f"ssCART-19 risk, r/r B-ALL (bundle {answer['model']['id'][:12]}, "
             f"{answer['model']['trained_on']}; {origin})",
             "Inputs: " + ", ".join(f"{PATIENT_FIELDS[name].label} "
                                    f"{describe_value(name, value)}"
                                    for name, value in patient.items()), ""]
    for name in LOGISTIC_NAMES:
        result = answer.get(name)
        label = OUTCOME_LABELS[name]
        if result is None:
            lines.append(f"{label}: no model in this bundle")
            continue
        lines.append(f"{label}: {pct(result['probability'])} (95 % CI {ci(result['ci95'])})")
    band = (answer.get("severe_crs") or {}).get("band")
    if band:
        basis = bundle_basis(manifest)
        lines += band_lines(band, pct, ci, basis.root_reconstructed and not basis.bands_observed)
    header = "".join(f"{f'{h} months':<22}" for h in HORIZONS_MONTHS)
    lines += ["", f"{'Survival':<24}{header}"]
    for name in SURVIVAL_NAMES:
        if answer.get(name) is None:
            lines.append(f"{OUTCOME_LABELS[name]:<24}no model in this bundle")
            continue
        cells = []
        for months in HORIZONS_MONTHS:
            value = survival_at(answer[name], months)
            cells.append("beyond follow-up" if value is None else
                         f"{pct(value['survival'])} ({ci([value['lower'], value['upper']])})")
        lines.append(f"{OUTCOME_LABELS[name]:<24}" + "".join(f"{cell:<22}" for cell in cells))
    if answer["warnings"]:
        lines += ["", "Warnings:"] + [f"  - {warning}" for warning in answer["warnings"]]
    evidence = answer["model"].get("evidence") or {}
    if evidence:
        lines += ["", "Evidence:"] + [f"  {key}: {label}" for key, label in evidence.items()]
    lines += ["", "Severe CRS is graded by CTCAE v4.03 (not ASTCT). " + DOSE_SENTENCE]
    return "\n".join(line.rstrip() for line in lines)


def band_lines(band: dict, pct, ci, reconstructed_cohort: bool = False) -> list[str]:
    """The patient's sCRS band as text: an ensemble's range beside the published groups, or a
    cohort's count (observed for a center; an assumed split for one reconstruction)."""
    observed = band["observed"]
    reconstructed = band.get("reconstructed")
    if reconstructed is None:
        who = ("patients of the reconstructed cohort (assumed subgroup split)" if reconstructed_cohort
               else "cohort patients (observed)")
        return [f"  burden subgroup {band['subgroup']} ({band['label']}): severe CRS in "
                f"{observed['events']} of {observed['n']} {who} "
                f"({pct(observed['rate'])}, 95 % CI {ci(observed['ci95'])})"]
    low, high = reconstructed["rate_range"]
    lines = [f"  burden subgroup {band['subgroup']} ({band['label']}): severe CRS rate "
             f"{pct(low)}-{pct(high)} across {reconstructed['reconstructions']} reconstructions "
             f"(assumed subgroup split, not observed)"]
    published = band.get("published")
    if published:
        lines.append(f"  published: severe CRS in {published['events']} of {published['n']} "
                     f"patients with {published['label']} (Li et al., Fig. 4B)")
    return lines


# --------------------------------------------------------------------------- score


def score_command(args) -> int:
    """Score every row of a CSV; write predictions (and row errors) to ``-o`` atomically.

    Returns 0 when every row was scored, 1 when any row failed (its ``error`` column says why;
    the other rows are still scored). A file-level problem (unknown or missing columns) raises
    :class:`InputError` and nothing is written. The work is :func:`calculator.scoring.score_csv`.
    """
    from calculator.scoring import score_csv
    from model.bundle import load_predictor

    bundle = load_predictor(_bundle_path(args))
    output = Path(args.output)
    if not output.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot write the output: the directory "
                                f"{output.parent} does not exist", str(output))
    try:
        summary = score_csv(bundle, args.input, output, keep_errors=MAX_PRINTED_ROW_ERRORS)
    except OSError as error:
        if error.filename is not None and Path(error.filename).parent == output.parent \
                and Path(error.filename) != Path(args.input):
            # the temporary file beside the output: name the file the user asked for
            raise type(error)(error.errno, f"cannot write the output: {error.strerror}",
                              str(output)) from None
        raise
    for problem in summary.errors:
        where = f"line {problem.line}" + (f" (patient_id {problem.patient_id})"
                                          if problem.patient_id else "")
        print(f"cart-risk score: {where}: {problem.message}", file=sys.stderr)
    if summary.failed > len(summary.errors):
        print(f"cart-risk score: ... and {summary.failed - len(summary.errors)} more (see the "
              f"error column of {args.output})", file=sys.stderr)
    if summary.failed:
        print(f"cart-risk score: {summary.failed} of {summary.rows} rows failed; "
              f"{summary.rows - summary.failed} scored into {args.output}", file=sys.stderr)
        return 1
    print(f"scored {summary.rows} rows into {args.output}")
    return 0


# --------------------------------------------------------------------------- serve


def _port_free(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as problem:
            return problem.strerror or str(problem)
    return None


def serve_command(args) -> int:
    """Serve the calculator with gunicorn; refuse (exit 1) without a verified bundle."""
    from model.bundle import load_predictor

    path = _bundle_path(args)
    bundle = load_predictor(path)  # BundleError: the CLI prints it as one line
    if not 1 <= args.port <= 65535:
        print(f"cart-risk serve: --port must be 1-65535 (got {args.port})", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"cart-risk serve: --workers must be 1 or more (got {args.workers})",
              file=sys.stderr)
        return 2
    busy = _port_free(args.host, args.port)
    if busy:
        print(f"cart-risk serve: cannot listen on {args.host}:{args.port}: {busy}",
              file=sys.stderr)
        return 1
    from gunicorn.app.base import BaseApplication

    from calculator import create_app
    from calculator.server import gunicorn_settings

    # Built here, before anything is printed: a bundle the app refuses (content, training data)
    # or a signing key that cannot be shared is reported as one line and nothing is served.
    # gunicorn forks the workers from this process (preload), so they share the app and its key;
    # a key made for this process alone is still refused with several workers, as a plain
    # `gunicorn calculator.wsgi:app` would not share it.
    from calculator.metrics import prepare_multiprocess_dir, server_exited

    prepare_multiprocess_dir()  # before the app imports prometheus_client (metrics on only)
    try:
        app = create_app({"BUNDLE_PATH": str(path), "PROCESS_KEY_ALLOWED": args.workers == 1})
    except BaseException:
        server_exited(None)
        raise

    class CalculatorServer(BaseApplication):
        """gunicorn running the app factory, the bundle loaded once before workers fork."""

        def load_config(self):
            host = f"[{args.host}]" if ":" in args.host else args.host
            self.cfg.set("bind", [f"{host}:{args.port}"])
            for name, value in gunicorn_settings(args.workers).items():
                self.cfg.set(name, value)  # threads, short timeouts, logs without values
            self.cfg.set("preload_app", True)
            self.cfg.set("proc_name", "cart-risk")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no ~/.gunicorn
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return app

    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    from calculator.logs import notice

    notice(f"cart-risk: serving bundle {bundle.id[:12]} on http://{shown_host}:{args.port} "
           f"(Ctrl-C stops)")
    CalculatorServer().run()
    return 0
