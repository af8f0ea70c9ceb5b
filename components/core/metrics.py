"""Classification metrics and the prediction file every reported number is derived from.

`evaluate` writes one predictions.csv per variant; `metrics_from_predictions` turns that file (and
nothing else) into the metric block of a `comparison.json` variant entry, so accuracy equals
trace/sum of the confusion matrix and tables, plots and KFP metrics agree by construction.

predictions.csv columns: id, true_class, predicted_class, then `prob_<class name>` for every class
in CLASS_NAMES order (softmax probabilities; predicted_class is their argmax).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from components.core.classes import CLASS_NAMES
from components.core.dataset import write_text
from components.core.errors import CxrError

# The files of an evaluation folder (`cxr evaluate --out`).
PREDICTIONS_FILE = "predictions.csv"
METRICS_FILE = "metrics.json"
DATASET_FILE = "dataset.json"
PROB_COLUMNS: tuple[str, ...] = tuple(f"prob_{name}" for name in CLASS_NAMES)
PREDICTION_COLUMNS: tuple[str, ...] = ("id", "true_class", "predicted_class") + PROB_COLUMNS

# The keys compute_metrics returns, in comparison.json order.
METRIC_KEYS = ("n_eval", "accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix")


def compute_metrics(y_true, y_pred) -> dict:
    """Accuracy, F1 averages, per-class scores and the confusion matrix of one set of predictions.

    All four classes are always reported (a class absent from the data gets zeros, never an error).

    Args:
        y_true: true class indices (positions in CLASS_NAMES).
        y_pred: predicted class indices, same length.

    Returns:
        {"n_eval", "accuracy", "macro_f1", "weighted_f1", "per_class": {class: {"precision",
        "recall", "f1", "specificity", "support"}}, "confusion_matrix": rows = true class,
        columns = predicted, CLASS_NAMES order}, as plain Python ints and floats.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    labels = list(range(len(CLASS_NAMES)))
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= len(labels):
            raise ValueError(f"{name} holds class indices outside 0..{len(labels) - 1}")

    cm = sk_confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    total = int(cm.sum())
    per_class = {}
    for k, name in enumerate(CLASS_NAMES):
        false_positives = int(cm[:, k].sum() - cm[k, k])
        true_negatives = total - int(cm[k, :].sum()) - false_positives
        negatives = true_negatives + false_positives
        per_class[name] = {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "specificity": true_negatives / negatives if negatives else 0.0,
            "support": int(support[k]),
        }
    return {
        "n_eval": total,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
    }


def labels_from_confusion_matrix(matrix) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) class-index arrays that have exactly the given confusion matrix.

    Lets published confusion matrices (which come without predictions) be scored by compute_metrics.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    pairs = [(t, p) for t in range(matrix.shape[0]) for p in range(matrix.shape[1])]
    counts = [int(matrix[t, p]) for t, p in pairs]
    y_true = np.repeat([t for t, _ in pairs], counts)
    y_pred = np.repeat([p for _, p in pairs], counts)
    return y_true, y_pred


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
    frame = pd.DataFrame({
        "id": list(ids),
        "true_class": names[y_true],
        "predicted_class": names[probabilities.argmax(axis=1)],
    })
    for k, column in enumerate(PROB_COLUMNS):
        frame[column] = probabilities[:, k]
    write_text(path, frame.to_csv(index=False))


def read_predictions(path: Path) -> pd.DataFrame:
    """Reads and checks a predictions.csv; a CxrError naming the file when it is not a valid one."""
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path} not found; run `cxr evaluate` to write the predictions")
    try:
        frame = pd.read_csv(path, dtype={"id": str, "true_class": str, "predicted_class": str},
                            keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise CxrError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); "
                       "run `cxr evaluate` again") from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise CxrError(f"{path} lacks columns {missing}; run `cxr evaluate` again")
    if frame.empty:
        raise CxrError(f"{path} holds no predictions; evaluate on a split with images")
    for column in ("true_class", "predicted_class"):
        unknown = sorted(set(frame[column]) - set(CLASS_NAMES))
        if unknown:
            raise CxrError(f"{path}: column {column} has unknown classes {unknown}; "
                           f"expected {list(CLASS_NAMES)}")
    try:
        probs = frame[list(PROB_COLUMNS)].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise CxrError(f"{path}: probability columns are not numbers; run `cxr evaluate` again") from exc
    argmax = np.array(CLASS_NAMES, dtype=object)[probs.argmax(axis=1)]
    disagree = np.flatnonzero(argmax != frame["predicted_class"].to_numpy())
    if len(disagree):
        row = frame.iloc[disagree[0]]
        raise CxrError(f"{path}: predicted_class disagrees with the probabilities in {len(disagree)} rows "
                       f"(first: id {row['id']!r}); run `cxr evaluate` again")
    return frame


def metrics_from_predictions(path: Path) -> dict:
    """The metric block of a variant entry (see compute_metrics), computed from predictions.csv alone.

    Args:
        path: a predictions.csv written by `evaluate`.

    Returns:
        The dict of compute_metrics for the file's true_class and predicted_class columns.
    """
    frame = read_predictions(path)
    index = {name: k for k, name in enumerate(CLASS_NAMES)}
    return compute_metrics(frame["true_class"].map(index).to_numpy(),
                           frame["predicted_class"].map(index).to_numpy())
