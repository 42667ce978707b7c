"""What the reconstruction must reproduce, read from a statistics file instead of fixed constants.

A statistics file has the shape of ``training/data/published_statistics.json`` (the paper's);
:func:`targets_from_statistics` turns one into :class:`Targets`, the numbers the generator
(:mod:`training.paper.reconstruction`, :mod:`training.paper.assumptions`, :mod:`training.paper.survival_search`)
aims at, deriving what the file determines only through a test (the CR counts from the printed
percentages, the severe-CRS counts from Fisher's P and the direction of the difference).
:func:`paper_targets` is the paper's; it equals the constants the generator was written with, so
the packaged cohort and ensemble are unchanged. The end-to-end study
(:mod:`training.simulation.end_to_end`) writes a file like it for each simulated trial.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from training.paper.derivations import severe_crs_counts

#: Table 1 binary variables, by the name the generator gives them: the statistic id prefix.
TABLE1 = ("male", "ph_positive", "prior_therapy_ge_6mo", "prior_chemo_ge_3", "prior_hsct",
          "relapsed", "tb_after_fc", "tp53_mutation", "poor_cytogenetics")
#: Fig. 3's log-rank statements (the burden-assessment time), by statistic id.
FIG3_STATEMENTS = ("os.by_tb_assessed.p", "efs.by_tb_assessed.p", "os.before_fc.logrank.p",
                   "efs.before_fc.logrank.p", "os.after_fc.logrank.p", "efs.after_fc.logrank.p")
#: A4 (ASSUMPTIONS.md): neurotoxicity grades 1-3 in each group; grade 0 is the rest of the group.
NEUROTOX_EVENTS = {"low": (2, 1, 0), "high": (2, 1, 1)}


class TargetError(ValueError):
    """A statistics file the generator cannot take its targets from (the message names the id)."""


@dataclass(frozen=True)
class Targets:
    """Every number the generator aims at; pairs are (low, high) burden group.

    ``logrank`` holds (P, decimals) of OS and EFS (Fig. 2C/D); ``fig3`` holds, for each id of
    :data:`FIG3_STATEMENTS`, ``"greater_than"`` (P > 0.05, the paper's "not significant") or
    ``"at_most"`` (P <= 0.05).
    """

    n: tuple[int, int]
    table1: tuple[tuple[str, tuple[int, int]], ...]
    age: tuple[tuple[float, float, float], tuple[float, float, float]]   # (median, min, max)
    age_p: float
    cr: tuple[int, int]
    mrd_neg_cr_total: int
    severe_crs: tuple[int, int]
    severe_crs_subgroup_p: float
    crs_grade_p: float
    il6_p: float
    cart_p: float
    os_logrank: tuple[float, int]
    efs_logrank: tuple[float, int]
    efs_low_above_high_21mo: bool
    os_low_above_high: bool
    fig3: tuple[tuple[str, str], ...]

    @property
    def groups(self) -> dict[str, int]:
        return {"low": self.n[0], "high": self.n[1]}

    @property
    def nr(self) -> dict[str, int]:
        return {"low": self.n[0] - self.cr[0], "high": self.n[1] - self.cr[1]}

    @property
    def severe(self) -> dict[str, int]:
        return {"low": self.severe_crs[0], "high": self.severe_crs[1]}

    def table1_counts(self) -> dict[str, tuple[int, int]]:
        return dict(self.table1)

    def age_summary(self) -> dict[str, tuple[float, float, float]]:
        return {"low": self.age[0], "high": self.age[1]}

    def neurotox_counts(self) -> dict[str, tuple[int, ...]]:
        """A4 counts of neurotoxicity grades 0..3 by group."""
        return {g: (n - sum(NEUROTOX_EVENTS[g]),) + NEUROTOX_EVENTS[g] for g, n in self.groups.items()}


def _by_id(document: dict) -> dict[str, dict]:
    try:
        return {entry["id"]: entry for entry in document["statistics"]}
    except (KeyError, TypeError):
        raise TargetError("statistics file: no 'statistics' list of entries with an 'id'") from None


def _value(entries: dict, statistic: str):
    try:
        value = entries[statistic]["value"]
    except KeyError:
        raise TargetError(f"statistics file: no {statistic} entry") from None
    if value is None:
        raise TargetError(f"statistics file: {statistic} has no value")
    return value


def _count_for_percent(entries: dict, statistic: str, n: int) -> int:
    """The count k of n whose percentage rounds to the printed one (unique for n < 200)."""
    entry = entries[statistic]
    found = [k for k in range(n + 1) if round(100.0 * k / n, entry["decimals"]) == entry["value"]]
    if len(found) != 1:
        raise TargetError(f"statistics file: {statistic} = {entry['value']} % is not one count of {n}")
    return found[0]


@functools.lru_cache(maxsize=64)
def _fisher_solutions(p: float, n_low: int, n_high: int) -> tuple[tuple[int, int], ...]:
    return tuple(severe_crs_counts(p, n_low, n_high))


def _severe_counts(entries: dict, n: tuple[int, int]) -> tuple[int, int]:
    """Severe-CRS counts from Fisher's P and the direction (the paper: higher in the high group)."""
    entry = entries["severe_crs.p"]
    higher = entry.get("higher_group", "high")
    solutions = [(low, high) for low, high in _fisher_solutions(entry["value"], *n)
                 if (high / n[1] > low / n[0]) == (higher == "high")]
    if not solutions:
        raise TargetError(f"statistics file: no severe-CRS counts give Fisher P = {entry['value']} "
                          f"with the {higher} group more frequent")
    return solutions[0]


def _statement(entries: dict, statistic: str) -> str:
    entry = entries.get(statistic)
    if entry is None or entry.get("comparison") not in ("greater_than", "at_most"):
        raise TargetError(f"statistics file: {statistic} must say P > or <= its threshold")
    return entry["comparison"]


def targets_from_statistics(document: dict) -> Targets:
    """The generator's targets from a statistics file (``published_statistics.json``'s shape).

    Raises
    ------
    TargetError
        An entry the generator needs is missing or admits no count; the message names it.
    """
    e = _by_id(document)
    n = (int(_value(e, "n.low")), int(_value(e, "n.high")))
    table1 = []
    for name in TABLE1:
        table1.append((name, (int(_value(e, f"{name}.low")), int(_value(e, f"{name}.high")))))
    age = tuple(tuple(float(_value(e, f"age.{k}.{g}")) for k in ("median", "min", "max"))
                for g in ("low", "high"))
    return Targets(
        n=n, table1=tuple(table1), age=age, age_p=float(_value(e, "age.p")),
        cr=(_count_for_percent(e, "cr.low.percent", n[0]), _count_for_percent(e, "cr.high.percent", n[1])),
        mrd_neg_cr_total=int(_value(e, "response.mrd_neg_cr")),
        severe_crs=_severe_counts(e, n),
        severe_crs_subgroup_p=float(_value(e, "severe_crs.subgroup.p")),
        crs_grade_p=float(_value(e, "crs_grade.p")),
        il6_p=float(_value(e, "il6_peak.p")), cart_p=float(_value(e, "cart_peak.p")),
        os_logrank=(float(_value(e, "os.logrank.p")), int(e["os.logrank.p"]["decimals"])),
        efs_logrank=(float(_value(e, "efs.logrank.p")), int(e["efs.logrank.p"]["decimals"])),
        efs_low_above_high_21mo=bool(_value(e, "efs.low_above_high_21mo")),
        os_low_above_high=bool(_value(e, "os.low_above_high")),
        fig3=tuple((statistic, _statement(e, statistic)) for statistic in FIG3_STATEMENTS),
    )


@functools.lru_cache(maxsize=1)
def paper_targets() -> Targets:
    """The paper's targets (the packaged ``published_statistics.json``)."""
    from training.paper.analyses import load_published

    return targets_from_statistics(load_published())
