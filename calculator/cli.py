"""The `cart-risk` command line.

Subcommands: reproduce, train, simulate, report, validate, update, predict, score, serve. Errors
go to stderr as one clear line with a non-zero exit; no stack trace reaches the user. Heavy
libraries are imported inside each command, so `predict` never imports the training stack when
a bundle exists.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path

from model.defaults import BACKENDS, DEFAULT_BOOTSTRAP, DEFAULT_SEED
from model.errors import EXIT_FAILURE, EXIT_USAGE, report_failure
from model.patient import PATIENT_FIELDS

BUNDLE_HELP = ("bundle directory (default: $CART_RISK_BUNDLE, else "
               "$CART_RISK_HOME/bundles/default, trained on the reconstructed cohorts on first use)")


class CommandError(Exception):
    """A failure to report to the user as one line (exit 1)."""

    exit_code = EXIT_FAILURE


class UsageError(CommandError):
    """An option the command cannot work with (exit 2, as argparse's own usage errors)."""

    exit_code = EXIT_USAGE


def version_text() -> str:
    """What ``cart-risk --version`` prints: this release and the bundle format it reads."""
    from model.release import __version__
    from model.bundle import FORMAT_VERSION

    return f"cart-risk {__version__} (reads bundle format {FORMAT_VERSION})"


class _VersionAction(argparse.Action):
    """``--version``, importing the bundle module only when asked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the release and the bundle format it reads, and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _patient_help(spec) -> str:
    """Help of one patient option: label, unit or allowed values, and the form's help line."""
    if spec.kind == "number":
        accepted = f"{spec.minimum:g}-{spec.maximum:g}" + (f" {spec.unit}" if spec.unit else "")
    elif spec.kind == "boolean":
        accepted = "true or false"
    else:
        accepted = "one of " + ", ".join(spec.choices)
    text = f"{spec.label} ({accepted}). {spec.help}".strip()
    return text.replace("%", "%%")  # argparse %-formats help: a literal "%" is written "%%"


def _add_patient_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("patient (every API field; booleans as true/false)")
    for name, spec in PATIENT_FIELDS.items():
        flags = ["--" + name.replace("_", "-")]
        if name == "marrow_blasts_pct":
            flags.insert(0, "--blasts")
        group.add_argument(*flags, dest=name, metavar="VALUE", default=None,
                           help=_patient_help(spec))


class SuggestingParser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped option or command (Python 3.14's
    ``suggest_on_error``, which the supported 3.11-3.13 lack), in this one place."""

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            known = self._options_of(getattr(parsed, "command", None))
            hints = []
            for extra in extras:
                if extra.startswith("-"):
                    close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1,
                                                      cutoff=0.6)
                    if close:
                        hints.append(f"{extra.split('=', 1)[0]}: did you mean {close[0]}?")
            self.error("unrecognized arguments: " + " ".join(extras)
                       + ("; " + "; ".join(hints) if hints else ""))
        return parsed

    def _options_of(self, command: str | None) -> list[str]:
        """The option strings of ``command``'s parser (or of this parser without one)."""
        parser = self
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                parser = action.choices[command]
        return [option for action in parser._actions for option in action.option_strings]

    def error(self, message: str):
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = SuggestingParser(
        prog="cart-risk",
        description="CAR-T (ssCART-19) risk calculator for r/r B-ALL, from Li et al. (NCT03919240).")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("reproduce", help="recompute the paper's statistics on a cohort")
    p.add_argument("--cohort", type=Path, help="cohort CSV (default: the reconstructed cohort)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write Kaplan-Meier PNGs to DIR")

    p = sub.add_parser("train", help="fit the four models and write a bundle")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--cohort", type=Path,
                        help="cohort CSV to train on (schema: model/cohort.py)")
    source.add_argument("--ensemble", type=Path, nargs="?", const=Path("packaged"), metavar="DIR",
                        help="fit on every reconstruction of an ensemble directory and pool "
                             "(without DIR: the packaged ensemble of reconstructed cohorts; "
                             "docs/ensemble.md)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="bundle directory to write (replaced atomically if it holds a bundle)")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="B",
                   help="bootstrap refits for validation and the 95 %% confidence intervals of "
                        "predictions (with --ensemble: in total, split over the reconstructions; "
                        "its pooled validation adds 200 replicates) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                   help="random seed; the same cohort, B and seed give the same bundle "
                        "(default: %(default)s)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local worker processes for the bootstrap (with --backend dask every "
                        "worker of the cluster is used instead)")
    p.add_argument("--features", type=Path, metavar="TOML", help="feature configuration file")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="joblib backend for the bootstrap (default: local processes)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (with --backend dask)")

    p.add_argument("--method", metavar="KIND=METHOD", action="append", default=[],
                   help="fitting method of the logistic or cox models, e.g. logistic=firth "
                        "(default: the simulation study's winners, docs/method-selection.md)")

    p = sub.add_parser("simulate", help="run the simulation study of the fitting methods "
                                        "(or, with --study coverage / end-to-end, the coverage studies)")
    p.add_argument("--study", choices=("methods", "coverage", "end-to-end"), default="methods",
                   help="methods: the fitting-method study (docs/method-selection.md); coverage: "
                        "do the shipped single-cohort intervals cover the true risk, under two "
                        "truths (Amendment 4); end-to-end: coverage of the true risk by the whole "
                        "pipeline, trial -> published statistics -> reconstructions -> ensemble "
                        "bundle (Amendment 5) (default: %(default)s)")
    p.add_argument("--repetitions", type=int, nargs="+", default=[200], metavar="R",
                   help="cohorts per size: one count, or one per --sizes value")
    p.add_argument("--sizes", type=int, nargs="+", default=[78, 200, 500], metavar="N",
                   help="cohort sizes to draw (patients, >= 20)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                   help="seed of every cohort and of the validation sample")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local worker processes (results are identical for any value)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory for the study's table, figure, rows and selection")
    p.add_argument("--update-packaged", action="store_true",
                   help="also write the summary to training/data/simulation/, which "
                        "/about and cart-risk report show (maintainers; end-to-end: "
                        "end_to_end.csv and .json)")
    p.add_argument("--cohorts", type=int, default=400, metavar="R",
                   help="coverage: cohorts of 78 a truth (default: %(default)s)")
    p.add_argument("--refits", type=int, default=100, metavar="B",
                   help="coverage: bootstrap refits a model (default: %(default)s)")
    p.add_argument("--interval", choices=("percentile", "bias_corrected"), default="percentile",
                   help="coverage: bootstrap interval (default: %(default)s, as shipped)")
    p.add_argument("--features", type=Path, metavar="TOML",
                   help="coverage: feature configuration (default: the packaged one)")
    p.add_argument("--method", metavar="KIND=METHOD", action="append", default=[],
                   help="coverage: fitting method of a kind (default: the shipped methods)")
    p.add_argument("--construction", default="C1", metavar="NAME",
                   help="coverage: name of what is scored (Amendment 4: C1, C2...)")
    p.add_argument("--add-to", type=Path, metavar="ROWS",
                   help="coverage: coverage_rows.csv.gz of an earlier run to add this one to")
    p.add_argument("--shipped", metavar="NAME",
                   help="coverage: the construction the card and report show (default: this one)")
    p.add_argument("--trials", type=int, default=200, metavar="T",
                   help="end-to-end: simulated 78-patient trials (default: %(default)s)")
    p.add_argument("--members", type=int, default=5, metavar="K",
                   help="end-to-end: reconstructions a trial (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=50, metavar="B",
                   help="end-to-end: bootstrap refits in total over the K reconstructions "
                        "(default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="joblib backend for the cohorts or trials (default: local processes)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (with --backend dask)")

    p = sub.add_parser("report", help="write the statistician's HTML report of a bundle")
    p.add_argument("--bundle", type=Path, required=True, metavar="DIR",
                   help="bundle directory to report on")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="HTML file to write")

    p = sub.add_parser("validate", help="validate a bundle's models on a center's cohort")
    p.add_argument("--bundle", type=Path, metavar="DIR", help=BUNDLE_HELP)
    p.add_argument("--cohort", type=Path, required=True, metavar="CSV",
                   help="the center's cohort CSV (schema: model/cohort.py)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the self-contained HTML page here")
    p.add_argument("--json", action="store_true",
                   help="print the figures as JSON (docs/validation-and-updating.md)")

    p = sub.add_parser("update", help="update a bundle's models on a center's cohort")
    p.add_argument("--bundle", type=Path, metavar="DIR", help=BUNDLE_HELP)
    p.add_argument("--cohort", type=Path, required=True, metavar="CSV",
                   help="the center's cohort CSV (schema: model/cohort.py)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory of the updated bundle (replaced atomically if it holds a "
                        "bundle)")
    p.add_argument("--method", choices=["auto", "intercept", "recalibrate", "refit"],
                   default="auto", help="update of every model; auto chooses per model by the "
                                        "closed testing procedure (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="B",
                   help="bootstrap repetitions validating the update (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                   help="random seed of the bootstrap (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local worker processes for the bootstrap (default: %(default)s)")

    p = sub.add_parser("predict", help="predict for one patient")
    p.add_argument("--bundle", type=Path, metavar="DIR", help=BUNDLE_HELP)
    answer_format = p.add_mutually_exclusive_group()
    answer_format.add_argument("--json", action="store_true", help="print the API's JSON answer")
    answer_format.add_argument("--fhir", action="store_true",
                               help="print the answer as a FHIR R4 RiskAssessment (docs/fhir.md)")
    _add_patient_options(p)

    p = sub.add_parser("score", help="score a CSV of patients (columns named as the API fields)")
    p.add_argument("--bundle", type=Path, metavar="DIR", help=BUNDLE_HELP)
    p.add_argument("input", type=Path, metavar="IN.csv",
                   help="patients, one a row, columns named as the API fields")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.csv",
                   help="CSV to write: the input columns and the predictions")

    p = sub.add_parser("serve", help="serve the calculator with gunicorn")
    p.add_argument("--bundle", type=Path, metavar="DIR", help=BUNDLE_HELP)
    p.add_argument("--host", default=os.environ.get("CART_RISK_HOST", "").strip() or "127.0.0.1",
                   help="address to listen on (default: $CART_RISK_HOST, else 127.0.0.1, this "
                        "machine only; now %(default)s)")
    p.add_argument("--port", type=int, default=os.environ.get("CART_RISK_PORT", "").strip() or "8000",
                   help="TCP port (default: $CART_RISK_PORT, else 8000; now %(default)s)")
    p.add_argument("--workers", type=int, default=os.environ.get("CART_RISK_WORKERS", "").strip() or "2",
                   help="gunicorn worker processes (default: $CART_RISK_WORKERS, else 2; now "
                        "%(default)s)")
    return parser


def _reproduce(args) -> int:
    from training.reproduce import run

    print(run(args.cohort, args.json, args.plots))
    return 0


def _options(args, **more):
    """The command's training options, checked by the one rule set of training/options.py."""
    from training.options import OptionError, training_options

    try:
        return training_options(args.bootstrap, args.jobs, **more)
    except OptionError as error:
        raise UsageError(f"--{error.option} {error.problem}") from None


def _train(args) -> int:
    from training.development.fit_models import parse_methods
    from training.train import train_command

    try:
        methods = parse_methods(args.method)
    except ValueError as problem:
        raise UsageError(f"--method: {problem}") from None
    _options(args, backend=args.backend, scheduler=args.scheduler, methods=methods)
    if args.ensemble is not None:
        from training.train_ensemble import ensemble_command

        return ensemble_command(None if args.ensemble == Path("packaged") else args.ensemble, args.out,
                                args.bootstrap, args.seed, args.jobs, args.features, args.backend,
                                args.scheduler, methods=methods)
    return train_command(args.cohort, args.out, args.bootstrap, args.seed, args.jobs,
                         args.features, args.backend, args.scheduler, methods=methods)


def _simulate(args) -> int:
    from training.simulation.study import simulate_command

    if args.study == "coverage":
        return _simulate_coverage(args)
    if args.study == "end-to-end":
        return _simulate_end_to_end(args)

    repetitions = args.repetitions[0] if len(args.repetitions) == 1 else args.repetitions
    if min(args.repetitions) < 1 or min(args.sizes) < 20:
        raise UsageError("--repetitions must be 1 or more and --sizes 20 or more")
    if len(args.repetitions) not in (1, len(args.sizes)):
        raise UsageError("--repetitions takes one count, or one count per --sizes value")
    if args.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    return simulate_command(repetitions, args.sizes, args.seed, args.jobs, args.out,
                            args.update_packaged)


def _simulate_coverage(args) -> int:
    import shlex

    from training.simulation.coverage import coverage_command, shipped_construction
    from training.development.fit_models import parse_methods
    from training.options import OptionError, training_options
    from training.train import parallel_backend

    for option in ("cohorts", "refits", "jobs"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option} must be 1 or more")
    try:
        options = training_options(args.refits, args.jobs, args.backend, args.scheduler, None)
        methods = parse_methods(args.method)
    except OptionError as error:
        option = "refits" if error.option == "bootstrap" else error.option
        raise UsageError(f"--{option} {error.problem}") from None
    except ValueError as error:
        raise UsageError(f"--method: {error}") from None
    construction = shipped_construction(args.construction, args.refits, args.interval,
                                        args.features, methods)
    command = (f"cart-risk simulate --study coverage --cohorts {args.cohorts} --refits "
               f"{args.refits} --interval {args.interval} --seed {args.seed} --construction "
               f"{args.construction}"
               + "".join(f" --method {m}" for m in args.method)
               + (f" --features {shlex.quote(str(args.features))}" if args.features else ""))
    with parallel_backend(options.backend, options.scheduler) as backend:
        return coverage_command(args.cohorts, construction, args.seed, options.jobs, args.out,
                                backend, args.update_packaged, args.add_to, args.shipped, command)


def _simulate_end_to_end(args) -> int:
    from training.simulate import end_to_end_command
    from training.options import OptionError, training_options

    for option in ("trials", "members", "bootstrap", "jobs"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option} must be 1 or more")
    try:
        options = training_options(args.bootstrap, args.jobs, args.backend, args.scheduler, None)
    except OptionError as error:
        raise UsageError(f"--{error.option} {error.problem}") from None
    return end_to_end_command(args.trials, args.members, args.bootstrap, args.seed, options.jobs,
                              args.out, options.backend, options.scheduler, args.update_packaged)


def _report(args) -> int:
    from training.report.page import report_command

    return report_command(args.bundle, args.out)


def _bundle_or_default(args) -> Path:
    from calculator.defaults import bundle_or_default

    return bundle_or_default(args.bundle)


def _validate(args) -> int:
    from training.validate import validate_command

    return validate_command(_bundle_or_default(args), args.cohort, args.out, args.json)


def _update(args) -> int:
    from training.updating import update_command

    _options(args)
    return update_command(_bundle_or_default(args), args.cohort, args.out, args.method,
                          args.bootstrap, args.seed, args.jobs)


def _predict(args) -> int:
    from calculator.commands import predict_command

    return predict_command(args)


def _score(args) -> int:
    from calculator.commands import score_command

    return score_command(args)


def _serve(args) -> int:
    from calculator.commands import serve_command

    return serve_command(args)


COMMANDS = {"reproduce": _reproduce, "train": _train, "simulate": _simulate, "report": _report,
            "validate": _validate, "update": _update, "predict": _predict, "score": _score,
            "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cart-risk` console script; returns the exit code."""
    from model.errors import BundleError, CohortError, ConfigurationError, InputError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        return _reader_went_away()
    except ModuleNotFoundError as error:
        from calculator.defaults import TRAINING_STACK, training_stack_message

        top = (error.name or "").split(".")[0]
        if top not in TRAINING_STACK:
            raise
        return report_failure(args.command, CommandError(training_stack_message(
            TRAINING_STACK[top])))
    except (InputError, CohortError, BundleError, CommandError, ConfigurationError, OSError,
            KeyboardInterrupt) as error:
        return report_failure(args.command, error)  # exit codes: model/errors.py, docs/cli.md


#: Exit code when the reader of stdout went away (``cart-risk predict | head``): 128 + SIGPIPE,
#: what a shell reports for a program that SIGPIPE ended, as coreutils' do.
EXIT_BROKEN_PIPE = 141


def _reader_went_away() -> int:
    """Exit quietly when stdout's reader closed the pipe: no message (the reader wanted no
    more), and stdout pointed at /dev/null so the interpreter's final flush cannot fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (e.g. captured in a test)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
