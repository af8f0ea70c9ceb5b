"""The model folder: what `cxr train` writes for one variant, and evaluate reads.

Layout of a model folder D:
  D/model.keras    the full trained model (pixels in, class probabilities out; core/model.py)
  D/history.json   History: loss, accuracy, val_loss, val_accuracy per epoch
  D/train.json     TrainRecord: the variant, its parameter counts, the settings and the
                   fingerprints of the dataset and split it was trained on
  D/artifact.json  kind "model", written last (manifest.py)
  D/checkpoints/   while training, by default: the per-epoch checkpoints (core/checkpoints.py), removed
                   once the folder is whole
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from components.artifacts.manifest import ArtifactKind
from components.core.errors import CxrError
from components.core.files import read_json, write_json

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
TRAIN_FILE = "train.json"
CHECKPOINTS_FOLDER = "checkpoints"
KIND = ArtifactKind("model", 1, "train", (MODEL_FILE, HISTORY_FILE, TRAIN_FILE))


class History(TypedDict):
    """Per-epoch training curves, as Keras reports them."""

    loss: list[float]
    accuracy: list[float]
    val_loss: list[float]
    val_accuracy: list[float]


class TrainSummary(TypedDict):
    """What a comparison.json variant entry carries from training."""

    variant: str  # model1 | model2 | model3
    title: str
    trainable_layers: list[str]  # layer names, backbone ones first
    trainable_params: int
    total_params: int
    epochs: int
    train_seconds: float
    weights: str  # the backbone weights asked for: imagenet, none, demo, a file or a gs:// URI


class TrainRecord(TrainSummary, total=False):
    """train.json: the summary plus the settings and fingerprints of the run."""

    epoch_seconds: list[float]
    weights_sha256: str | None  # of the backbone weights file loaded (None: imagenet via Keras, or none)
    demo_weights: bool  # the offline demo backbone: says nothing about ImageNet features
    head_units: list[int]
    dropout: float
    resize: str  # how stored pixels reach the model's size: "area"
    departures_from_study: dict[str, str]  # core/study.py DEPARTURES
    image_size: int
    batch_size: int
    learning_rate: float
    seed: int
    n_train: int
    n_val: int
    replicas: int
    feature_cache: str  # "features artifact", "in this step" or "off" (trained on pixels)
    feature_seconds: float  # the prefix pass this step ran itself (0 with a features artifact)
    checkpoint_seconds: float  # the longest checkpoint write of this training (SIGTERM waits this long)
    checkpoint_bytes: int  # size of one checkpoint (weights, optimizer state)
    dataset_fingerprint: str | None
    split_fingerprint: str
    tensorflow: str


@dataclass(frozen=True)
class ModelFolder:
    """A model folder opened for reading (the Keras model itself is loaded by core/model.py)."""

    path: Path
    record: TrainRecord
    history: History

    @property
    def model_file(self) -> Path:
        """The saved Keras model."""
        return self.path / MODEL_FILE


def write_model_folder(
    out_dir: Path, save_model: Callable[[Path], None], history: History, record: TrainRecord
) -> None:
    """Writes a model folder: the model (through `save_model(path)`), history.json, train.json, manifest."""
    out_dir = KIND.ensure_prepared(out_dir)
    save_model(out_dir / MODEL_FILE)
    write_json(out_dir / HISTORY_FILE, history)
    write_json(out_dir / TRAIN_FILE, record)
    KIND.write_manifest(out_dir)


def read_model_folder(model_dir: Path, what: str = "--model") -> ModelFolder:
    """Opens a model folder; a one-line CxrError when it is not a whole one."""
    model_dir = KIND.check(model_dir, what)
    record = read_json(model_dir / TRAIN_FILE, KIND.command)
    missing = [
        key for key in TrainSummary.__required_keys__ if not isinstance(record, dict) or key not in record
    ]
    if missing:
        raise CxrError(f"{model_dir / TRAIN_FILE} lacks {sorted(missing)}; run `cxr train` again")
    history = read_json(model_dir / HISTORY_FILE, KIND.command)
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise CxrError(
            f"{model_dir / HISTORY_FILE} must map metric names to per-epoch lists; run `cxr train` again"
        )
    return ModelFolder(model_dir, record, history)
