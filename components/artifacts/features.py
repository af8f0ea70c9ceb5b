"""The features artifact: MobileNetV2's frozen prefix run once over every image of a dataset.

Layout of a features folder D:
  D/features.npy   (images, h, w, 960) float16 or float32: the block_16_depthwise_relu output of
                   each dataset image, in pixel-row order (h = w = 7 at 224 px)
  D/features.json  FeaturesSummary: what made them (layer, image size, backbone weights and their
                   sha256, dtype, dataset fingerprint) and how fast
  D/artifact.json  kind "features", written last (manifest.py)

features.npy is written and read with plain file I/O, row range by row range (at most READ_BYTES per
read), never memory-mapped whole, so neither side holds more than the rows it asked for.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from components.artifacts.manifest import ArtifactKind
from components.core import study
from components.core.errors import CxrError
from components.core.files import read_json, temp_path, write_json

FEATURES_FILE = "features.npy"
SUMMARY_FILE = "features.json"
KIND = ArtifactKind("features", 1, "featurize", (FEATURES_FILE, SUMMARY_FILE))
DTYPES, DEFAULT_DTYPE = study.FEATURE_DTYPES, study.DEFAULT_FEATURE_DTYPE
READ_BYTES = 64 * 2**20  # at most this much of features.npy is read at once, beside the caller's rows
WRITE_QUEUE = 8  # batches handed to the writing thread and not yet on disk, at most


class FeaturesSummary(TypedDict):
    """features.json."""

    layer: str  # the cached MobileNetV2 layer
    shape: list[int]  # (images, h, w, channels)
    dtype: str  # float16 | float32
    image_size: int  # model input side the prefix ran at
    weights: str  # the backbone weights asked for (imagenet, demo, a file …)
    weights_sha256: str | None  # of the weights file loaded (None: Keras' own imagenet download or none)
    dataset_fingerprint: str | None
    seconds: float
    images_per_s: float


@dataclass(frozen=True)
class Features:
    """A features folder opened for reading."""

    path: Path
    summary: FeaturesSummary

    @property
    def file(self) -> Path:
        """features.npy."""
        return self.path / FEATURES_FILE

    def check_matches(
        self, *, dataset_fingerprint: str | None, image_size: int, weights: str, weights_sha256: str | None
    ) -> None:
        """Refuses features made from another dataset, at another image size or with other weights."""
        s = self.summary
        # The same weights file (by its hash) may be named differently (a path, a gs:// URI, "demo").
        same_weights = "weights_sha256" if weights_sha256 and s["weights_sha256"] else "weights"
        wanted = {
            "dataset_fingerprint": dataset_fingerprint,
            "image_size": image_size,
            same_weights: weights_sha256 if same_weights == "weights_sha256" else weights,
        }
        for key, value in wanted.items():
            if s[key] != value:
                raise CxrError(
                    f"--features {self.path} were made with {key} {s[key]!r}, not {value!r}; run "
                    "`cxr featurize` with this dataset, --image-size and --weights"
                )

    def read_rows(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Copies the features of pixel rows `rows` (any order) into `out` (len(rows), h, w, c)."""
        with open(self.file, "rb") as f:
            if np.lib.format.read_magic(f) == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            offset, row_bytes = f.tell(), int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
            if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
                raise CxrError(f"{self.file} has {shape[0]} rows; the dataset asks for row {rows.max()}")
            order = np.argsort(rows, kind="stable")
            flat = out.reshape(len(rows), -1).view(np.uint8)
            buffer = np.empty((max(1, READ_BYTES // max(row_bytes, 1)), row_bytes), np.uint8)
            for start, stop in _runs(rows[order], len(buffer)):
                f.seek(offset + int(rows[order[start]]) * row_bytes)
                part = buffer[: stop - start]
                if f.readinto(memoryview(part).cast("B")) != part.nbytes:
                    raise CxrError(
                        f"{self.file} ends before row {rows[order[stop - 1]]}; run `cxr featurize` again"
                    )
                flat[order[start:stop]] = part
        return out


def _runs(sorted_rows: np.ndarray, longest: int):
    """(start, stop) positions of runs of consecutive row numbers in a sorted array, each ≤ `longest`."""
    if not len(sorted_rows):
        return
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    edges = [0, *breaks.tolist(), len(sorted_rows)]
    for first, last in zip(edges[:-1], edges[1:], strict=False):
        for start in range(first, last, longest):
            yield start, min(start + longest, last)


class FeaturesWriter:
    """Writes features.npy row batch by row batch (in pixel-row order), then closes the artifact.

    A thread of its own writes the file, so the forward pass goes on while the disk takes gigabytes.
    """

    def __init__(self, out_dir: Path, shape: tuple[int, ...], dtype: str):
        if dtype not in DTYPES:
            raise CxrError(f"--feature-dtype {dtype}: choose {' or '.join(DTYPES)}")
        self.out_dir = KIND.ensure_prepared(out_dir)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.partial = temp_path(self.out_dir / FEATURES_FILE)
        self._file = open(self.partial, "wb")  # noqa: SIM115 (closed in close())
        np.lib.format.write_array_header_2_0(
            self._file,
            {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape},
        )
        self.rows = 0
        self._pending: queue.Queue[np.ndarray | None] = queue.Queue(WRITE_QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="features-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (batch := self._pending.get()) is not None:
            if self._error is None:
                try:
                    self._file.write(memoryview(batch).cast("B"))
                except BaseException as exc:  # a full disk: raised in the caller's next write or close
                    self._error = exc

    def _finish_writing(self) -> None:
        if self._thread.is_alive():
            self._pending.put(None)
            self._thread.join()
        self._file.close()

    def _raise_a_failed_write(self) -> None:
        if self._error is not None:
            self.partial.unlink(missing_ok=True)
            raise CxrError(f"features: cannot write {self.partial}: {self._error}") from self._error

    def write(self, batch: np.ndarray) -> None:
        """Appends the next rows (queued; a failed earlier write is raised here)."""
        self._raise_a_failed_write()
        self._pending.put(np.ascontiguousarray(batch, dtype=self.dtype))
        self.rows += len(batch)

    def close(self, summary: FeaturesSummary) -> None:
        """Renames features.npy into place and writes features.json and the manifest."""
        self._finish_writing()
        self._raise_a_failed_write()
        if self.rows != self.shape[0]:
            self.partial.unlink(missing_ok=True)
            raise CxrError(f"features: wrote {self.rows} rows, expected {self.shape[0]}")
        self.partial.replace(self.out_dir / FEATURES_FILE)
        write_json(self.out_dir / SUMMARY_FILE, summary)
        KIND.write_manifest(self.out_dir)

    def abort(self) -> None:
        """Removes the partial file (after a failure)."""
        self._finish_writing()
        self.partial.unlink(missing_ok=True)


def open_features(path: Path, what: str = "--features") -> Features:
    """Opens a features folder; a one-line CxrError when it is not a whole one."""
    path = KIND.check(path, what)
    return Features(path, read_json(path / SUMMARY_FILE, KIND.command))
