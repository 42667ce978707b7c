"""What a bundle rests on, named once: a single cohort, an ensemble of K reconstructions, an
update of either (a parent plus a center cohort), or an update of an update.

Every consumer (model card, result page, API ``model`` block, CLI, FHIR note, CDS card, report,
validation page, numbers at risk, ``update``) asks :func:`bundle_basis` for the sizes and labels it
shows, and :func:`member_times` / :func:`split_members` for the training cohort, so that the
stacked ``training_cohort.csv`` of an ensemble (K reconstructions one after the other, told apart
by the ``reconstruction`` column) is never read as one cohort.

The summary rule across reconstructions, everywhere: a count (patients at risk, events, patients
in a group) is the mean of the K reconstructions' counts, rounded, with its range; a curve or a
band is the pointwise mean of the K reconstructions' curves or band limits.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from model.errors import BundleError
from model.outcomes import SURVIVAL_COLUMNS
from model.provenance import PROVENANCE_RECONSTRUCTED

#: The column of an ensemble's stacked training cohort naming each row's reconstruction (0..K-1).
MEMBER_COLUMN = "reconstruction"
#: Longest chain of updates ``cart-risk update`` builds on (the parent's depth + 1 at most this).
MAX_UPDATE_DEPTH = 25

SINGLE = "single cohort"
ENSEMBLE = "ensemble"
UPDATED = "updated"
UPDATE_OF_UPDATE = "update of an update"


@dataclass(frozen=True)
class Basis:
    """What a bundle's predictions, counts and curves rest on.

    Attributes
    ----------
    root_n : int or None
        Patients of the cohort the first models were trained on (of each reconstruction).
    reconstructions : int
        K, the reconstructions the root models were pooled over (1 for a single cohort).
    root_reconstructed : bool
        Whether the root cohort(s) were reconstructed from published aggregates (synthetic).
    updates : tuple of int
        Patients of each update cohort, oldest first (empty for a bundle trained from scratch).
    bands_observed : bool
        Whether the sCRS band counts are a center's observation (an update cohort's or a center
        bundle's), not a reconstruction's.
    """

    root_n: int | None
    reconstructions: int
    root_reconstructed: bool
    updates: tuple[int, ...] = ()
    bands_observed: bool = False

    @property
    def kind(self) -> str:
        """:data:`SINGLE`, :data:`ENSEMBLE`, :data:`UPDATED` or :data:`UPDATE_OF_UPDATE`."""
        if len(self.updates) > 1:
            return UPDATE_OF_UPDATE
        if self.updates:
            return UPDATED
        return ENSEMBLE if self.reconstructions > 1 else SINGLE

    @property
    def depth(self) -> int:
        """Updates in the chain (0 for a bundle trained from scratch)."""
        return len(self.updates)

    @property
    def stacked(self) -> int:
        """Cohorts stacked in the bundle's ``training_cohort.csv``: K for an ensemble, else 1
        (an updated bundle holds its update cohort)."""
        return 1 if self.updates else self.reconstructions

    @property
    def cohort_n(self) -> int | None:
        """Patients of one cohort in ``training_cohort.csv``: the numbers at risk count out of it."""
        return self.updates[-1] if self.updates else self.root_n

    @property
    def trained_on(self) -> str:
        """The "trained on" sentence, e.g. "78 patients in each of 20 reconstructed cohorts,
        updated on 160 center patients"."""
        if self.reconstructions > 1:
            what = "reconstructed cohorts" if self.root_reconstructed else "cohorts"
            text = f"{self.root_n} patients in each of {self.reconstructions} {what}"
        else:
            text = f"{self.root_n} patients"
        for step, n in enumerate(self.updates):
            text += f", updated on {n} center patients" if step == 0 else f", then on {n}"
        return text

    @property
    def counts_label(self) -> str:
        """What the training cohort's counts and curves are (numbers at risk, Kaplan-Meier)."""
        if self.updates:
            return f"observed in the update cohort of {self.cohort_n} center patients"
        if self.reconstructions > 1:
            return f"mean of {self.reconstructions} reconstructions"
        if self.root_reconstructed:
            return "the reconstructed cohort (synthetic)"
        return "observed in the training cohort"

    @property
    def patients_label(self) -> str:
        """Who the counts are: "patients per reconstruction", "center patients", ..."""
        if self.updates:
            return "center patients"
        if self.reconstructions > 1:
            return "patients per reconstruction"
        return "training patients"


def bundle_basis(manifest: Mapping[str, Any]) -> Basis:
    """The :class:`Basis` of a bundle, from its manifest.

    Reads the ``lineage.basis`` block of updated bundles (docs/bundle-format.md) and, for bundles
    updated before it existed, walks the nested ``lineage.parent.lineage`` chain.
    """
    training = _dict(manifest.get("training_data"))
    lineage = _dict(manifest.get("lineage"))
    ensemble = _dict(manifest.get("ensemble"))
    if not lineage:
        members = _int(training.get("members")) or _int(ensemble.get("members")) or 1
        return Basis(_int(training.get("n")), members,
                     manifest.get("provenance") == PROVENANCE_RECONSTRUCTED, (),
                     manifest.get("provenance") != PROVENANCE_RECONSTRUCTED)
    recorded = _dict(lineage.get("basis"))
    if recorded:
        root = _dict(recorded.get("root"))
        return Basis(_int(root.get("n")), _int(root.get("reconstructions")) or 1,
                     root.get("provenance") == PROVENANCE_RECONSTRUCTED,
                     tuple(_int(n) or 0 for n in recorded.get("updates") or ()),
                     bool(recorded.get("bands_observed")))
    updates: list[int] = []
    node, parent = lineage, {}
    while node and len(updates) <= MAX_UPDATE_DEPTH:  # older bundles: the parent's lineage nested
        updates.insert(0, _int(_dict(node.get("update_cohort")).get("n")) or 0)
        parent = _dict(node.get("parent"))
        node = _dict(parent.get("lineage"))
    bands = [row for row in manifest.get("scrs_bands") or [] if isinstance(row, dict)]
    observed = bool(bands) and not any("rate_range" in row for row in bands) and \
        sum(_int(row.get("n")) or 0 for row in bands) == updates[-1]
    return Basis(_int(_dict(parent.get("training_data")).get("n")),
                 _int(ensemble.get("members")) or 1,
                 parent.get("provenance") == PROVENANCE_RECONSTRUCTED, tuple(updates), observed)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    """A count from the manifest; None where it is absent or not a number."""
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- the cohort's times


@dataclass(frozen=True, eq=False)
class CohortTimes:
    """Follow-up times (months) of one outcome in each cohort of a bundle (one a reconstruction).

    A single cohort has one member. Counts are summarized across members by the module's rule:
    the mean count, rounded, with its range.
    """

    members: tuple[np.ndarray, ...]

    @property
    def n(self) -> int:
        """Patients of one cohort (the mean size over the reconstructions, rounded)."""
        return int(round(float(np.mean([m.size for m in self.members]))))

    @property
    def size(self) -> int:
        return self.n

    def at_risk_each(self, months) -> np.ndarray:
        """(members, len(months)) patients still followed just before each of ``months``."""
        months = np.asarray(months, dtype=float)
        return np.array([m.size - np.searchsorted(m, months, side="left") for m in self.members])

    def at_risk(self, months) -> np.ndarray:
        """Patients at risk before each of ``months``: the mean over the members, rounded."""
        return np.rint(self.at_risk_each(months).mean(axis=0)).astype(int)

    def at_risk_range(self, months) -> tuple[np.ndarray, np.ndarray]:
        """The members' smallest and largest numbers at risk before each of ``months``."""
        each = self.at_risk_each(months)
        return each.min(axis=0), each.max(axis=0)


def _member_of(row: Mapping[str, str]) -> str:
    if row.get(MEMBER_COLUMN) not in (None, ""):
        return str(int(float(row[MEMBER_COLUMN])))
    pid = row.get("patient_id") or ""
    if pid[:1] == "M" and "-" in pid:  # ensemble bundles written before the column existed
        return str(int(pid[1:pid.index("-")]))
    return "0"


def member_rows(rows: list[Mapping[str, str]], stacked: int) -> list[list[Mapping[str, str]]]:
    """The rows of a training cohort grouped by reconstruction (one group for a single cohort).

    Raises
    ------
    BundleError
        When the file does not hold ``stacked`` reconstructions.
    """
    if stacked <= 1:
        return [rows]
    try:
        groups: dict[str, list] = {}
        for row in rows:
            groups.setdefault(_member_of(row), []).append(row)
    except ValueError:
        groups = {}
    if len(groups) != stacked:
        raise BundleError("training-data-content", "training_cohort.csv",
                          f"should stack {stacked} reconstructions but its {MEMBER_COLUMN} "
                          f"column (or patient_id prefix) names {len(groups)}; retrain the bundle")
    return [groups[key] for key in sorted(groups, key=int)]


def member_times(content: bytes, stacked: int) -> dict[str, CohortTimes]:
    """Each survival outcome's follow-up times, per reconstruction, from a cohort CSV's bytes.

    An outcome whose columns are absent, or whose cells are not all numbers, is left out.
    """
    try:
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        return {}
    groups = member_rows(rows, stacked)
    times = {}
    for outcome, (column, _) in SURVIVAL_COLUMNS.items():
        try:
            members = tuple(np.sort(np.array([float(row[column]) for row in group]))
                            for group in groups)
        except (KeyError, TypeError, ValueError):
            continue
        if all(m.size and np.all(np.isfinite(m)) for m in members):
            times[outcome] = CohortTimes(members)
    return times


def split_members(cohort, stacked: int) -> list:
    """A validated training cohort (pandas.DataFrame) as one frame per reconstruction, without
    the ``reconstruction`` column.

    Raises
    ------
    BundleError
        When the file does not hold ``stacked`` reconstructions.
    """
    plain = cohort.drop(columns=[MEMBER_COLUMN], errors="ignore")
    if stacked <= 1:
        return [plain]
    marks = (cohort[MEMBER_COLUMN] if MEMBER_COLUMN in cohort.columns
             else [None] * len(cohort))
    rows = [{MEMBER_COLUMN: "" if mark is None or mark != mark else str(mark),
             "patient_id": str(pid)} for mark, pid in zip(marks, cohort["patient_id"])]
    member_rows(rows, stacked)  # refuses a file that does not hold `stacked` reconstructions
    labels = np.array([int(_member_of(row)) for row in rows])
    return [plain[labels == key].reset_index(drop=True) for key in sorted(set(labels.tolist()))]


def refuse_stacked(cohort, source: str):
    """A cohort that is one cohort: a file stacking several reconstructions is refused.

    Returns the cohort without its ``reconstruction`` column (a single value is accepted).

    Raises
    ------
    model.errors.CohortError
    """
    from model.errors import CohortError

    if MEMBER_COLUMN in cohort.columns:
        values = cohort[MEMBER_COLUMN].dropna().unique()
    else:  # ensemble bundles written before the column: every patient_id "M<k>-..."
        prefixes = cohort["patient_id"].astype(str).str.extract(r"^M(\d+)-", expand=False)
        values = prefixes.unique() if prefixes.notna().all() else []
    if len(values) > 1:
        raise CohortError(source, [
            f"stacks {len(values)} reconstructions ({MEMBER_COLUMN} column or M<k>- patient "
            "ids): an ensemble's training_cohort.csv is not one cohort; train on the ensemble "
            "directory with "
            "`cart-risk train --ensemble DIR` instead"])
    return cohort.drop(columns=[MEMBER_COLUMN], errors="ignore")
