"""The ingested dataset artifact: what `ingest` writes and every later step reads.

Layout of a dataset folder D:
  D/summary.json  the `dataset` object of comparison.json (images, per_class, skipped,
                  duplicate_groups) plus stored_size, color_modes, ignored and fingerprint
  D/index.csv     one row per accepted image, in pixel-row order (columns INDEX_COLUMNS)
  D/pixels.npy    uint8 array (images, stored_size, stored_size): every image decoded once,
                  8-bit grayscale, read by memory map so training never decodes a PNG again
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.core.classes import class_index
from components.core.errors import CxrError

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.csv"
PIXELS_FILE = "pixels.npy"

# id: the file's path relative to the dataset folder ("COVID/images/COVID-1.png"), unique;
# class_name: one of CLASS_NAMES; sha256: of the file's bytes; pixel_sha256: of the decoded
# 8-bit pixels at original size (equal pixel hashes = exact duplicates); source_path: where the
# file was read (path, zip member or gs:// URI); width/height/mode/format: as found in the file;
# duplicate_group: shared by identical images, -1 for an image with no duplicate.
INDEX_COLUMNS = ("id", "class_name", "sha256", "pixel_sha256", "source_path",
                 "width", "height", "mode", "format", "duplicate_group")

# The keys of summary.json that form the `dataset` object of comparison.json.
CONTRACT_KEYS = ("images", "per_class", "skipped", "duplicate_groups")


@dataclass
class Dataset:
    """An ingested dataset opened for reading: the index and a read-only view of the pixels."""

    path: Path
    summary: dict
    index: pd.DataFrame
    pixels: np.ndarray  # memory-mapped uint8 (images, stored_size, stored_size)

    @property
    def stored_size(self) -> int:
        return int(self.pixels.shape[1])

    def rows_for(self, ids: list[str]) -> np.ndarray:
        """Pixel-row numbers of the given image ids, in the given order."""
        row_of = pd.Series(np.arange(len(self.index)), index=self.index["id"])
        missing = [i for i in ids if i not in row_of.index]
        if missing:
            raise CxrError(f"{len(missing)} split ids are not in dataset {self.path} (first: "
                           f"{missing[0]!r}); run split again on this dataset")
        return row_of.loc[ids].to_numpy()

    def labels_for(self, rows: np.ndarray) -> np.ndarray:
        """Class indices (positions in CLASS_NAMES) of the given pixel rows."""
        names = self.index["class_name"].to_numpy()[rows]
        return np.array([class_index(n) for n in names], dtype=np.int32)


def contract_summary(summary: dict) -> dict:
    """The `dataset` object of comparison.json, taken from a dataset summary."""
    return {key: summary[key] for key in CONTRACT_KEYS}


def open_dataset(path: Path) -> Dataset:
    """Opens an ingested dataset folder; a clear error when it is not one."""
    path = Path(path)
    for name in (SUMMARY_FILE, INDEX_FILE, PIXELS_FILE):
        if not (path / name).is_file():
            raise CxrError(f"{path} is not an ingested dataset (no {name}); "
                           f"run `cxr ingest --source ... --out {path}` first")
    summary = read_json(path / SUMMARY_FILE, "ingest")
    index = pd.read_csv(path / INDEX_FILE, dtype={"id": str, "class_name": str, "mode": str, "format": str},
                        keep_default_na=False)
    pixels = np.load(path / PIXELS_FILE, mmap_mode="r")
    if len(index) != pixels.shape[0]:
        raise CxrError(f"{path}: index.csv has {len(index)} rows but pixels.npy has "
                       f"{pixels.shape[0]} images; run ingest again")
    return Dataset(path=path, summary=summary, index=index, pixels=pixels)


def read_json(path: Path, made_by: str):
    """Reads a JSON file another step wrote; a missing or broken file names the step to (re)run.

    `made_by` is the cxr command that writes the file's folder, e.g. "train" or "evaluate".
    """
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path} not found: {path.parent} is not a `cxr {made_by}` output folder; "
                       f"run `cxr {made_by} --out {path.parent}` first")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CxrError(f"{path} is not valid JSON ({exc}); run `cxr {made_by}` again") from exc


def write_text(path: Path, text: str) -> None:
    """Writes a text file atomically (a rerun or a crash never leaves half a file behind)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, obj) -> None:
    """Writes JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
