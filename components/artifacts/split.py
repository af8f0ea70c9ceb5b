"""The split artifact: which images of a dataset are on which side, as `cxr split` wrote it.

Layout of a split folder D:
  D/train.txt, D/val.txt, D/test.txt  image ids (dataset index ids), one per line, sorted
  D/summary.json   SplitSummary: fractions, seed, counts and per-class counts per side, and the
                   fingerprints that tie the split to its dataset and models to the split
  D/artifact.json  kind "split", written last (manifest.py)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from components.artifacts.manifest import ArtifactKind
from components.core.errors import CxrError
from components.core.files import read_json, write_json, write_text

SIDES = ("train", "val", "test")
SUMMARY_FILE = "summary.json"
KIND = ArtifactKind("split", 2, "split", (SUMMARY_FILE, *(f"{side}.txt" for side in SIDES)))


class SplitSummary(TypedDict):
    """summary.json of a split folder."""

    val_fraction: float
    test_fraction: float
    seed: int
    dataset_fingerprint: str | None  # the fingerprint of the dataset it was made from
    split_fingerprint: str  # see split_fingerprint()
    counts: dict[str, int]  # side → images
    per_class: dict[str, dict[str, int]]  # side → class → images
    duplicate_groups_kept_together: int
    groups_across_sides: dict[str, int]  # exact / near-duplicate groups with images on two sides: 0
    cross_class_duplicates: str  # the policy: "exclude" or "keep"
    excluded: list[dict]  # {"id", "class_name", "duplicate_group"} of each image left out of every side


@dataclass(frozen=True)
class Split:
    """A split folder opened for reading."""

    path: Path
    sides: dict[str, list[str]]  # side → ids
    summary: SplitSummary

    @property
    def fingerprint(self) -> str:
        """The split fingerprint (equal fingerprints, identical splits)."""
        return self.summary["split_fingerprint"]

    @property
    def eval_side(self) -> str:
        """The side models are scored on: test when the split has one, else validation."""
        return "test" if self.sides["test"] else "val"

    def check_made_from(self, dataset_fingerprint: str | None, dataset_path: Path) -> None:
        """Refuses a split made from another dataset than the one a step was given with it."""
        made_from = self.summary.get("dataset_fingerprint")
        if dataset_fingerprint and made_from and made_from != dataset_fingerprint:
            raise CxrError(
                f"split {self.path} was made from another dataset than {dataset_path} (fingerprint "
                f"{made_from[:12]}…, that one {dataset_fingerprint[:12]}…); run `cxr split --dataset "
                f"{dataset_path}` and use its output"
            )


def split_fingerprint(sides: dict[str, list[str]]) -> str:
    """sha256 over the sorted id lists of every side: equal fingerprints, identical splits."""
    digest = hashlib.sha256()
    for side in SIDES:
        digest.update(f"[{side}]\n".encode() + "".join(f"{i}\n" for i in sorted(sides[side])).encode())
    return digest.hexdigest()


def write_split(out_dir: Path, sides: dict[str, list[str]], summary: SplitSummary) -> None:
    """Writes a split folder: the id lists, summary.json, then the manifest."""
    out_dir = KIND.ensure_prepared(out_dir)
    for side in SIDES:
        write_text(out_dir / f"{side}.txt", "".join(f"{i}\n" for i in sorted(sides[side])))
    write_json(out_dir / SUMMARY_FILE, summary)
    KIND.write_manifest(out_dir)


def read_split(split_dir: Path, what: str = "--split") -> Split:
    """Opens a split folder; a one-line CxrError when it is not a whole one."""
    split_dir = KIND.check(split_dir, what)
    sides = {side: (split_dir / f"{side}.txt").read_text(encoding="utf-8").splitlines() for side in SIDES}
    return Split(split_dir, sides, read_json(split_dir / SUMMARY_FILE, KIND.command))
