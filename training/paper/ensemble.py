"""The reconstruction ensemble: K cohorts drawn across the assumptions the paper leaves open.

Member k has seed ``base + k`` and the A1 subgroup split ``order[k]`` of a fixed seeded
permutation of the 66 admissible splits (stratified: K <= 66 members never share a split); every
other assumption is drawn from its admissible set by :func:`training.paper.assumptions.sample_assumptions`.
Each member must reproduce every published statistic (:func:`training.paper.analyses.reproduce`).

The packaged ensemble (``training/data/ensemble/``) is rewritten byte for byte by::

    python -m training.paper.ensemble --members 20 --out training/data/ensemble

Why K = 20 and this scheme: ``docs/ensemble.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from model.atomic import write_atomic
from model.cohort import validate_cohort, write_cohort
from model.errors import EXIT_USAGE
from training.paper.assumptions import Assumptions, ImpossibleAssumption, sample_assumptions, subgroup_splits
from training.paper.targets import Targets

ENSEMBLE_SIZE = 20
ENSEMBLE_SEED = 20210630
INDEX_FILE = "ensemble.json"


class EnsembleError(ValueError):
    """An ensemble directory or index that cannot be used (the message names the file)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Member:
    """One reconstruction of the ensemble."""

    index: int
    seed: int
    assumptions: Assumptions
    cohort: pd.DataFrame


def default_ensemble_dir() -> Path:
    """The packaged ensemble (synthetic reconstructions, not patient data)."""
    return Path(str(resources.files("training").joinpath("data/ensemble")))


def member_plan(members: int, base_seed: int = ENSEMBLE_SEED,
                targets: Targets | None = None) -> list[tuple[int, int]]:
    """(seed, A1 split index) of each member: distinct splits from a seeded permutation.

    ``targets`` (default: the paper's, 66 splits) sets the admissible splits permuted.
    """
    splits = len(subgroup_splits(targets))
    if not splits:
        raise ImpossibleAssumption("severe_crs.subgroup.p", "no subgroup configuration reproduces it")
    order = np.random.default_rng([base_seed, 66]).permutation(splits)
    return [(base_seed + k, int(order[k % len(order)])) for k in range(members)]


def unmatched(cohort: pd.DataFrame, statistics: dict | None = None) -> list[str]:
    """Ids of the published statistics a cohort does not reproduce (empty when all 61 match).

    ``statistics`` is the statistics file to compare with (default: the paper's).
    """
    from training.paper.analyses import reproduce

    rows = reproduce(validate_cohort(cohort.astype(str), source="reconstruction"), statistics)
    return [row.id for row in rows if row.match is not True]


def build_member(index: int, seed: int, split_index: int, statistics: dict | None = None,
                 tuned_draws: int | None = None) -> Member:
    """Reconstruct and verify one member; raises ImpossibleAssumption naming a missed statistic.

    ``statistics`` is the statistics file to reproduce (default: the paper's); ``tuned_draws``
    caps the survival search (default: the generator's).
    """
    from training.paper.reconstruction import TUNED_DRAW_LIMIT, reconstruct
    from training.paper.targets import targets_from_statistics

    targets = None if statistics is None else targets_from_statistics(statistics)
    assumptions = sample_assumptions(seed, split_index, targets)
    cohort = reconstruct(seed, assumptions, targets, tuned_draws or TUNED_DRAW_LIMIT)
    missed = unmatched(cohort, statistics)
    if missed:
        raise ImpossibleAssumption(missed[0], f"member {index} (seed {seed}, split {split_index}) "
                                   f"misses {len(missed)} published statistic(s): {', '.join(missed)}")
    return Member(index, seed, assumptions, cohort)


def generate(members: int = ENSEMBLE_SIZE, base_seed: int = ENSEMBLE_SEED, jobs: int = 1) -> list[Member]:
    """Build ``members`` verified reconstructions (identical for any ``jobs``)."""
    from joblib import Parallel, delayed

    plan = member_plan(members, base_seed)
    return Parallel(n_jobs=jobs)(delayed(build_member)(k, seed, split) for k, (seed, split) in enumerate(plan))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_ensemble(out_dir: str | Path, members: list[Member], base_seed: int) -> dict:
    """Write each member's CSV and the index ``ensemble.json``; returns the index."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for member in members:
        name = f"member_{member.index:02d}.csv"
        write_cohort(member.cohort, out / name)
        records.append({"file": name, "seed": member.seed, "sha256": _sha256(out / name),
                        "reproduces": "every published statistic (training.paper.analyses.reproduce)",
                        "assumptions": member.assumptions.as_record()})
    index = {"kind": "reconstruction-ensemble", "members": len(members), "base_seed": base_seed,
             "command": f"python -m training.paper.ensemble --members {len(members)} --seed {base_seed}",
             "note": "Synthetic cohorts reconstructed from the published aggregates of Li et al.; "
                     "not patient data.",
             "cohorts": records}
    write_atomic(out / INDEX_FILE, json.dumps(index, indent=2) + "\n")
    return index


def read_index(ensemble_dir: str | Path) -> tuple[dict, list[Path]]:
    """The index and member CSV paths of an ensemble directory, every hash checked.

    Raises
    ------
    EnsembleError
        One line naming the index or the member: an unreadable or malformed index, a member path
        outside the ensemble folder (``../``, absolute, or a link leading out), a missing file,
        a hash that differs.
    """
    directory = Path(ensemble_dir)
    index_path = directory / INDEX_FILE
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        records = index["cohorts"]
    except (OSError, ValueError, KeyError, TypeError) as problem:
        raise EnsembleError(f"{index_path}: not a readable ensemble index ({problem})") from None
    if not isinstance(records, list):
        raise EnsembleError(f"{index_path}: 'cohorts' must be a list of member records")
    if not records:
        raise EnsembleError(f"{index_path}: lists no member cohorts")
    root = directory.resolve()
    paths = []
    for number, record in enumerate(records):
        name = record.get("file") if isinstance(record, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise EnsembleError(f"{index_path}: member {number} has no 'file' name")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise EnsembleError(f"{index_path}: member {number} ({name!r}): member files must lie "
                                "inside the ensemble folder (no absolute path, no '..')")
        path = directory / name
        if not path.resolve().is_relative_to(root):
            raise EnsembleError(f"{index_path}: member {number} ({name!r}) leads outside the "
                                "ensemble folder")
        if not path.is_file():
            raise EnsembleError(f"{index_path}: member file {name!r} is missing")
        if _sha256(path) != record.get("sha256"):
            raise EnsembleError(f"{path}: its SHA-256 differs from the one in {INDEX_FILE}")
        paths.append(path)
    return index, paths


def check_members(cohorts: list[pd.DataFrame], paths: list[Path]) -> None:
    """Refuse reconstructions that cannot be pooled: another number of patients or other columns
    than member 0 (one line naming the member).

    Raises
    ------
    EnsembleError
    """
    first, columns = len(cohorts[0]), list(cohorts[0].columns)
    for number, (cohort, path) in enumerate(zip(cohorts, paths)):
        if len(cohort) != first:
            raise EnsembleError(f"{path}: member {number} has {len(cohort)} patients but member 0 "
                                f"has {first}; every reconstruction must have the same size")
        if list(cohort.columns) != columns:
            missing = [c for c in columns if c not in cohort.columns]
            extra = [c for c in cohort.columns if c not in columns]
            raise EnsembleError(f"{path}: member {number} has other columns than member 0 "
                                f"(missing: {', '.join(missing) or 'none'}; extra: "
                                f"{', '.join(extra) or 'none'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=ENSEMBLE_SIZE)
    parser.add_argument("--seed", type=int, default=ENSEMBLE_SEED)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None,
                        help="directory (default: the packaged training/data/ensemble)")
    args = parser.parse_args(argv)
    if args.members < 1:
        print("ensemble: --members must be >= 1", file=sys.stderr)
        return 2
    try:
        members = generate(args.members, args.seed, args.jobs)
    except ImpossibleAssumption as problem:
        print(f"ensemble: {problem}", file=sys.stderr)
        return 1
    out = args.out or default_ensemble_dir()
    write_ensemble(out, members, args.seed)
    print(f"wrote {len(members)} reconstructions (each reproducing every published statistic) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
