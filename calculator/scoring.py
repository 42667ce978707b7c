"""Score a CSV of patients, chunk by chunk (the engine of ``cart-risk score``).

Memory stays bounded whatever the file's length: the input is read :data:`CHUNK_ROWS` rows at a
time (the ``csv`` module, so a row's problems are the same as a one-row-at-a-time reader would
find), each chunk is checked, predicted and appended to a temporary file beside the output, and
that file is renamed over the output only once every row has been written. A file-level problem
found anywhere (not UTF-8, not CSV, no rows) leaves any earlier output untouched.

Each column of a chunk is checked once per distinct text, by :func:`model.patient.parse_text_value`
-- the rules and messages of :func:`model.patient.parse_form`, so a bad cell gets the message the
API and the form give. A row with problems is kept in the output with its ``error`` column filled
and no predictions; the other rows are scored.

Output columns: the input's columns, ``burden_subgroup``, the columns of
:func:`model.predictor.predict_points` with intervals (``cr``, ``cr_lower``, ``cr_upper``, ...,
``efs_6mo``, ...), ``scrs_band_rate``, ``warnings``, ``error``, ``model_id`` (bundle id) and
``model_provenance``. Numbers are rounded to 3 decimals, as in the API
(:func:`model.rounding.format_values`). A copied input cell
(an identifier, say) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
gets a leading ``'`` so that a spreadsheet shows it as text instead of running it as a formula
(OWASP's CSV-injection rule). The input is read as strict CSV: a stray quote is an error naming
its line, never a cell that silently swallows the rows after it.
"""
from __future__ import annotations

import csv
import os
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from model.errors import FieldError, InputError
from model.patient import (ALWAYS_REQUIRED, PATIENT_FIELDS, in_modelled_population, parse_form,
                           parse_text_value, population_refusal)
from model.predictor import input_warnings, predict_points
from model.rounding import format_values

#: At most this many header problems (unknown, repeated, missing columns) are listed.
MAX_REPORTED_HEADER_PROBLEMS = 20
#: A record may run over this many lines (a quoted cell with a line break or two); more is a
#: stray quote swallowing the rows after it.
MAX_LINES_PER_RECORD = 5
#: Cells starting with these are formulas to a spreadsheet (OWASP CSV injection): copied input
#: cells that start with one get a leading apostrophe in the output.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Rows read, checked and predicted at a time; memory is proportional to it, not to the file.
CHUNK_ROWS = 10_000
#: Input columns that identify a row rather than describe the patient; copied to the output.
ID_COLUMNS = ("patient_id",)
TOO_MANY_CELLS = "row has more cells than the header"
#: Output columns after the predictions. The last two name the bundle on every row, so a scored
#: file carried elsewhere still says which model (and, for the default one, that it was trained on
#: the synthetic reconstructed cohort) produced it.
TRAILING_COLUMNS = ["scrs_band_rate", "warnings", "error", "model_id", "model_provenance"]


@dataclass(frozen=True)
class RowError:
    """A row that could not be scored: its CSV line (1 = header), ``patient_id`` and why."""

    line: int
    patient_id: str
    message: str


@dataclass
class ScoreSummary:
    """What :func:`score_csv` did: rows read, rows that failed, the first ``keep_errors`` failures."""

    rows: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)


def score_csv(bundle, source: Path, destination: Path, *, chunk_rows: int = CHUNK_ROWS,
              keep_errors: int = 20) -> ScoreSummary:
    """Score every row of ``source`` with ``bundle`` into ``destination`` (written atomically).

    Parameters
    ----------
    bundle : model.bundle.LoadedBundle
    source, destination : path
        Input CSV (UTF-8, header row of API field names, one row a patient) and output CSV.
    chunk_rows : int
        Rows held in memory at a time.
    keep_errors : int
        How many row failures to return in full (all are counted and in the ``error`` column).

    Returns
    -------
    ScoreSummary

    Raises
    ------
    InputError
        A file-level problem (unreadable, not UTF-8, unknown / missing / repeated columns, no
        rows); ``destination`` is then left as it was.
    OSError
        ``source`` cannot be opened or ``destination`` cannot be written.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    source, destination = Path(source), Path(destination)
    required = bundle.predictor.required_fields
    with open(source, newline="", encoding="utf-8-sig") as handle:
        records = _records(csv.reader(handle, strict=True), source)
        header = next(records, (0, []))[1]
        if not header:
            raise InputError([FieldError(str(source), "is empty; expected a header row of field "
                                                      "names and one row a patient")])
        _check_header(header, required, source)
        keys = prediction_columns(bundle)
        summary = ScoreSummary()
        with _AtomicCsv(destination) as writer:
            writer.writerow(header + ["burden_subgroup"] + keys + TRAILING_COLUMNS)
            for chunk in _chunks(records, chunk_rows):
                table, errors = _score_chunk(bundle, header, keys, chunk)
                writer.writerows(zip(*table))
                summary.rows += len(chunk)
                summary.failed += len(errors)
                summary.errors += errors[:max(0, keep_errors - len(summary.errors))]
            if summary.rows == 0:
                raise InputError([FieldError(str(source), "has no patient rows")])
    return summary


def prediction_columns(bundle) -> list[str]:
    """The prediction columns of the output: those :func:`predict_points` gives for ``bundle``."""
    empty = {name: np.empty(0, dtype=_DTYPES[PATIENT_FIELDS[name].kind])
             for name in bundle.predictor.required_fields}
    return [key for key in predict_points(bundle, empty, intervals=True)
            if key != "burden_subgroup"]


# --------------------------------------------------------------------------- reading


def _records(reader, source: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each non-blank record; file-level read errors as InputError.

    ``reader`` is strict: a stray quote is an error naming the line where its record starts,
    as is a record running over more than :data:`MAX_LINES_PER_RECORD` lines.
    """
    last_line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise InputError([FieldError(str(source), "is not UTF-8 text")]) from None
        except csv.Error as problem:
            raise InputError([FieldError(str(source), (
                f"line {last_line + 1}: not valid CSV ({problem}); a stray '\"' there opens a "
                "quoted cell that runs on; nothing was scored"))]) from None
        first_line, last_line = last_line + 1, reader.line_num
        if last_line - first_line + 1 > MAX_LINES_PER_RECORD:
            raise InputError([FieldError(str(source), (
                f"line {first_line}: a quoted cell runs over {last_line - first_line + 1} lines "
                f"(to line {last_line}); a stray '\"'? Nothing was scored"))])
        if cells:
            yield first_line, cells


def _chunks(records: Iterator, size: int) -> Iterator[list[tuple[int, list[str]]]]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_header(header: list[str], required: tuple[str, ...], path: Path) -> None:
    """Missing, repeated and unknown columns, in time linear in the header's width.

    At most :data:`MAX_REPORTED_HEADER_PROBLEMS` are listed, then how many more there are.
    """
    counts = Counter(header)
    problems = [FieldError(name, f"column is missing from {path.name}")
                for name in required if name not in counts]
    problems += [FieldError(_shown(name), "column appears more than once")
                 for name, count in counts.items() if count > 1]
    unknown = [name for name in counts if name not in PATIENT_FIELDS and name not in ID_COLUMNS]
    if unknown:  # the patient parser names unknown columns (with a did-you-mean) like fields
        try:
            parse_form({name: None for name in unknown[:MAX_REPORTED_HEADER_PROBLEMS]})
        except InputError as error:
            problems += [FieldError(problem.field, problem.message.replace("field", "column", 1))
                         for problem in error.errors if problem.field not in PATIENT_FIELDS]
    total = len(problems) + max(0, len(unknown) - MAX_REPORTED_HEADER_PROBLEMS)
    if total > MAX_REPORTED_HEADER_PROBLEMS:
        problems = problems[:MAX_REPORTED_HEADER_PROBLEMS]
        problems.append(FieldError(path.name, f"... and {total - len(problems)} more column "
                                              f"problems in a header of {len(header):,} columns"))
    if problems:
        raise InputError(problems)


def _shown(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."


# --------------------------------------------------------------------------- checking

_DTYPES = {"number": float, "boolean": bool, "choice": str}


@dataclass
class _Column:
    """One field's cells in a chunk: typed values, absent and invalid cells, their problems."""

    values: np.ndarray
    absent: np.ndarray
    invalid: np.ndarray
    problems: np.ndarray  # FieldError where invalid, else None


def _check_column(name: str, cells: tuple[str, ...]) -> _Column:
    """Parse each distinct text once, then spread the results over the cells."""
    distinct = list(dict.fromkeys(cells))
    parsed, problems = [], []
    for text in distinct:
        try:
            parsed.append(parse_text_value(name, text))
            problems.append(None)
        except InputError as error:
            parsed.append(None)
            problems.append(error.errors[0])
    codes = np.fromiter(map({text: i for i, text in enumerate(distinct)}.__getitem__, cells),
                        dtype=np.intp, count=len(cells))
    problem_table = np.empty(len(distinct), dtype=object)
    problem_table[:] = problems
    invalid = np.array([problem is not None for problem in problems])
    absent = np.array([value is None for value in parsed]) & ~invalid
    kind = PATIENT_FIELDS[name].kind
    if kind == "choice":
        values = np.array(["" if value is None else value for value in parsed], dtype=str)
    else:
        values = np.array([np.nan if value is None else float(value) for value in parsed])
    return _Column(values[codes], absent[codes], invalid[codes], problem_table[codes])


def _check_rows(header: list[str], rows: list[list[str]], required: tuple[str, ...]):
    """Check a chunk's rows as :func:`model.patient.parse_form` would, column by column.

    Returns
    -------
    padded : list of list of str
        The rows cut or padded to the header's width (the cells copied to the output).
    typed : dict of str -> numpy.ndarray
        The required fields of the valid rows, typed for :func:`predict_points`.
    valid : (n,) bool
    messages : list of str or None
        Each row's problems (``field: message; ...``), None for a valid row.
    """
    width = len(header)
    too_long = np.array([len(cells) > width for cells in rows], dtype=bool)
    padded = [cells if len(cells) == width else (cells + [""] * width)[:width] for cells in rows]
    by_name = dict(zip(header, zip(*padded))) if padded else {}
    needed = set(ALWAYS_REQUIRED) | set(required)
    checked = {name: _check_column(name, by_name[name]) for name in PATIENT_FIELDS
               if name in by_name}
    bad = too_long.copy()
    for name, column in checked.items():
        bad |= column.invalid
        if name in needed:
            bad |= column.absent
    messages: list[str | None] = [None] * len(rows)
    for i in np.flatnonzero(bad):
        if too_long[i]:
            messages[i] = TOO_MANY_CELLS
            continue
        problems = []
        for name, column in checked.items():
            if column.invalid[i]:
                problems.append(column.problems[i])
            elif column.absent[i] and name in needed:
                problems.append(FieldError(name, "is required"))
        messages[i] = "; ".join(str(problem) for problem in problems)
    blasts, mrd = checked["marrow_blasts_pct"].values, checked["mrd_positive"].values
    refused = ~bad & ~in_modelled_population(np.nan_to_num(blasts, nan=1.0), mrd)
    for i in np.flatnonzero(refused):
        refusal = population_refusal({"marrow_blasts_pct": float(blasts[i]),
                                      "mrd_positive": bool(mrd[i] == 1)})
        messages[i] = f"marrow_blasts_pct: {refusal}"
    valid = ~bad & ~refused
    typed = {name: checked[name].values[valid].astype(_DTYPES[PATIENT_FIELDS[name].kind])
             for name in required}
    return padded, typed, valid, messages


# --------------------------------------------------------------------------- scoring a chunk


def _score_chunk(bundle, header: list[str], keys: list[str],
                 chunk: list[tuple[int, list[str]]]):
    """Output columns (lists of text) of one chunk, and its row errors."""
    lines = [line for line, _ in chunk]
    rows = [cells for _, cells in chunk]
    n = len(rows)
    predictor = bundle.predictor
    padded, typed, valid, messages = _check_rows(header, rows, predictor.required_fields)
    index = np.flatnonzero(valid)
    table = ([[_neutralized(cell) for cell in cells] for cells in zip(*padded)] if padded
             else [[] for _ in header])
    subgroup = np.full(n, "", dtype=object)
    warnings = np.full(n, "", dtype=object)
    band_rate = np.full(n, "", dtype=object)
    if index.size:
        points = predict_points(bundle, typed, intervals=True)
        subgroup[index] = points["burden_subgroup"].astype(object)
        warnings[index] = ["; ".join(found) for found in input_warnings(bundle, typed)]
        rates = {letter: format_values(np.array([row.get("rate", np.nan)], dtype=float))[0]
                 for letter, row in predictor.scrs_bands.items()}
        band_rate[index] = [rates.get(letter, "") for letter in points["burden_subgroup"]]
    table.append(subgroup.tolist())
    for key in keys:
        values = np.full(n, np.nan)
        if index.size:
            values[index] = points[key]
        table.append(format_values(values))
    table += [band_rate.tolist(), warnings.tolist(), [m or "" for m in messages],
              [bundle.id] * n, [bundle.manifest.get("provenance", "")] * n]
    ident = header.index("patient_id") if "patient_id" in header else None
    errors = [RowError(lines[i], padded[i][ident] if ident is not None else "", messages[i])
              for i in range(n) if messages[i]]
    return table, errors


def _neutralized(cell: str) -> str:
    """A copied input cell, with a leading apostrophe if a spreadsheet would run it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


# --------------------------------------------------------------------------- writing


class _QuotingWriter:
    """``csv.writer`` with ``\\n`` line ends that also quotes cells holding a bare ``\\r``.

    Python < 3.12 quotes only the line terminator's characters, so a copied input cell with a
    carriage return would be written unquoted and read back as two records.
    """

    def __init__(self, handle):
        self.minimal = csv.writer(handle, lineterminator="\n")
        self.quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row) -> None:
        row = list(row)
        (self.quoted if any("\r" in cell for cell in row) else self.minimal).writerow(row)

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


class _AtomicCsv:
    """A CSV writer on a temporary file beside ``path``, renamed over ``path`` on success."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self):
        descriptor, self.temporary = tempfile.mkstemp(dir=self.path.parent or ".",
                                                      prefix=f".{self.path.name}.",
                                                      suffix=".tmp")
        self.handle = os.fdopen(descriptor, "w", newline="", encoding="utf-8")
        return _QuotingWriter(self.handle)

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
            self.handle.close()
            if kind is None:
                self._keep_mode()
                os.replace(self.temporary, self.path)
        finally:
            if kind is not None or os.path.exists(self.temporary):
                Path(self.temporary).unlink(missing_ok=True)
        return False

    def _keep_mode(self) -> None:
        """A replaced file keeps its permissions; a new one stays 0600 (it holds patient data)."""
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISREG(mode):
            os.chmod(self.temporary, stat.S_IMODE(mode))
