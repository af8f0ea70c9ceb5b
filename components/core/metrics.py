"""Classification metrics of one set of predictions, and the typed metric block they fill.

`compute_metrics` is the one place numbers are computed; the evaluation artifact
(components/artifacts/evaluation.py) feeds it from a predictions.csv and nothing else, so accuracy
equals trace/sum of the confusion matrix and tables, plots and KFP metrics agree by construction.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from components.core.classes import CLASS_NAMES
from components.core.statistics import matrix_metrics


class ClassMetrics(TypedDict):
    """One class's scores, one-vs-rest; None where undefined (see compute_metrics)."""

    precision: float | None
    recall: float | None
    f1: float | None
    specificity: float | None
    support: int


class MetricBlock(TypedDict):
    """What compute_metrics returns: the metric part of a comparison.json variant entry."""

    n_eval: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, ClassMetrics]  # CLASS_NAMES order
    confusion_matrix: list[list[int]]  # rows = true class, columns = predicted, CLASS_NAMES order


def compute_metrics(y_true, y_pred) -> MetricBlock:
    """Accuracy, F1 averages, per-class scores and the confusion matrix of one set of predictions.

    All four classes are always reported. An undefined value is None, never 0 (core/statistics.py
    matrix_metrics: no recall for a class without images, no specificity without negatives, no
    precision for a class never predicted); macro-F1 averages the classes that have images.

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
    m = matrix_metrics(cm)
    per_class = {
        name: {key: _defined(m[key][k]) for key in ("precision", "recall", "f1", "specificity")}
        | {"support": int(cm[k].sum())}
        for k, name in enumerate(CLASS_NAMES)
    }
    return {
        "n_eval": int(cm.sum()),
        "accuracy": float(m["accuracy"]),
        "macro_f1": float(m["macro_f1"]),
        "weighted_f1": float(m["weighted_f1"]),
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
    }


def _defined(value) -> float | None:
    return None if np.isnan(value) else float(value)


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
