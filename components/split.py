"""Stratified, seeded hold-out that keeps identical images on one side.

Consumes a dataset artifact; produces a split artifact (components/artifacts/split.py): the id lists
of each side and a summary with per-class counts per side.

The unit of splitting is a duplicate group (images with identical pixels, from the ingest index;
a unique image is a group of one), so a copy of a validation image never sits in training. A
group's class is its most common class (ties: the first in CLASS_NAMES). Within each class the
groups are shuffled with the seed and dealt to test until it holds its share of that class's
images, then to validation likewise, then the rest to training (a duplicate group can overshoot a
share by its size minus one).
"""

from pathlib import Path

import numpy as np

from components.artifacts.dataset import open_dataset
from components.artifacts.split import SIDES, SplitSummary, split_fingerprint, write_split
from components.core import study
from components.core.checks import check_fractions
from components.core.classes import CLASS_NAMES, class_index
from components.core.errors import CxrError
from components.core.progress import log


def split(
    dataset_dir: Path,
    out_dir: Path,
    *,
    val_fraction: float = study.VAL_FRACTION,
    test_fraction: float = study.TEST_FRACTION,
    seed: int = study.SPLIT_SEED,
) -> SplitSummary:
    """Splits an ingested dataset into train / val / test id lists.

    Args:
        dataset_dir: an ingested dataset folder (`cxr ingest --out`).
        out_dir: the split folder to write (replaced on rerun).
        val_fraction: share of each class for validation (0 < f < 1).
        test_fraction: share of each class for the test side (0 ≤ f < 1); 0 means no test side.
        seed: shuffling seed; the same seed and dataset always give the same split.

    Returns:
        The summary written to out_dir/summary.json.
    """
    check_fractions(val_fraction, test_fraction)
    dataset = open_dataset(dataset_dir)
    index = dataset.index
    groups = _groups(index["duplicate_group"].to_numpy(), index["class_name"].to_numpy())
    rng = np.random.default_rng(seed)
    side_of_row = np.empty(len(index), dtype=object)
    for class_name in CLASS_NAMES:
        class_groups = [g for g in groups if g[0] == class_name]
        order = rng.permutation(len(class_groups))
        total = sum(len(rows) for _, rows in class_groups)
        targets = {"test": round(total * test_fraction), "val": round(total * val_fraction)}
        filled = {"test": 0, "val": 0}
        for i in order:
            rows = class_groups[i][1]
            side = next((s for s in ("test", "val") if filled[s] < targets[s]), "train")
            if side != "train":
                filled[side] += len(rows)
            side_of_row[rows] = side

    ids = index["id"].to_numpy()
    names = index["class_name"].to_numpy()
    sides = {side: sorted(ids[side_of_row == side]) for side in SIDES}
    per_class = {
        side: {c: int((names[side_of_row == side] == c).sum()) for c in CLASS_NAMES} for side in SIDES
    }
    if not sides["train"] or not sides["val"]:
        raise CxrError(
            f"{dataset_dir}: too few images ({len(index)}) for a train and a validation side; "
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
    }
    write_split(Path(out_dir), sides, summary)
    for side in SIDES:
        log(
            f"split: {side:5s} {summary['counts'][side]:6d}  "
            + "  ".join(f"{c}={n}" for c, n in per_class[side].items())
        )
    return summary


def _groups(duplicate_group: np.ndarray, class_names: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(class, rows) per duplicate group, unique images as groups of one, in row order."""
    groups: list[tuple[str, np.ndarray]] = []
    members: dict[int, list[int]] = {}
    for row, group in enumerate(duplicate_group):
        if group < 0:
            groups.append((class_names[row], np.array([row])))
        else:
            members.setdefault(int(group), []).append(row)
    for rows in members.values():
        names = list(class_names[rows])
        majority = max(CLASS_NAMES, key=lambda c: (names.count(c), -class_index(c)))
        groups.append((majority, np.array(rows)))
    return groups
