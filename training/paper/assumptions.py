"""Every admissible choice of the reconstruction's assumptions, checked and sampled by seed.

The paper publishes aggregates; :mod:`training.paper.reconstruction` must choose what they leave open
(``training/data/ASSUMPTIONS.md``, A1-A10). :class:`Assumptions` holds one choice of each;
:data:`DOCUMENTED` is the choice behind the packaged cohort, and :func:`sample_assumptions` draws
one uniformly from each admissible set for a seed. :func:`check_assumptions` refuses a choice
that cannot reproduce the paper and names the published statistic it would miss.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from training.paper.derivations import subgroup_configurations
from training.paper.targets import Targets, paper_targets

SUBGROUPS = ("a", "b", "c", "d", "e")
LOW_SUBGROUPS, HIGH_SUBGROUPS = ("a", "b"), ("c", "d", "e")
N = {"low": 33, "high": 45}
SEVERE_CRS = {"low": 4, "high": 19}          # derived (training.paper.derivations.severe_crs_counts)
NR = {"low": 2, "high": 11}                  # derived from the CR percentages
MRD_NEG_CR_TOTAL = 29                        # published
CRS_GRADE_P = 0.0080                         # published (Fig. 4A), 4 decimals
#: A3 plausibility: any-grade CRS between these fractions in each burden group (CD19 CAR-T in
#: B-ALL: 70 % in Hay et al., Blood 2017; 77-93 % across the pivotal trials).
ANY_CRS_RANGE = (0.60, 0.95)
#: A3 plausibility: at least this many patients with grade 1 and with grade 2 CRS in each group.
MIN_MILD = 2

#: A10 literature ranges: (low, high) of a uniform draw, and the documented value.
SURVIVAL_RANGES = {
    "weibull_shape": ((0.8, 1.2), 0.9),
    "median_relapse_mrd_neg": ((10.0, 18.0), 14.0),     # months after CR
    "median_relapse_mrd_pos": ((6.0, 12.0), 9.0),
    "high_burden_factor": ((0.70, 1.0), 0.85),          # relapse median multiplier, blasts >= 5 %
    "cured_mrd_neg": ((0.25, 0.45), 0.35),              # never relapse
    "cured_mrd_pos": ((0.10, 0.30), 0.20),
    "nrm_per_year": ((0.02, 0.06), 0.04),               # death without relapse
    "median_death_after_event": ((4.0, 9.0), 6.0),      # months after relapse or no response
}


class ImpossibleAssumption(ValueError):
    """A choice of assumptions that cannot reproduce a published statistic.

    Attributes
    ----------
    statistic : str
        The id in ``published_statistics.json`` (or a derived count) that cannot be met.
    """

    def __init__(self, statistic: str, message: str):
        super().__init__(f"{statistic}: {message}")
        self.statistic = statistic


@dataclass(frozen=True)
class Assumptions:
    """One choice of every assumption the reconstruction makes (tuples are subgroups a..e).

    ``blast_spread`` (A5) is ``"quantiles"`` (evenly spread mid-quantiles of each subgroup's
    range) or ``"random"`` (independent seeded draws in the range); ``survival_search`` is
    ``"rejection"`` (first draw of the seeded sequence that reproduces the log-rank results, the
    packaged cohort's rule) or ``"tuned"`` (draws whose EFS/OS times are then moved, one patient at
    a time, until they do).
    """

    subgroup_sizes: tuple[int, ...]
    subgroup_severe_crs: tuple[int, ...]
    subgroup_nr: tuple[int, ...]
    mrd_neg_cr: tuple[int, int]                       # (low, high)
    crs_grades_low: tuple[int, ...]                   # grades 0..4
    crs_grades_high: tuple[int, ...]
    subgroup_grade4: tuple[int, ...]
    blast_spread: str = "quantiles"
    survival: tuple[tuple[str, float], ...] = tuple((k, v[1]) for k, v in SURVIVAL_RANGES.items())
    survival_search: str = "rejection"
    split_index: int | None = None                    # position among the A1 configurations

    def survival_parameters(self) -> dict[str, float]:
        return dict(self.survival)

    def as_record(self) -> dict:
        """Plain JSON-ready dict (for manifests and the ensemble index)."""
        out = asdict(self)
        out["survival"] = self.survival_parameters()
        return out


DOCUMENTED = Assumptions(
    subgroup_sizes=(13, 20, 13, 14, 18), subgroup_severe_crs=(1, 3, 4, 5, 10),
    subgroup_nr=(0, 2, 2, 3, 6), mrd_neg_cr=(15, 14),
    crs_grades_low=(9, 12, 8, 3, 1), crs_grades_high=(9, 6, 11, 14, 5),
    subgroup_grade4=(0, 1, 0, 1, 4))


def _targets(targets: Targets | None) -> Targets:
    return paper_targets() if targets is None else targets


def subgroup_splits(targets: Targets | None = None) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The A1 admissible set: (sizes, sCRS events) of the configurations, in a fixed order.

    For the paper's targets (the default) there are 66.
    """
    t = _targets(targets)
    return _splits(t.severe_crs, t.severe_crs_subgroup_p, t.n)


@functools.lru_cache(maxsize=8)
def _splits(severe: tuple[int, int], p: float, n: tuple[int, int]):
    return tuple((sizes, events) for sizes, events, _ in
                 subgroup_configurations(*severe, p_printed=p, n_low=n[0], n_high=n[1]))


def _grade_p(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Student t P of CRS grade for every pair of count rows (low x high), closed form."""
    grades = np.arange(5)
    def moments(counts):
        n = counts.sum(1)
        s1 = counts @ grades
        s2 = counts @ grades ** 2
        return n, s1 / n, s2 - s1 ** 2 / n
    n1, m1, ss1 = moments(low)
    n2, m2, ss2 = moments(high)
    pooled = (ss1[:, None] + ss2[None, :]) / (n1[:, None] + n2[None, :] - 2)
    t = (m1[:, None] - m2[None, :]) / np.sqrt(pooled * (1 / n1[:, None] + 1 / n2[None, :]))
    return 2 * stats.t.sf(np.abs(t), n1[:, None] + n2[None, :] - 2)


def _grade_rows(n: int, severe: int) -> np.ndarray:
    rows = [(g0, g1, n - severe - g0 - g1, g3, severe - g3)
            for g0 in range(n - severe + 1) for g1 in range(n - severe - g0 + 1)
            for g3 in range(severe + 1)]
    rows = np.array(rows)
    any_crs = 1 - rows[:, 0] / n
    keep = (any_crs >= ANY_CRS_RANGE[0]) & (any_crs <= ANY_CRS_RANGE[1])
    # Grade 4 no more frequent than grade 3, at least one grade 4, and every mild grade seen.
    keep &= (rows[:, 4] >= 1) & (rows[:, 4] <= rows[:, 3]) & (rows[:, 1] >= MIN_MILD) & (rows[:, 2] >= MIN_MILD)
    return rows[keep]


def crs_grade_splits(targets: Targets | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The A3 admissible set: (low rows, high rows, index pairs) of grade 0..4 counts.

    Every pair has the derived severe counts (for the paper 4 and 19), any-grade CRS inside
    :data:`ANY_CRS_RANGE` in both groups, between one grade 4 and as many grade 4 as grade 3,
    at least :data:`MIN_MILD` of grade 1 and of grade 2 in each group, and a t test P that rounds
    to the published 0.0080 (the targets' CRS-grade P).
    """
    t = _targets(targets)
    return _grade_splits(t.n, t.severe_crs, t.crs_grade_p)


@functools.lru_cache(maxsize=8)
def _grade_splits(n: tuple[int, int], severe: tuple[int, int], target_p: float):
    low = _grade_rows(n[0], severe[0])
    high = _grade_rows(n[1], severe[1])
    p = _grade_p(low.astype(float), high.astype(float))
    pairs = np.argwhere(np.round(p, 4) == target_p)
    return low, high, pairs


def _spread_counts(rng, total: int, sizes: np.ndarray, capacity: np.ndarray | None = None,
                   monotone_rates: bool = False, tries: int = 10_000) -> tuple[int, ...]:
    """``total`` events placed uniformly on the patients of the subgroups (within ``capacity``)."""
    capacity = sizes if capacity is None else capacity
    slots = np.repeat(np.arange(len(sizes)), capacity)
    for _ in range(tries):
        counts = np.bincount(rng.choice(slots, total, replace=False), minlength=len(sizes))
        if not monotone_rates or np.all(np.diff(counts / sizes) >= -1e-12):
            return tuple(int(c) for c in counts)
    raise ImpossibleAssumption("cr.p", f"no placement of {total} non-responders over subgroup "
                               f"sizes {tuple(sizes)} keeps the rates rising with burden")


def sample_assumptions(seed: int, split_index: int | None = None,
                       targets: Targets | None = None) -> Assumptions:
    """One admissible choice of every assumption, drawn uniformly from each set for ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the draw (independent of the cohort generator's own seeded draws).
    split_index : int, optional
        Position of the A1 subgroup split among :func:`subgroup_splits` (0-65); drawn if omitted.
    targets : Targets, optional
        What the reconstruction must reproduce (default: the paper's).
    """
    t = _targets(targets)
    n, nr_counts = t.groups, t.nr
    rng = np.random.default_rng([seed, 9])
    splits = subgroup_splits(t)
    if not splits:
        raise ImpossibleAssumption("severe_crs.subgroup.p", "no subgroup configuration reproduces "
                                   f"the one-way ANOVA P = {t.severe_crs_subgroup_p}")
    if split_index is None:
        split_index = int(rng.integers(len(splits)))
    if not 0 <= split_index < len(splits):
        raise ImpossibleAssumption("severe_crs.subgroup.p", f"split {split_index} is not one of the "
                                   f"{len(splits)} subgroup configurations (0-{len(splits) - 1})")
    sizes, events = splits[split_index]
    sizes_arr, events_arr = np.array(sizes), np.array(events)
    nr = (_spread_counts(rng, nr_counts["low"], sizes_arr[:2], monotone_rates=True)
          + _spread_counts(rng, nr_counts["high"], sizes_arr[2:], monotone_rates=True))
    crs_low = n["low"] - nr_counts["low"]
    mrd_low = int(rng.hypergeometric(crs_low, n["high"] - nr_counts["high"], t.mrd_neg_cr_total))
    low_rows, high_rows, pairs = crs_grade_splits(t)
    if not len(pairs):
        raise ImpossibleAssumption("crs_grade.p", "no plausible CRS grade counts give the t test "
                                   f"P = {t.crs_grade_p}")
    i, j = pairs[int(rng.integers(len(pairs)))]
    grades_low, grades_high = tuple(int(v) for v in low_rows[i]), tuple(int(v) for v in high_rows[j])
    grade4 = (_spread_counts(rng, grades_low[4], sizes_arr[:2], capacity=events_arr[:2])
              + _spread_counts(rng, grades_high[4], sizes_arr[2:], capacity=events_arr[2:]))
    survival = tuple((name, float(rng.uniform(*bounds))) for name, (bounds, _) in SURVIVAL_RANGES.items())
    return Assumptions(subgroup_sizes=tuple(sizes), subgroup_severe_crs=tuple(events),
                       subgroup_nr=nr, mrd_neg_cr=(mrd_low, t.mrd_neg_cr_total - mrd_low),
                       crs_grades_low=grades_low, crs_grades_high=grades_high,
                       subgroup_grade4=grade4, blast_spread="random", survival=survival,
                       survival_search="tuned", split_index=split_index)


def check_assumptions(a: Assumptions, targets: Targets | None = None) -> None:
    """Refuse a choice that cannot reproduce the paper, naming the statistic it misses.

    ``targets`` (default: the paper's) is what must be reproduced; the messages quote the paper's
    figures, whose places the targets take.

    Raises
    ------
    ImpossibleAssumption
    """
    t = _targets(targets)
    N, SEVERE_CRS, NR, MRD_NEG_CR_TOTAL = t.groups, t.severe, t.nr, t.mrd_neg_cr_total  # noqa: N806
    sizes, events, nr = (np.array(v) for v in (a.subgroup_sizes, a.subgroup_severe_crs, a.subgroup_nr))
    grade4 = np.array(a.subgroup_grade4)
    for name, values in (("subgroup_sizes", sizes), ("subgroup_severe_crs", events),
                         ("subgroup_nr", nr), ("subgroup_grade4", grade4)):
        if values.shape != (5,) or np.any(values < 0):
            raise ImpossibleAssumption("n.low", f"{name} needs 5 non-negative counts (a-e), got {tuple(values)}")
    if sizes[:2].sum() != N["low"] or sizes[2:].sum() != N["high"]:
        raise ImpossibleAssumption("n.low" if sizes[:2].sum() != N["low"] else "n.high",
                                   f"subgroup sizes {tuple(sizes)} do not add up to 33 (a+b) and 45 (c+d+e)")
    if (tuple(sizes), tuple(events)) not in subgroup_splits(t):
        p = _anova_p(sizes, events)
        raise ImpossibleAssumption(
            "severe_crs.subgroup.p" if events[:2].sum() == SEVERE_CRS["low"] and events[2:].sum() == SEVERE_CRS["high"]
            else "severe_crs.p",
            f"sizes {tuple(sizes)} with sCRS {tuple(events)} give one-way ANOVA P = {p:.4f} or sCRS "
            "counts other than 4/33 and 19/45, or rates that fall with burden; published P = 0.0224 "
            "(Fig. 4C) with 4/33 and 19/45 (Fig. 4B)")
    if np.any(events > sizes) or np.any(nr > sizes):
        raise ImpossibleAssumption("cr.p", "a subgroup has more events than patients")
    if nr[:2].sum() != NR["low"] or nr[2:].sum() != NR["high"]:
        raise ImpossibleAssumption("cr.p", f"non-responders {tuple(nr)} are not 2 (a+b) and 11 (c+d+e): "
                                   "CR 93.94 % and 75.56 % (Abstract)")
    if sum(a.mrd_neg_cr) != MRD_NEG_CR_TOTAL or a.mrd_neg_cr[0] > N["low"] - NR["low"] \
            or a.mrd_neg_cr[1] > N["high"] - NR["high"] or min(a.mrd_neg_cr) < 0:
        raise ImpossibleAssumption("response.mrd_neg_cr", f"MRD-negative CR {a.mrd_neg_cr} must add "
                                   "up to 29 within the 31 and 34 CRs")
    for group, grades in (("low", a.crs_grades_low), ("high", a.crs_grades_high)):
        if len(grades) != 5 or sum(grades) != N[group] or grades[3] + grades[4] != SEVERE_CRS[group]:
            raise ImpossibleAssumption("severe_crs.p", f"{group}-burden CRS grades {grades} must count "
                                       f"{N[group]} patients with {SEVERE_CRS[group]} of grade 3-4")
    p = float(_grade_p(np.array([a.crs_grades_low], float), np.array([a.crs_grades_high], float))[0, 0])
    if round(p, 4) != t.crs_grade_p:
        raise ImpossibleAssumption("crs_grade.p", f"CRS grades {a.crs_grades_low} / {a.crs_grades_high} "
                                   f"give t test P = {p:.4f}; published 0.0080 (Fig. 4A)")
    if np.any(grade4 > events) or grade4[:2].sum() != a.crs_grades_low[4] \
            or grade4[2:].sum() != a.crs_grades_high[4]:
        raise ImpossibleAssumption("crs_grade.p", f"grade-4 counts {tuple(grade4)} must fit inside the "
                                   "subgroups' sCRS events and add up to the groups' grade-4 counts")
    if a.blast_spread not in ("quantiles", "random") or a.survival_search not in ("rejection", "tuned"):
        raise ImpossibleAssumption("n.low", f"unknown blast spread {a.blast_spread!r} or survival "
                                   f"search {a.survival_search!r}")
    params = a.survival_parameters()
    for name, ((low, high), _) in SURVIVAL_RANGES.items():
        if name not in params or not low - 1e-12 <= params[name] <= high + 1e-12:
            raise ImpossibleAssumption("efs.logrank.p", f"survival parameter {name} = {params.get(name)} "
                                       f"is outside its literature range {low}-{high} (ASSUMPTIONS.md A10)")


def _anova_p(sizes: np.ndarray, events: np.ndarray) -> float:
    rates = events / sizes
    overall = events.sum() / sizes.sum()
    between = (sizes * (rates - overall) ** 2).sum()
    within = (events * (1 - rates)).sum()
    if within == 0:
        return 0.0
    return float(stats.f.sf((between / 4) / (within / (sizes.sum() - 5)), 4, sizes.sum() - 5))
