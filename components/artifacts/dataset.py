"""The dataset artifact: what `cxr ingest` writes and every later step reads.

Layout of a dataset folder D:
  D/summary.json   DatasetSummary: the `dataset` object of comparison.json (images, per_class,
                   skipped, duplicate_groups) plus stored_size, fingerprint and what ingest saw
  D/index.csv      one row per accepted image, in pixel-row order (columns INDEX_COLUMNS)
  D/pixels.npy     uint8 array (images, stored_size, stored_size): every image decoded once,
                   8-bit grayscale, read by memory map so training never decodes a PNG again
  D/artifact.json  kind "dataset", written last (manifest.py)
"""

from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd

from components.artifacts.manifest import ArtifactKind
from components.core.classes import class_index
from components.core.errors import CxrError
from components.core.files import read_json, temp_path, write_json

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.csv"
PIXELS_FILE = "pixels.npy"
KIND = ArtifactKind("dataset", 2, "ingest", (SUMMARY_FILE, INDEX_FILE, PIXELS_FILE))

# id: the file's path relative to the dataset folder ("COVID/images/COVID-1.png"), unique;
# class_name: one of CLASS_NAMES; sha256: of the file's bytes; pixel_sha256: of the decoded
# 8-bit pixels at original size (equal pixel hashes = exact duplicates); source_path: where the
# file was read (path, zip member or gs:// URI); width/height/mode/format: as found in the file;
# duplicate_group: shared by identical images, -1 for an image with no duplicate; phash: the
# perceptual hash (core/duplicates.py); near_duplicate_group: shared by images within the near-
# duplicate distance of each other (exact duplicates included), -1 for an image with none.
INDEX_COLUMNS = (
    "id",
    "class_name",
    "sha256",
    "pixel_sha256",
    "source_path",
    "width",
    "height",
    "mode",
    "format",
    "duplicate_group",
    "phash",
    "near_duplicate_group",
)


class SkippedFile(TypedDict):
    """A file that looked like a sample but was not used."""

    path: str  # relative to the source
    reason: str  # a stable code: components/core/images.py SKIP_REASONS
    detail: str  # why, for people


class DatasetObject(TypedDict):
    """The `dataset` object of comparison.json: the four keys, then what the report's data audit shows."""

    images: int
    per_class: dict[str, int]  # class name → accepted images, CLASS_NAMES order
    skipped: list[SkippedFile]
    duplicate_groups: int  # groups of identical images (kept on one side of every split)
    color_modes: NotRequired[dict[str, int]]  # the files' colour modes before the decode to grayscale
    cross_class_duplicates: NotRequired[list[dict]]  # {"ids", "classes"}: identical images, two labels
    near_duplicate_groups: NotRequired[int]  # groups of re-encoded or resized copies (core/duplicates.py)
    near_duplicate_distance: NotRequired[int]  # their pHash threshold in bits
    synthetic: NotRequired[bool]  # a demo dataset: says nothing about chest X-rays


class DatasetSummary(DatasetObject, total=False):
    """summary.json: the dataset object plus what ingest measured (stored_size and fingerprint always)."""

    stored_size: int
    fingerprint: str  # sha256 over the sorted (id, file sha256) pairs: the same however the data arrived
    cross_class_duplicate_groups: int
    duplicates: list[list[str]]  # the ids of each duplicate group
    near_duplicates: list[list[str]]  # the ids of each near-duplicate group that is not one exact group
    resized: int
    color_modes: dict[str, int]
    formats: dict[str, int]
    ignored: dict[str, int]  # files that are not samples, by kind
    source: str


@dataclass
class Dataset:
    """An ingested dataset opened for reading: the index and a read-only view of the pixels."""

    path: Path
    summary: DatasetSummary
    index: pd.DataFrame
    pixels: np.ndarray  # memory-mapped uint8 (images, stored_size, stored_size)

    def rows_for(self, ids: list[str]) -> np.ndarray:
        """Pixel-row numbers of the given image ids, in the given order."""
        row_of = pd.Series(np.arange(len(self.index)), index=self.index["id"])
        missing = [i for i in ids if i not in row_of.index]
        if missing:
            raise CxrError(
                f"{len(missing)} split ids are not in dataset {self.path} (first: "
                f"{missing[0]!r}); run split again on this dataset"
            )
        return row_of.loc[ids].to_numpy()

    def labels_for(self, rows: np.ndarray) -> np.ndarray:
        """Class indices (positions in CLASS_NAMES) of the given pixel rows."""
        names = self.index["class_name"].to_numpy()[rows]
        return np.array([class_index(n) for n in names], dtype=np.int32)

    @property
    def fingerprint(self) -> str | None:
        """The content fingerprint ingest computed."""
        return self.summary.get("fingerprint")


def dataset_object(summary: DatasetSummary) -> DatasetObject:
    """The `dataset` object of comparison.json, taken from a dataset summary."""
    return {key: summary[key] for key in DatasetObject.__annotations__ if key in summary}


def open_dataset(path: Path, what: str = "--dataset") -> Dataset:
    """Opens an ingested dataset folder; a one-line CxrError when it is not a whole one."""
    path = KIND.check(path, what)
    summary = read_json(path / SUMMARY_FILE, KIND.command)
    index = pd.read_csv(
        path / INDEX_FILE,
        dtype={"id": str, "class_name": str, "mode": str, "format": str, "phash": str},
        keep_default_na=False,
    )
    pixels = np.load(path / PIXELS_FILE, mmap_mode="r")
    if len(index) != pixels.shape[0]:
        raise CxrError(
            f"{path}: index.csv has {len(index)} rows but pixels.npy has "
            f"{pixels.shape[0]} images; run ingest again"
        )
    return Dataset(path=path, summary=summary, index=index, pixels=pixels)


def publish_dataset(out_dir: Path, index: pd.DataFrame, summary: DatasetSummary, pixels_file: Path) -> None:
    """Moves a finished dataset into `out_dir`: the pixels file (renamed), index.csv, summary.json, manifest.

    Args:
        out_dir: the dataset folder (exists; `pixels_file` is inside it).
        index: one row per image, INDEX_COLUMNS, in pixel-row order.
        summary: summary.json.
        pixels_file: the finished uint8 (images, S, S) .npy, renamed to pixels.npy.
    """
    out_dir = KIND.ensure_prepared(out_dir)
    index_partial = temp_path(out_dir / INDEX_FILE)
    index[list(INDEX_COLUMNS)].to_csv(index_partial, index=False)
    Path(pixels_file).replace(out_dir / PIXELS_FILE)
    index_partial.replace(out_dir / INDEX_FILE)
    write_json(out_dir / SUMMARY_FILE, summary)
    KIND.write_manifest(out_dir)


def write_dataset(out_dir: Path, index: pd.DataFrame, summary: DatasetSummary, pixels: np.ndarray) -> Path:
    """Writes a dataset folder from pixels in memory (tests and tools; ingest streams via publish_dataset)."""
    out_dir = KIND.ensure_prepared(out_dir)
    partial = temp_path(out_dir / PIXELS_FILE)
    with open(partial, "wb") as f:
        np.save(f, np.ascontiguousarray(pixels, dtype=np.uint8))
    publish_dataset(out_dir, index, summary, partial)
    return out_dir
