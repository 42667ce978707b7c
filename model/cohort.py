"""The cohort CSV: one schema, enforced in one place.

A cohort file has one row a patient with the columns of docs/cohort-csv.md. Every check lives here:
parsing (a cell that is not a number where a number goes), types, allowed values and ranges,
and the consistency rules between columns. A bad file is refused with one message listing every
offending line and column, e.g.::

    cohort.csv line 5 (patient_id R005), marrow_blasts_pct: must be between 0 and 100 (got 150)

Only ``patient_id``, ``marrow_blasts_pct`` and ``mrd_positive`` are always required; every other
column is checked when present, so a center that lacks (say) the IL-6 measurements can still use
the rest. Analyses and models that need an absent column say so themselves.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from model.atomic import atomic_path
from model.bundle_kind import MEMBER_COLUMN
from model.burden import MRD_THRESHOLD_PCT
from model.errors import CohortError  # noqa: F401  (raised here; importable from here too)
from model.outcomes import OUTCOMES

FLAG_COLUMNS = [
    "mrd_positive", "ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3", "prior_hsct",
    "relapsed", "tp53_mutation", "poor_cytogenetics", "efs_event", "os_event",
]
NUMBER_COLUMNS = [
    "age_years", "marrow_blasts_pct", "il6_peak_pg_ml", "cart_peak_copies_per_ug",
    "efs_months", "os_months",
]
GRADE_COLUMNS = ["crs_grade", "neurotox_grade"]
#: Whole-number columns: an ensemble's stacked training cohort numbers its reconstructions.
INTEGER_COLUMNS = [MEMBER_COLUMN]
CHOICE_COLUMNS = {
    "sex": ("M", "F"),
    "tb_assessed": ("before_fc", "after_fc"),
    "response": ("mrd_neg_cr", "mrd_pos_cr", "nr"),
}
#: Laboratory columns in which an empty cell means "not measured".
NULLABLE_COLUMNS = {"il6_peak_pg_ml", "cart_peak_copies_per_ug"}
REQUIRED_COLUMNS = ["patient_id", "marrow_blasts_pct", "mrd_positive"]
#: Column order of a cohort file written by this package.
COLUMNS = [
    "patient_id", "age_years", "sex", "ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3",
    "prior_hsct", "relapsed", "tp53_mutation", "poor_cytogenetics", "tb_assessed",
    "marrow_blasts_pct", "mrd_positive", "response", "crs_grade", "neurotox_grade",
    "il6_peak_pg_ml", "cart_peak_copies_per_ug", "efs_months", "efs_event", "os_months", "os_event",
]
#: Every column a file may have, in the order written: an ensemble bundle's stacked training
#: cohort adds which reconstruction each row belongs to (model/bundle_kind.py).
FILE_COLUMNS = COLUMNS + [MEMBER_COLUMN]
#: At most this many unknown columns or malformed lines are listed in a refusal.
MAX_REPORTED_COLUMNS = 20
#: Upper bound on an event time: 30 years of follow-up, far beyond any CAR-T cohort.
MAX_MONTHS = 360.0
#: Size limits of a cohort CSV (docs/cohort-csv.md), checked before the file is parsed, so a
#: huge file is refused in milliseconds instead of taking gigabytes: a center's cohort is
#: hundreds of patients (the source study had 78), a registry's a few thousand.
MAX_COHORT_BYTES = 8 * 1024 * 1024
MAX_COHORT_ROWS = 20_000
MAX_COHORT_COLUMNS = 2 * len(COLUMNS)


def _column_checks() -> dict[str, pa.Column]:
    flag = [pa.Check.isin([0, 1], error="must be 0 or 1")]
    grade = [pa.Check.isin([0, 1, 2, 3, 4, 5], error="must be a whole grade from 0 to 5")]
    columns = {
        "patient_id": pa.Column(str, [
            pa.Check(lambda s: s.str.strip().str.len() > 0, element_wise=False, error="must not be empty"),
            pa.Check(lambda s: s.str.len() <= 64, error="must be at most 64 characters"),
        ], unique=True, report_duplicates="all"),
        "age_years": pa.Column(float, pa.Check.in_range(0, 100, error="must be between 0 and 100 years")),
        "marrow_blasts_pct": pa.Column(float, pa.Check.in_range(0, 100, error="must be between 0 and 100")),
        "il6_peak_pg_ml": pa.Column(float, pa.Check.in_range(0, 1e7, error="must be between 0 and 10,000,000 pg/mL")),
        "cart_peak_copies_per_ug": pa.Column(float, pa.Check.in_range(0, 1e8, error="must be between 0 and 100,000,000 copies/ug")),
        "efs_months": pa.Column(float, pa.Check.in_range(0, MAX_MONTHS, include_min=False, error=f"must be greater than 0 and at most {MAX_MONTHS:g} months")),
        "os_months": pa.Column(float, pa.Check.in_range(0, MAX_MONTHS, include_min=False, error=f"must be greater than 0 and at most {MAX_MONTHS:g} months")),
    }
    columns.update({name: pa.Column(float, flag) for name in FLAG_COLUMNS})
    columns.update({name: pa.Column(float, grade) for name in GRADE_COLUMNS})
    columns[MEMBER_COLUMN] = pa.Column(float, pa.Check.isin(list(range(1000)),
                                                            error="must be a whole number from 0 to 999"))
    columns.update({
        name: pa.Column(str, pa.Check.isin(list(values), error=f"must be one of {', '.join(values)}"))
        for name, values in CHOICE_COLUMNS.items()
    })
    for name, column in columns.items():
        column.required = name in REQUIRED_COLUMNS
        column.nullable = name in NULLABLE_COLUMNS
    return columns


def _has(df: pd.DataFrame, *names: str) -> bool:
    return all(name in df.columns for name in names)


def _consistency_checks() -> list[pa.Check]:
    """Rules between columns; each returns True for a consistent row (or when a column is absent)."""

    def rule(needs, test, message):
        def check(df: pd.DataFrame) -> pd.Series:
            if not _has(df, *needs):
                return pd.Series(True, index=df.index)
            return test(df).fillna(True).astype(bool)

        return pa.Check(check, error=message)

    return [
        rule(["marrow_blasts_pct", "mrd_positive"],
             lambda d: ~((d.marrow_blasts_pct < MRD_THRESHOLD_PCT) & (d.mrd_positive == 0)),
             f"marrow_blasts_pct < {MRD_THRESHOLD_PCT:g} with mrd_positive 0: MRD-negative patients "
             "are outside the population the models describe"),
        rule(["marrow_blasts_pct", "mrd_positive"],
             lambda d: ~((d.marrow_blasts_pct >= MRD_THRESHOLD_PCT) & (d.mrd_positive == 0)),
             f"mrd_positive 0 with marrow_blasts_pct >= {MRD_THRESHOLD_PCT:g}: MRD negativity means "
             f"< {MRD_THRESHOLD_PCT:g} % blasts"),
        rule(["efs_months", "os_months"], lambda d: d.efs_months <= d.os_months + 1e-9,
             "efs_months must not exceed os_months"),
        rule(["os_event", "efs_event"], lambda d: ~((d.os_event == 1) & (d.efs_event == 0)),
             "os_event 1 with efs_event 0: death is an event-free-survival event"),
        rule(["os_event", "efs_event", "efs_months", "os_months"],
             lambda d: ~((d.os_event == 1) & (d.efs_months > d.os_months + 1e-9)),
             "efs_months after death: the EFS event must come at or before os_months"),
        rule(["response", "efs_event"], lambda d: ~((d.response == "nr") & (d.efs_event == 0)),
             "response nr with efs_event 0: no response is an event-free-survival event"),
        rule(["crs_grade", "os_event"], lambda d: ~((d.crs_grade == 5) & (d.os_event == 0)),
             "crs_grade 5 (death) with os_event 0"),
        rule(["neurotox_grade", "os_event"], lambda d: ~((d.neurotox_grade == 5) & (d.os_event == 0)),
             "neurotox_grade 5 (death) with os_event 0"),
    ]


COHORT_SCHEMA = pa.DataFrameSchema(_column_checks(), checks=_consistency_checks(), strict=False)


@dataclass(frozen=True)
class _Cell:
    line: int
    patient_id: str
    column: str


def _where(df_raw: pd.DataFrame, index: int, column: str | None) -> str:
    pid = df_raw.at[index, "patient_id"] if "patient_id" in df_raw.columns else ""
    who = f"line {index + 2}" + (f" (patient_id {pid})" if isinstance(pid, str) and pid.strip() else "")
    return f"{who}, {column}" if column else who


def _parse(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Turn the text cells into typed columns, reporting every cell that does not parse."""
    problems: list[str] = []
    df = pd.DataFrame(index=raw.index)
    for column in raw.columns:
        text = raw[column].astype("string").str.strip()
        blank = text.isna() | (text == "")
        if column in NUMBER_COLUMNS + FLAG_COLUMNS + GRADE_COLUMNS + INTEGER_COLUMNS:
            values = pd.to_numeric(text.where(~blank), errors="coerce").astype(float)
            bad = ~blank & (values.isna() | ~np.isfinite(values))
            for i in raw.index[bad]:
                hint = " (use a dot as the decimal separator)" if "," in str(text[i]) else ""
                problems.append(f"{_where(raw, i, column)}: must be a number{hint} (got {str(text[i])[:40]!r})")
            values[bad] = np.nan
            df[column] = values
        else:
            df[column] = text.where(~blank, None).astype(object)
        if column not in NULLABLE_COLUMNS:
            for i in raw.index[blank]:
                problems.append(f"{_where(raw, i, column)}: is empty")
    return df, problems


def _describe_failures(raw: pd.DataFrame, error: pa.errors.SchemaErrors) -> list[str]:
    problems = []
    cases = error.failure_cases
    for case in cases.itertuples(index=False):
        check = str(case.check)
        if check == "not_nullable":
            continue  # already reported by _parse as an empty cell
        if check.startswith("column_in_dataframe"):
            problems.append(f"missing required column {case.failure_case!r}")
            continue
        if check == "field_uniqueness" or check.startswith("field_uniqueness"):
            problems.append(f"{_where(raw, int(case.index), 'patient_id')}: duplicate patient_id {case.failure_case!r}")
            continue
        if pd.isna(case.index):
            problems.append(f"{case.column}: {check}")
            continue
        if case.schema_context == "DataFrameSchema":  # a rule between columns: name the row once
            problems.append(f"{_where(raw, int(case.index), None)}: {check}")
            continue
        column = case.column if isinstance(case.column, str) and case.column in raw.columns else None
        got = f" (got {case.failure_case!r})" if column else ""
        problems.append(f"{_where(raw, int(case.index), column)}: {check}{got}")
    return sorted(set(problems), key=problems.index)


def validate_cohort(raw: pd.DataFrame, source: str = "cohort") -> pd.DataFrame:
    """Parse and validate a cohort given as a frame of text cells.

    Parameters
    ----------
    raw : pandas.DataFrame
        One row a patient, every cell a string (as read with ``dtype=str``).
    source : str
        Name used in messages (usually the file path).

    Returns
    -------
    pandas.DataFrame
        Typed cohort: flags and grades as int, numbers as float, choices as str.

    Raises
    ------
    CohortError
        Listing every offending line and column.
    """
    if raw.empty:
        raise CohortError(source, ["has no patient rows"])
    problems = _header_problems(list(raw.columns))
    if problems:
        raise CohortError(source, problems)
    df, problems = _parse(raw.reset_index(drop=True))
    try:
        COHORT_SCHEMA.validate(df, lazy=True)
    except pa.errors.SchemaErrors as error:
        problems += _describe_failures(raw.reset_index(drop=True), error)
    if problems:
        raise CohortError(source, problems)
    for column in FLAG_COLUMNS + GRADE_COLUMNS + INTEGER_COLUMNS:
        if column in df.columns:
            df[column] = df[column].astype(int)
    ordered = [c for c in FILE_COLUMNS if c in df.columns]
    return df[ordered]


def _header_problems(header: list[str]) -> list[str]:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in dict.fromkeys(header) if c not in FILE_COLUMNS]
    repeated = [c for c, count in Counter(header).items() if count > 1]
    problems = [f"missing required column {c!r}" for c in missing]
    problems += [f"unknown column {c[:64]!r} (known columns: {', '.join(COLUMNS)})"
                 for c in unknown[:MAX_REPORTED_COLUMNS]]
    if len(unknown) > MAX_REPORTED_COLUMNS:
        problems.append(f"... and {len(unknown) - MAX_REPORTED_COLUMNS} more unknown columns")
    problems += [f"column {c!r} appears more than once" for c in repeated]
    return problems


def parse_cohort_text(content: bytes, source: str) -> pd.DataFrame:
    """Parse the bytes of a cohort CSV strictly, then validate it (:func:`validate_cohort`).

    Strict CSV: a stray quote is an error naming its line, not a cell that swallows the rows
    after it; a row whose number of cells differs from the header's is one message naming the
    line (not one message a shifted cell).

    Raises
    ------
    CohortError
    """
    if len(content) > MAX_COHORT_BYTES:
        raise CohortError(source, [_too_large(len(content))])
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CohortError(source, ["is not UTF-8 text"]) from None
    header_cells = text.partition("\n")[0].count(",") + 1  # before csv builds any list
    if header_cells > MAX_COHORT_COLUMNS:
        raise CohortError(source, [f"has {header_cells:,} columns in its header; the limit is "
                                   f"{MAX_COHORT_COLUMNS} (a cohort has at most "
                                   f"{len(COLUMNS)}: docs/cohort-csv.md)"])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    last_line = 0
    try:
        for cells in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if len(cells) > MAX_COHORT_COLUMNS:
                raise CohortError(source, [f"line {first_line} has {len(cells):,} cells; the "
                                           f"limit is {MAX_COHORT_COLUMNS} columns"])
            if cells and any(cell.strip() for cell in cells):
                records.append((first_line, cells))
                if len(records) > MAX_COHORT_ROWS + 1:
                    raise CohortError(source, [f"has more than {MAX_COHORT_ROWS:,} patient "
                                               f"rows (the limit; docs/cohort-csv.md)"])
    except csv.Error as error:
        raise CohortError(source, [f"is not a readable CSV file (line {reader.line_num}: "
                                   f"{error}; a stray '\"'?)"]) from None
    if not records:
        raise CohortError(source, ["is not a readable CSV file (it is empty)"])
    header = [name.strip() for name in records[0][1]]
    width = len(header)
    wrong = [(line, len(cells)) for line, cells in records[1:] if len(cells) != width]
    if wrong:
        problems = _header_problems(header) or [
            f"line {line} has {count} cells but the header has {width}"
            + (" (an extra comma?)" if count > width else " (a missing comma?)")
            for line, count in wrong[:MAX_REPORTED_COLUMNS]]
        if len(wrong) > MAX_REPORTED_COLUMNS and len(problems) == MAX_REPORTED_COLUMNS:
            problems.append(f"... and {len(wrong) - MAX_REPORTED_COLUMNS} more such lines")
        raise CohortError(source, problems)
    raw = pd.DataFrame([cells for _, cells in records[1:]], columns=header, dtype=str)
    return validate_cohort(raw, source=source)


def _too_large(size: int) -> str:
    return (f"is {size / 1024 / 1024:.1f} MiB; the limit is "
            f"{MAX_COHORT_BYTES // 1024 // 1024} MiB (docs/cohort-csv.md)")


def read_cohort(path: str | Path) -> pd.DataFrame:
    """Read and validate a cohort CSV file (UTF-8, comma separated, header row), refusing one
    over :data:`MAX_COHORT_BYTES` before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_file() and size > MAX_COHORT_BYTES:
            raise CohortError(str(path), [_too_large(size)])
        content = path.read_bytes()
    except FileNotFoundError:
        raise CohortError(str(path), ["file not found"]) from None
    except (IsADirectoryError, PermissionError) as error:
        raise CohortError(str(path), [f"cannot be read ({error.strerror})"]) from None
    return parse_cohort_text(content, str(path))


def available_models(df: pd.DataFrame) -> dict[str, str | None]:
    """For each model, None when the cohort has its outcome columns, else why it is unavailable."""
    return {
        outcome.name: None if _has(df, *outcome.cohort_columns)
        else ("the cohort has no "
              f"{' / '.join(c for c in outcome.cohort_columns if c not in df.columns)} column")
        for outcome in OUTCOMES
    }


def write_cohort(df: pd.DataFrame, path: str | Path) -> None:
    """Write a cohort CSV with the canonical column order and number formatting (atomic)."""
    with atomic_path(path) as temporary:
        df[[c for c in FILE_COLUMNS if c in df.columns]].to_csv(temporary, index=False,
                                                           lineterminator="\n")
