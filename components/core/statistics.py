"""How sure each reported number is: intervals, paired tests and calibration, from predictions alone.

Resampling is a seeded stratified bootstrap over the evaluated images: each of BOOTSTRAP_RESAMPLES
resamples draws, within every true class, as many images as the class has, with replacement (class
supports stay as evaluated). Intervals are the 2.5th and 97.5th percentiles of a metric over the
resamples in which it is defined. Proportions of the COVID-vs-rest table get Wilson intervals
(statsmodels); variants are compared on the same images with McNemar's exact test (statsmodels)
and a paired bootstrap (the same resampled images for both). The arithmetic of single metrics is
scikit-learn's; undefined values are None, never 0 (a class with no images has no recall, a class
with no negatives no specificity; both are left out of macro averages).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_curve
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 2026
CONFIDENCE = 0.95
CALIBRATION_BINS = 15  # equal-width bins of the top-class probability
ROC_POINTS = 101  # ROC curves are stored at this many false-positive rates


def bootstrap_indices(
    y_true: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """(resamples, n) row indices: a stratified bootstrap by true class (see the module docstring)."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(y_true)), dtype=np.int64)
    position = 0
    for k in np.unique(y_true):
        members = np.flatnonzero(y_true == k)
        out[:, position : position + len(members)] = members[
            rng.integers(0, len(members), (resamples, len(members)))
        ]
        position += len(members)
    return out


def confusion_matrices(
    y_true: np.ndarray, y_pred: np.ndarray, indices: np.ndarray, classes: int
) -> np.ndarray:
    """(resamples, classes, classes) confusion matrices (rows true, columns predicted) of each resample."""
    codes = np.asarray(y_true)[indices] * classes + np.asarray(y_pred)[indices]
    offsets = np.arange(len(indices))[:, None] * classes * classes
    counts = np.bincount((codes + offsets).ravel(), minlength=len(indices) * classes * classes)
    return counts.reshape(len(indices), classes, classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def matrix_metrics(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of confusion matrices (any leading shape), NaN where undefined.

    Per class (last axis): precision = TP / predicted (undefined with no predictions of it), recall =
    TP / support (undefined without support), specificity = TN / negatives (undefined without
    negatives), F1 = 2TP / (2TP + FP + FN) (undefined when the class is neither present nor predicted).
    Macro-F1 averages F1 over the classes present (support > 0); weighted-F1 weights it by support.
    """
    m = np.asarray(matrices, dtype=np.float64)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    support, predicted = m.sum(axis=-1), m.sum(axis=-2)
    total = m.sum(axis=(-2, -1))[..., None]
    fp, fn = predicted - tp, support - tp
    tn = total - tp - fp - fn
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    present = support > 0
    with np.errstate(invalid="ignore"):
        macro = np.where(present, np.nan_to_num(f1), 0).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
        weighted = (np.nan_to_num(f1) * support).sum(axis=-1) / np.maximum(support.sum(axis=-1), 1)
    return {
        "accuracy": _ratio(tp.sum(axis=-1), total[..., 0]),
        "macro_f1": macro,
        "weighted_f1": weighted,
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
        "specificity": _ratio(tn, tn + fp),
        "f1": f1,
    }


def interval(values: np.ndarray) -> list[float] | None:
    """The CONFIDENCE percentile interval of the defined (non-NaN) values; None when none is defined."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def metric_intervals(
    y_true, y_pred, class_names: tuple[str, ...], *, indices: np.ndarray | None = None
) -> dict:
    """Bootstrap intervals of accuracy, macro- and weighted-F1 and every per-class metric."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    indices = bootstrap_indices(y_true) if indices is None else indices
    metrics = matrix_metrics(confusion_matrices(y_true, y_pred, indices, len(class_names)))
    per_class = {
        name: {key: interval(metrics[key][:, k]) for key in ("precision", "recall", "f1", "specificity")}
        for k, name in enumerate(class_names)
    }
    return {key: interval(metrics[key]) for key in ("accuracy", "macro_f1", "weighted_f1")} | {
        "per_class": per_class,
        "resamples": int(len(indices)),
        "confidence": CONFIDENCE,
    }


def wilson(successes: int, trials: int) -> list[float] | None:
    """Wilson score interval of a proportion; None with no trials."""
    if trials == 0:
        return None
    low, high = proportion_confint(successes, trials, alpha=1 - CONFIDENCE, method="wilson")
    return [float(low), float(high)]


def one_vs_rest(y_true, y_pred, positive: int) -> dict:
    """Sensitivity, specificity, PPV and NPV of one class against the rest, each with a Wilson interval."""
    y_true, y_pred = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    tp, fn = int((y_true & y_pred).sum()), int((y_true & ~y_pred).sum())
    tn, fp = int((~y_true & ~y_pred).sum()), int((~y_true & y_pred).sum())

    def proportion(successes: int, trials: int) -> dict:
        return {
            "value": successes / trials if trials else None,
            "interval": wilson(successes, trials),
            "successes": successes,
            "trials": trials,
        }

    return {
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
        "sensitivity": proportion(tp, tp + fn),
        "specificity": proportion(tn, tn + fp),
        "ppv": proportion(tp, tp + fp),
        "npv": proportion(tn, tn + fn),
    }


def auc_resampled(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC (Mann-Whitney) of each row of (resamples, n) labels and scores; NaN where one side is empty."""
    positive = np.atleast_2d(positive).astype(bool)
    ranks = rankdata(np.atleast_2d(scores), axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    rank_sum = np.where(positive, ranks, 0).sum(axis=1)
    return _ratio(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg)


def roc_summary(
    y_true, probabilities, class_names: tuple[str, ...], *, indices: np.ndarray | None = None
) -> dict:
    """One-vs-rest ROC-AUC per class with a bootstrap interval, and each ROC curve at ROC_POINTS rates.

    The curve is sampled at evenly spaced false-positive rates (true-positive rate and probability
    threshold interpolated), so it stays small in every artifact however many images were scored.
    """
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities, dtype=np.float64)
    indices = bootstrap_indices(y_true) if indices is None else indices
    out = {}
    grid = np.linspace(0, 1, ROC_POINTS)
    for k, name in enumerate(class_names):
        positive, scores = y_true == k, probabilities[:, k]
        if positive.all() or not positive.any():
            out[name] = {"auc": None, "interval": None, "fpr": None, "tpr": None, "thresholds": None}
            continue
        fpr, tpr, thresholds = roc_curve(positive, scores)
        out[name] = {
            "auc": float(auc_resampled(positive, scores)[0]),
            "interval": interval(auc_resampled(positive[indices], scores[indices])),
            "fpr": grid.round(4).tolist(),
            "tpr": np.interp(grid, fpr, tpr).round(4).tolist(),
            "thresholds": np.interp(grid, fpr, np.minimum(thresholds, 1.0)).round(4).tolist(),
        }
    return out


def calibration(y_true, probabilities, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error (top-class, equal-width bins), multi-class Brier score, reliability bins."""
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities, dtype=np.float64)
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    correct = predicted == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    reliability, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            ece += members.mean() * gap
            reliability.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(members.sum()),
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                }
            )
    onehot = np.eye(probabilities.shape[1])[y_true]
    return {
        "ece": float(ece),
        "brier": float(((probabilities - onehot) ** 2).sum(axis=1).mean()),
        "bins": bins,
        "reliability": reliability,
    }


def compare(y_true, pred_a, pred_b, classes: int, *, indices: np.ndarray | None = None) -> dict:
    """Variant A against variant B on the same images.

    Returns the accuracy and macro-F1 differences (A − B) with paired bootstrap intervals, and McNemar's
    exact test on the images only one of them gets right.
    """
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    indices = bootstrap_indices(y_true) if indices is None else indices
    full = np.arange(len(y_true))[None, :]
    a = matrix_metrics(confusion_matrices(y_true, pred_a, np.concatenate([full, indices]), classes))
    b = matrix_metrics(confusion_matrices(y_true, pred_b, np.concatenate([full, indices]), classes))
    right_a, right_b = pred_a == y_true, pred_b == y_true
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    table = [[int((right_a & right_b).sum()), only_a], [only_b, int((~right_a & ~right_b).sum())]]
    test = mcnemar(table, exact=True)
    return {
        key: {"difference": float(a[key][0] - b[key][0]), "interval": interval(a[key][1:] - b[key][1:])}
        for key in ("accuracy", "macro_f1")
    } | {"mcnemar": {"only_first_right": only_a, "only_second_right": only_b, "p_value": float(test.pvalue)}}


def excludes_zero(value_interval: list[float] | None) -> bool:
    """True when an interval of a difference lies wholly above or below zero."""
    return value_interval is not None and (value_interval[0] > 0 or value_interval[1] < 0)


def variant_statistics(y_true, probabilities, class_names: tuple[str, ...], positive: int = 0) -> dict:
    """Everything uncertain about one variant's predictions.

    Metric intervals, the `positive`-vs-rest table, ROC per class and calibration; one bootstrap serves
    the metric and the AUC intervals.
    """
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=1)
    indices = bootstrap_indices(y_true)
    return {
        "intervals": metric_intervals(y_true, y_pred, class_names, indices=indices),
        f"{class_names[positive]}_vs_rest": one_vs_rest(y_true, y_pred, positive),
        "roc": roc_summary(y_true, probabilities, class_names, indices=indices),
        "calibration": calibration(y_true, probabilities),
    }
