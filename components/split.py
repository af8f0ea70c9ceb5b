"""Stratified, seeded hold-out that keeps identical and near-identical images on one side.

Consumes a dataset artifact; produces a split artifact (components/artifacts/split.py): the id lists
of each side and a summary with per-class counts per side and the checks behind them.

- The unit of splitting is a near-duplicate group (core/duplicates.py: exact duplicates and
  re-encoded or resized copies; a unique image is a group of one), so no copy of a validation image
  sits in training. A group's class is its most common class (ties: the first in CLASS_NAMES).
- Cross-class duplicates, the same pixels under two labels, contradict themselves: by default
  (`cross_class_duplicates="exclude"`) they are left out of every side and listed, with their labels,
  in the summary; "keep" splits them like any group.
- Each side's size per class is a stratified allocation in two stages, as scikit-learn's
  train_test_split makes it: first ceil(n × (val + test)) images are held out, then
  ceil(held out × test / (val + test)) of those go to test, each stage shared among the classes by
  largest remainder (ties to the earlier class in CLASS_NAMES). With the study's 80/10/10 that gives
  its published test supports exactly (362 / 602 / 1019 / 134 of 21,165).
- Within each class the groups are shuffled with the seed and dealt to test until it holds its
  allocation, then to validation likewise, then the rest to training (a group of k images can
  overshoot an allocation by k - 1).
"""

import math
from pathlib import Path

import numpy as np

from components.artifacts.dataset import open_dataset
from components.artifacts.split import KIND as SPLIT_KIND
from components.artifacts.split import SIDES, SplitSummary, split_fingerprint, write_split
from components.core import study
from components.core.checks import check_fractions, check_seed
from components.core.classes import CLASS_NAMES, class_index
from components.core.errors import CxrError
from components.core.progress import log

CROSS_CLASS_POLICIES = ("exclude", "keep")


@SPLIT_KIND.cleans_up
def split(
    dataset_dir: Path,
    out_dir: Path,
    *,
    val_fraction: float = study.VAL_FRACTION,
    test_fraction: float = study.TEST_FRACTION,
    seed: int = study.SPLIT_SEED,
    cross_class_duplicates: str = "exclude",
) -> SplitSummary:
    """Splits an ingested dataset into train / val / test id lists.

    Args:
        dataset_dir: an ingested dataset folder (`cxr ingest --out`).
        out_dir: the split folder to write (replaced on rerun).
        val_fraction: share of each class for validation (0 < f < 1).
        test_fraction: share of each class for the test side (0 ≤ f < 1); 0 means no test side.
        seed: shuffling seed; the same seed and dataset always give the same split.
        cross_class_duplicates: "exclude" (default) or "keep" identical images that carry two labels.

    Returns:
        The summary written to out_dir/summary.json.
    """
    check_fractions(val_fraction, test_fraction)
    seed = check_seed(seed)
    if cross_class_duplicates not in CROSS_CLASS_POLICIES:
        raise CxrError(f"--cross-class-duplicates {cross_class_duplicates!r}: choose exclude or keep")
    out_dir = SPLIT_KIND.prepare_output(out_dir, inputs=[("--dataset", dataset_dir)])
    dataset = open_dataset(dataset_dir)
    index = dataset.index
    names = index["class_name"].to_numpy()
    exact = index["duplicate_group"].to_numpy()
    excluded_rows = (
        _cross_class_rows(exact, names) if cross_class_duplicates == "exclude" else np.array([], int)
    )
    usable = np.setdiff1d(np.arange(len(index)), excluded_rows)
    groups = _groups(index["near_duplicate_group"].to_numpy(), names, usable)
    counts = {c: int((names[usable] == c).sum()) for c in CLASS_NAMES}
    targets = side_allocation(counts, val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    side_of_row = np.full(len(index), "excluded", dtype=object)
    for class_name in CLASS_NAMES:
        class_groups = [g for g in groups if g[0] == class_name]
        filled = {"test": 0, "val": 0}
        for i in rng.permutation(len(class_groups)):
            rows = class_groups[i][1]
            side = next((s for s in ("test", "val") if filled[s] < targets[s][class_name]), "train")
            if side != "train":
                filled[side] += len(rows)
            side_of_row[rows] = side

    ids = index["id"].to_numpy()
    sides = {side: sorted(ids[side_of_row == side]) for side in SIDES}
    per_class = {
        side: {c: int((names[side_of_row == side] == c).sum()) for c in CLASS_NAMES} for side in SIDES
    }
    scored = "test" if test_fraction else "val"
    for name in CLASS_NAMES:
        have = counts[name]
        if not have:
            raise CxrError(
                f"{dataset_dir}: class {name} has no images; the study compares all four classes "
                f"({', '.join(CLASS_NAMES)}): ingest a source with {name}/images/"
            )
        if not (per_class["train"][name] and per_class[scored][name]):
            raise CxrError(
                f"{dataset_dir}: class {name} has {have} image{'s' * (have != 1)}: too few for both "
                f"the train and the {scored} side; ingest more images of it or leave the class out"
            )
    if not sides["train"] or not sides["val"]:
        raise CxrError(
            f"{dataset_dir}: too few images ({len(usable)}) for a train and a validation side; "
            "ingest more images or change --val-fraction"
        )
    summary: SplitSummary = {
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
        "dataset_fingerprint": dataset.fingerprint,
        "split_fingerprint": split_fingerprint(sides),
        "counts": {side: len(sides[side]) for side in SIDES},
        "per_class": per_class,
        "duplicate_groups_kept_together": sum(1 for _, rows in groups if len(rows) > 1),
        "groups_across_sides": {
            "exact": _crossing(exact, side_of_row),
            "near": _crossing(index["near_duplicate_group"].to_numpy(), side_of_row),
        },
        "cross_class_duplicates": cross_class_duplicates,
        "excluded": [
            {"id": ids[r], "class_name": names[r], "duplicate_group": int(exact[r])} for r in excluded_rows
        ],
    }
    write_split(out_dir, sides, summary)
    for side in SIDES:
        log(
            f"split: {side:5s} {summary['counts'][side]:6d}  "
            + "  ".join(f"{c}={n}" for c, n in per_class[side].items())
        )
    if len(excluded_rows):
        log(
            f"split: {len(excluded_rows)} images left out: identical pixels under two labels "
            "(listed in summary.json)"
        )
    return summary


def side_allocation(
    counts: dict[str, int], val_fraction: float, test_fraction: float
) -> dict[str, dict[str, int]]:
    """Images per class on the test and validation sides (see the module docstring)."""
    held_out = _largest_remainder(counts, _ceil(sum(counts.values()) * (val_fraction + test_fraction)))
    share = test_fraction / (val_fraction + test_fraction)
    test = (
        _largest_remainder(held_out, _ceil(sum(held_out.values()) * share))
        if test_fraction
        else dict.fromkeys(counts, 0)
    )
    return {"test": test, "val": {c: held_out[c] - test[c] for c in counts}}


def _ceil(value: float) -> int:
    return math.ceil(round(value, 9))  # 0.2 × 21165 is 4233.000…1 in floating point


def _largest_remainder(counts: dict[str, int], total: int) -> dict[str, int]:
    population = sum(counts.values())
    if not population:
        return dict.fromkeys(counts, 0)
    exact = {c: n * total / population for c, n in counts.items()}
    out = {c: math.floor(round(v, 9)) for c, v in exact.items()}
    by_remainder = sorted(counts, key=lambda c: (-(exact[c] - out[c]), class_index(c)))
    for c in by_remainder[: total - sum(out.values())]:
        out[c] += 1
    return out


def _cross_class_rows(exact: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Rows of exact-duplicate groups whose images carry more than one class."""
    rows = [np.flatnonzero(exact == g) for g in np.unique(exact[exact >= 0])]
    return np.array(sorted(r for members in rows if len(set(names[members])) > 1 for r in members), dtype=int)


def _groups(
    group_of_row: np.ndarray, class_names: np.ndarray, usable: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    """(class, rows) per group among the usable rows, unique images as groups of one, in row order."""
    groups: list[tuple[str, np.ndarray]] = []
    members: dict[int, list[int]] = {}
    for row in usable:
        group = group_of_row[row]
        if group < 0:
            groups.append((class_names[row], np.array([row])))
        else:
            members.setdefault(int(group), []).append(row)
    for rows in members.values():
        names = list(class_names[rows])
        majority = max(CLASS_NAMES, key=lambda c: (names.count(c), -class_index(c)))
        groups.append((majority, np.array(rows)))
    return groups


def _crossing(group_of_row: np.ndarray, side_of_row: np.ndarray) -> int:
    """How many groups have images on two sides (excluded images not counted): 0 by construction."""
    sides: dict[int, set] = {}
    for group, side in zip(group_of_row, side_of_row, strict=True):
        if group >= 0 and side != "excluded":
            sides.setdefault(int(group), set()).add(side)
    return sum(1 for s in sides.values() if len(s) > 1)
