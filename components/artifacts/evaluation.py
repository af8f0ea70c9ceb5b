"""The evaluation artifact: one variant scored on the held-out side, as `cxr evaluate` wrote it.

Layout of an evaluation folder D:
  D/predictions.csv  id, true_class, predicted_class, then prob_<class> for every class in
                     CLASS_NAMES order (softmax probabilities; predicted_class is their argmax):
                     the single source of every number below
  D/metrics.json     VariantEntry: one `variants[]` entry of comparison.json (train summary, the
                     metrics computed from predictions.csv, history, eval_side, split_fingerprint,
                     and the rest of train.json)
  D/dataset.json     the `dataset` object of comparison.json, so `report` needs nothing else
  D/artifact.json    kind "evaluation", written last (manifest.py)

The writer computes metrics.json from the predictions file it has just written, and the reader checks
the entry against itself and against that file again, so a hand-edited number is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.artifacts.dataset import DatasetObject
from components.artifacts.manifest import ArtifactKind
from components.artifacts.model import History, TrainRecord, TrainSummary
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.files import read_json, write_json, write_text
from components.core.metrics import MetricBlock, compute_metrics
from components.core.statistics import variant_statistics

PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
DATASET_FILE = "dataset.json"
SPLIT_FILE = "split.json"
GRADCAM_FILE = "gradcam.npz"
KIND = ArtifactKind(
    "evaluation", 2, "evaluate", (PREDICTIONS_FILE, METRICS_FILE, DATASET_FILE, SPLIT_FILE, GRADCAM_FILE)
)
PROB_COLUMNS: tuple[str, ...] = tuple(f"prob_{name}" for name in CLASS_NAMES)
PREDICTION_COLUMNS: tuple[str, ...] = ("id", "true_class", "predicted_class", *PROB_COLUMNS)

# The scalars an evaluation shows in the Kubeflow UI (a Metrics artifact shows only logged scalars).
UI_METRICS = (
    "accuracy",
    "macro_f1",
    "covid_sensitivity",
    "covid_specificity",
    "train_seconds",
    "trainable_params",
)


class VariantEntry(TrainSummary, MetricBlock):
    """metrics.json, and one `variants[]` entry of comparison.json (extra train.json keys ride along)."""

    statistics: dict  # core/statistics.py variant_statistics: intervals, COVID_vs_rest, roc, calibration
    history: History
    eval_side: str  # "test", or "val" when the split has no test side
    split_fingerprint: str


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM heat maps of a few evaluated images (core/gradcam.py), with what the report shows of them."""

    ids: list[str]
    y_true: np.ndarray  # class indices
    y_pred: np.ndarray
    confidence: np.ndarray  # the predicted class's probability
    images: np.ndarray  # uint8 (n, side, side): the stored pixels at display size
    heatmaps: np.ndarray  # float32 (n, h, w) in [0, 1], for the predicted class


@dataclass(frozen=True)
class Evaluation:
    """An evaluation folder opened for reading and checked."""

    path: Path
    entry: VariantEntry
    dataset: DatasetObject
    split: dict  # the split's summary.json

    def predictions(self) -> Predictions:
        """The predictions every number came from."""
        return load_predictions(self.path / PREDICTIONS_FILE)

    def gradcam(self) -> GradCam:
        """The Grad-CAM examples."""
        with np.load(self.path / GRADCAM_FILE) as data:
            return GradCam(
                data["ids"].tolist(),
                data["y_true"],
                data["y_pred"],
                data["confidence"],
                data["images"],
                data["heatmaps"],
            )


def write_predictions(path: Path, ids: list[str], y_true, probabilities) -> None:
    """Writes predictions.csv (see the module docstring) atomically.

    Args:
        path: the CSV file to write.
        ids: image ids, one per row.
        y_true: true class indices, one per row.
        probabilities: (rows, classes) softmax probabilities in CLASS_NAMES order.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    names = np.array(CLASS_NAMES, dtype=object)
    frame = pd.DataFrame(
        {
            "id": list(ids),
            "true_class": names[y_true],
            "predicted_class": names[probabilities.argmax(axis=1)],
        }
    )
    for k, column in enumerate(PROB_COLUMNS):
        frame[column] = probabilities[:, k]
    write_text(path, frame.to_csv(index=False))


def read_predictions(path: Path) -> pd.DataFrame:
    """Reads and checks a predictions.csv; a CxrError naming the file when it is not a valid one."""
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path} not found; run `cxr evaluate` to write the predictions")
    try:
        frame = pd.read_csv(
            path, dtype={"id": str, "true_class": str, "predicted_class": str}, keep_default_na=False
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise CxrError(
            f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); run `cxr evaluate` again"
        ) from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise CxrError(f"{path} lacks columns {missing}; run `cxr evaluate` again")
    if frame.empty:
        raise CxrError(f"{path} holds no predictions; evaluate on a split with images")
    for column in ("true_class", "predicted_class"):
        unknown = sorted(set(frame[column]) - set(CLASS_NAMES))
        if unknown:
            raise CxrError(
                f"{path}: column {column} has unknown classes {unknown}; expected {list(CLASS_NAMES)}"
            )
    try:
        probs = frame[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise CxrError(f"{path}: probability columns are not numbers; run `cxr evaluate` again") from exc
    argmax = np.array(CLASS_NAMES, dtype=object)[probs.argmax(axis=1)]
    disagree = np.flatnonzero(argmax != frame["predicted_class"].to_numpy())
    if len(disagree):
        row = frame.iloc[disagree[0]]
        raise CxrError(
            f"{path}: predicted_class disagrees with the probabilities in {len(disagree)} rows "
            f"(first: id {row['id']!r}); run `cxr evaluate` again"
        )
    return frame


@dataclass(frozen=True)
class Predictions:
    """A predictions.csv as arrays."""

    ids: list[str]
    y_true: np.ndarray  # class indices
    probabilities: np.ndarray  # (images, classes), CLASS_NAMES order

    @property
    def y_pred(self) -> np.ndarray:
        """The predicted class indices (the probabilities' argmax)."""
        return self.probabilities.argmax(axis=1)


def load_predictions(path: Path) -> Predictions:
    """Reads and checks a predictions.csv into arrays."""
    frame = read_predictions(path)
    index = {name: k for k, name in enumerate(CLASS_NAMES)}
    return Predictions(
        frame["id"].tolist(),
        frame["true_class"].map(index).to_numpy(),
        frame[list(PROB_COLUMNS)].to_numpy(dtype=np.float64),
    )


def metrics_from_predictions(path: Path) -> MetricBlock:
    """The metric block of a variant entry and its statistics, computed from a predictions.csv alone."""
    predictions = load_predictions(path)
    return compute_metrics(predictions.y_true, predictions.y_pred) | {
        "statistics": variant_statistics(predictions.y_true, predictions.probabilities, CLASS_NAMES)
    }


def write_evaluation(
    out_dir: Path,
    *,
    ids: list[str],
    y_true,
    probabilities,
    train: TrainRecord,
    history: History,
    eval_side: str,
    split_fingerprint: str,
    dataset: DatasetObject,
    split: dict,
    gradcam: GradCam,
) -> VariantEntry:
    """Writes an evaluation folder; every metric comes from the predictions file written first.

    Args:
        out_dir: the evaluation folder (created).
        ids: image ids, one per prediction.
        y_true: their true class indices.
        probabilities: (ids, classes) softmax probabilities in CLASS_NAMES order.
        train: the model's train.json.
        history: the model's history.json.
        eval_side: the side that was scored ("test" or "val").
        split_fingerprint: the fingerprint of the split the ids come from.
        dataset: the `dataset` object of the dataset the ids come from.
        split: the split's summary.json (the report's data audit reads it).
        gradcam: heat maps of a few of the evaluated images.

    Returns:
        The entry written to metrics.json.
    """
    out_dir = KIND.ensure_prepared(out_dir)
    write_predictions(out_dir / PREDICTIONS_FILE, ids, y_true, probabilities)
    entry = {key: train[key] for key in TrainSummary.__annotations__}
    entry |= metrics_from_predictions(out_dir / PREDICTIONS_FILE)
    entry |= {"history": history, "eval_side": eval_side, "split_fingerprint": split_fingerprint}
    entry |= {key: value for key, value in train.items() if key not in entry}
    write_json(out_dir / METRICS_FILE, entry)
    write_json(out_dir / DATASET_FILE, dataset)
    write_json(out_dir / SPLIT_FILE, split)
    np.savez_compressed(
        out_dir / GRADCAM_FILE,
        ids=np.array(gradcam.ids),
        y_true=gradcam.y_true,
        y_pred=gradcam.y_pred,
        confidence=gradcam.confidence,
        images=gradcam.images,
        heatmaps=gradcam.heatmaps,
    )
    KIND.write_manifest(out_dir)
    return entry


def read_evaluation(folder: Path, what: str = "--evaluation") -> Evaluation:
    """Opens an evaluation folder and checks its entry against itself and against predictions.csv."""
    folder = KIND.check(folder, what)
    entry = read_json(folder / METRICS_FILE, KIND.command)
    _check_entry(entry, folder)
    return Evaluation(
        folder,
        entry,
        read_json(folder / DATASET_FILE, KIND.command),
        read_json(folder / SPLIT_FILE, KIND.command),
    )


def ui_metrics(entry: VariantEntry, prefix: str = "") -> dict[str, float]:
    """The UI scalars (UI_METRICS) of an entry, keyed `<prefix>_<metric>` when a prefix is given.

    An undefined value (no COVID image evaluated, say) is left out: a Metrics artifact takes numbers only.
    """
    covid = entry["per_class"]["COVID"]
    values = dict(entry, covid_sensitivity=covid["recall"], covid_specificity=covid["specificity"])
    return {
        f"{prefix}_{name}" if prefix else name: float(values[name])
        for name in UI_METRICS
        if values[name] is not None
    }


def _check_entry(entry, folder: Path) -> None:
    path = folder / METRICS_FILE
    fix = f"run `cxr evaluate --out {folder}` again"
    if not isinstance(entry, dict):
        raise CxrError(f"{path} must hold one JSON object (a variant entry); {fix}")
    missing = sorted(key for key in VariantEntry.__required_keys__ if key not in entry)
    if missing:
        raise CxrError(f"{path} lacks {missing}; {fix}")
    matrix = entry["confusion_matrix"]
    n = len(CLASS_NAMES)
    if not (
        isinstance(matrix, list)
        and len(matrix) == n
        and all(isinstance(row, list) and len(row) == n for row in matrix)
        and all(isinstance(v, int) and v >= 0 for row in matrix for v in row)
    ):
        raise CxrError(f"{path}: confusion_matrix must be {n}×{n} non-negative counts; {fix}")
    total = sum(map(sum, matrix))
    trace = sum(matrix[k][k] for k in range(n))
    if total == 0 or total != entry["n_eval"]:
        raise CxrError(
            f"{path}: n_eval {entry['n_eval']} differs from the confusion matrix total {total}; {fix}"
        )
    if not math.isclose(entry["accuracy"], trace / total, rel_tol=0, abs_tol=1e-9):
        raise CxrError(
            f"{path}: accuracy {entry['accuracy']} is not trace/sum of its confusion matrix "
            f"({trace}/{total} = {trace / total:.6f}); {fix}"
        )
    per_class = entry["per_class"]
    if not isinstance(per_class, dict) or set(per_class) != set(CLASS_NAMES):
        raise CxrError(f"{path}: per_class must have exactly the classes {list(CLASS_NAMES)}; {fix}")
    for k, name in enumerate(CLASS_NAMES):
        if per_class[name].get("support") != sum(matrix[k]):
            raise CxrError(f"{path}: support of {name} is not the row sum of the confusion matrix; {fix}")
    recomputed = metrics_from_predictions(folder / PREDICTIONS_FILE)
    for key in (*MetricBlock.__annotations__, "statistics"):
        if not _same(entry[key], recomputed[key]):
            raise CxrError(f"{path}: {key} disagrees with {folder / PREDICTIONS_FILE}; {fix}")


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b
