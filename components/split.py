"""Stratified, seeded hold-out that keeps identical images on one side.

Output folder D: D/train.txt, D/val.txt, D/test.txt (image ids, one per line, sorted) and
D/summary.json (fractions, seed, per-class counts per side).

The unit of splitting is a duplicate group (images with identical pixels, from the ingest index;
a unique image is a group of one), so a copy of a validation image never sits in training. A
group's class is its most common class (ties: the first in CLASS_NAMES). Within each class the
groups are shuffled with the seed and dealt to test until it holds its share of that class's
images, then to validation likewise, then the rest to training (a duplicate group can overshoot a
share by its size minus one).
"""


from pathlib import Path

import numpy as np
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.artifacts import component
from components.core.classes import CLASS_NAMES
from components.core.dataset import open_dataset, write_json
from components.core.errors import CxrError
from components.core.progress import log

SIDES = ("train", "val", "test")

# Named split protocols: (val_fraction, test_fraction).
PRESETS = {
    "holdout-70-30": (0.3, 0.0),   # the study's stated method: 70 % train, 30 % validation
    "study-80-10-10": (0.1, 0.1),  # what its confusion matrices come from: 10 % of each class tested
}


def split(dataset_dir: Path, out_dir: Path, *, val_fraction: float = 0.3, test_fraction: float = 0.0,
          seed: int = 42) -> dict:
    """Splits an ingested dataset into train / val / test id lists.

    Args:
        dataset_dir: an ingested dataset folder (`cxr ingest --out`).
        out_dir: where the id lists and summary.json go (replaced on rerun).
        val_fraction: share of each class for validation (0 < f < 1).
        test_fraction: share of each class for the test side (0 ≤ f < 1); 0 means no test side.
        seed: shuffling seed; the same seed and dataset always give the same split.

    Returns:
        The summary written to out_dir/summary.json.
    """
    _check_fractions(val_fraction, test_fraction)
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

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = index["id"].to_numpy()
    per_class = {}
    for side in SIDES:
        mask = side_of_row == side
        (out_dir / f"{side}.txt").write_text("".join(f"{i}\n" for i in sorted(ids[mask])))
        names = index["class_name"].to_numpy()[mask]
        per_class[side] = {c: int((names == c).sum()) for c in CLASS_NAMES}
    summary = {
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
        "dataset_fingerprint": dataset.summary.get("fingerprint"),
        "counts": {side: sum(per_class[side].values()) for side in SIDES},
        "per_class": per_class,
        "duplicate_groups_kept_together": sum(1 for _, rows in groups if len(rows) > 1),
    }
    write_json(out_dir / "summary.json", summary)
    for side in SIDES:
        log(f"split: {side:5s} {summary['counts'][side]:6d}  " +
            "  ".join(f"{c}={n}" for c, n in per_class[side].items()))
    if summary["counts"]["train"] == 0 or summary["counts"]["val"] == 0:
        raise CxrError(f"{dataset_dir}: too few images ({len(index)}) for a train and a validation side; "
                       "ingest more images or change --val-fraction")
    return summary


def load_split(split_dir: Path) -> dict[str, list[str]]:
    """The id lists of a split folder: {"train": [...], "val": [...], "test": [...]}."""
    split_dir = Path(split_dir)
    if not (split_dir / "summary.json").is_file():
        raise CxrError(f"{split_dir} is not a split folder (no summary.json); run `cxr split` first")
    return {side: (split_dir / f"{side}.txt").read_text().splitlines() for side in SIDES}


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise CxrError(f"--val-fraction {val_fraction} must be between 0 and 1 (exclusive)")
    if not 0 <= test_fraction < 1:
        raise CxrError(f"--test-fraction {test_fraction} must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise CxrError(f"--val-fraction {val_fraction} + --test-fraction {test_fraction} leave no "
                       "training images; their sum must be below 1")


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
        majority = max(CLASS_NAMES, key=lambda c: (names.count(c), -CLASS_NAMES.index(c)))
        groups.append((majority, np.array(rows)))
    return groups


@component
def split_op(dataset: Input[Dataset], split_ids: Output[Artifact], val_fraction: float,
             test_fraction: float, seed: int):
    """Splits the ingested dataset into train / val / test id lists.

    Consumes the `dataset` artifact of ingest_op; produces `split_ids`, a folder with train.txt,
    val.txt, test.txt and summary.json (per-class counts per side, also in the artifact metadata).
    """
    from pathlib import Path

    from components.split import split

    summary = split(Path(dataset.path), Path(split_ids.path), val_fraction=val_fraction,
                    test_fraction=test_fraction, seed=seed)
    split_ids.metadata.update(summary["counts"])
