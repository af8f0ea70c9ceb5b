"""Training checkpoints: one per epoch, whole or ignored, in a local folder or under a gs:// prefix.

After every epoch, and when SIGTERM stops an epoch midway (a preempted pod), a checkpoint writes
ckpt-EEEE-BBBBBB.npz (every variable of the model being fitted, the dropout seed generators' states
included, and every variable of its optimizer: the state before batch BBBBBB of epoch EEEE, both
0-based), then ckpt-EEEE-BBBBBB.json, the commit record: where training resumes, the npz's size and
sha256, the history and epoch seconds so far, and the key of the run's settings. A local file is
renamed into place once whole; a gs:// object appears whole or not at all. A resumed run takes the
newest record whose npz matches it (a truncated, corrupted or missing one falls back to the one
before) and whose settings key is its own; the per-epoch batch order derives from the seed and the
epoch number (core/data.py epoch_batches), so the resumed epochs see the batches an uninterrupted
run would have seen. The two newest checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core import storage
from components.core.errors import CxrError
from components.core.files import temp_path
from components.core.progress import log

KEEP = 2
_RECORD = re.compile(r"(ckpt-\d{4,}-\d{6,})\.json$")


def settings_key(settings: dict) -> str:
    """sha256 of the settings that make two trainings the same one (variant, seed, split, …)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Checkpoint:
    """A committed checkpoint: training resumes at batch `skip_batches` of epoch `next_epoch` (0-based)."""

    next_epoch: int
    skip_batches: int
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    model_variables: list[np.ndarray]
    optimizer_variables: list[np.ndarray]


class Checkpoints:
    """The checkpoints of one training run at `location` (a local folder or a gs:// prefix)."""

    def __init__(self, location: str | Path, settings: dict):
        self.location = str(location)
        self.remote = storage.is_gcs_uri(self.location)
        self.key = settings_key(settings)
        self.last_write_seconds = 0.0
        self.longest_write_seconds = 0.0  # of any checkpoint of this run: what a SIGTERM must wait for
        self.last_bytes = 0

    # -- the store: a local folder or a gs:// prefix ------------------------------------------------

    def _names(self) -> list[str]:
        if self.remote:
            try:
                objects = storage.list_objects(self.location.rstrip("/") + "/")
            except CxrError as exc:
                if "no objects under this prefix" in str(exc):
                    return []
                raise
            return [o.relative for o in objects]
        folder = Path(self.location)
        return [p.name for p in folder.iterdir()] if folder.is_dir() else []

    def _read(self, name: str) -> bytes | None:
        if self.remote:
            with tempfile.TemporaryDirectory(prefix="cxr-checkpoint-") as tmp:
                try:
                    path = storage.download_file(f"{self.location.rstrip('/')}/{name}", Path(tmp) / name)
                except CxrError as exc:
                    log(f"checkpoints: {name} unreadable ({exc})")
                    return None
                return path.read_bytes()
        path = Path(self.location) / name
        return path.read_bytes() if path.is_file() else None

    def _write(self, name: str, data: bytes) -> None:
        if self.remote:
            storage.upload_bytes(f"{self.location.rstrip('/')}/{name}", data)
            return
        folder = Path(self.location)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(folder / name)
        tmp.write_bytes(data)
        tmp.replace(folder / name)

    def _delete(self, name: str) -> None:
        if self.remote:
            storage.delete_object(f"{self.location.rstrip('/')}/{name}")
        else:
            (Path(self.location) / name).unlink(missing_ok=True)

    # -- checkpoints ------------------------------------------------------------------------------

    def _records(self) -> list[str]:
        return sorted(m.group(1) for n in self._names() if (m := _RECORD.fullmatch(n)))

    def latest(self) -> Checkpoint | None:
        """The newest whole checkpoint of these settings, or None (then training starts at epoch 0)."""
        for name in reversed(self._records()):
            checkpoint = self._load(name)
            if checkpoint is not None:
                return checkpoint
        return None

    def _load(self, name: str) -> Checkpoint | None:
        raw = self._read(f"{name}.json")
        try:
            record = json.loads(raw) if raw is not None else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            log(f"checkpoints: {name}.json unreadable; trying the one before")
            return None
        if record.get("settings_key") != self.key:
            log(f"checkpoints: {name} at {self.location} is of other settings; not resuming from it")
            return None
        data = self._read(f"{name}.npz")
        if (
            data is None
            or len(data) != record.get("bytes")
            or hashlib.sha256(data).hexdigest() != record.get("sha256")
        ):
            log(f"checkpoints: {name}.npz is missing, truncated or corrupted; trying the one before")
            return None
        arrays = np.load(io.BytesIO(data))
        return Checkpoint(
            next_epoch=int(record["next_epoch"]),
            skip_batches=int(record["skip_batches"]),
            history=record["history"],
            epoch_seconds=record["epoch_seconds"],
            model_variables=[arrays[f"m{i}"] for i in range(record["model_variables"])],
            optimizer_variables=[arrays[f"o{i}"] for i in range(record["optimizer_variables"])],
        )

    def save(
        self, model, history: dict, epoch_seconds: list[float], next_epoch: int, skip_batches: int = 0
    ) -> None:
        """Saves the state to resume at batch `skip_batches` of epoch `next_epoch`: variables, then record."""
        started = time.perf_counter()
        model_values = [np.asarray(v.numpy()) for v in model.variables]
        optimizer_values = [np.asarray(v.numpy()) for v in model.optimizer.variables]
        buffer = io.BytesIO()
        np.savez(
            buffer,
            **{f"m{i}": a for i, a in enumerate(model_values)},
            **{f"o{i}": a for i, a in enumerate(optimizer_values)},
        )
        data = buffer.getvalue()
        name = f"ckpt-{next_epoch:04d}-{skip_batches:06d}"
        self._write(f"{name}.npz", data)
        record = {
            "next_epoch": next_epoch,
            "skip_batches": skip_batches,
            "settings_key": self.key,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "model_variables": len(model_values),
            "optimizer_variables": len(optimizer_values),
            "history": history,
            "epoch_seconds": epoch_seconds,
        }
        self._write(f"{name}.json", (json.dumps(record, indent=1) + "\n").encode())
        for old in self._records()[:-KEEP]:
            self._delete(f"{old}.json")
            self._delete(f"{old}.npz")
        self.last_write_seconds = time.perf_counter() - started
        self.longest_write_seconds = max(self.longest_write_seconds, self.last_write_seconds)
        self.last_bytes = len(data)

    def save_features(self, table: np.ndarray) -> None:
        """Keeps the features this training extracted itself, so a resumed run does not recompute them.

        Local checkpoints only: on a GPU node the prefix pass takes less time than moving gigabytes of
        features to and from a bucket, and a shared features artifact is KFP's to cache.
        """
        if self.remote:
            return
        folder = Path(self.location)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(folder / "features.npy")
        with open(tmp, "wb") as f:
            np.save(f, table)
        tmp.replace(folder / "features.npy")
        record = {"settings_key": self.key, "bytes": (folder / "features.npy").stat().st_size}
        self._write("features.json", json.dumps(record).encode())

    def load_features(self, shape: tuple[int, ...], dtype) -> np.ndarray | None:
        """The features a previous attempt of this training saved, memory-mapped; None when absent."""
        raw = None if self.remote else self._read("features.json")
        path = Path(self.location) / "features.npy"
        try:
            record = json.loads(raw) if raw else {}
            table = np.load(path, mmap_mode="r") if path.is_file() else None
        except ValueError:
            return None
        if (
            table is None
            or record.get("settings_key") != self.key
            or record.get("bytes") != path.stat().st_size
            or table.shape != tuple(shape)
            or table.dtype != np.dtype(dtype)
        ):
            return None
        log(f"checkpoints: reusing the features extracted before, {path}")
        return table

    def clear(self) -> None:
        """Removes every checkpoint of this location (after the model folder is written)."""
        for name in self._names():
            if name.startswith(("ckpt-", "features.")):
                self._delete(name)
        if not self.remote and Path(self.location).is_dir() and not any(Path(self.location).iterdir()):
            Path(self.location).rmdir()


def restore(model, checkpoint: Checkpoint) -> None:
    """Puts a checkpoint's values into a compiled model and its optimizer (built here when needed)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    pairs = [
        *zip(model.variables, checkpoint.model_variables, strict=False),
        *zip(model.optimizer.variables, checkpoint.optimizer_variables, strict=False),
    ]
    counts = (len(model.variables), len(model.optimizer.variables))
    saved = (len(checkpoint.model_variables), len(checkpoint.optimizer_variables))
    if counts != saved or any(tuple(v.shape) != a.shape for v, a in pairs):
        raise CxrError(
            f"checkpoint of epoch {checkpoint.next_epoch + 1} does not fit this model ({saved} variables "
            f"saved, {counts} here); remove the checkpoints or pass another --checkpoints location"
        )
    for variable, value in pairs:
        variable.assign(value)
