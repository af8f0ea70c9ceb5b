"""Statistics with known answers: metrics, undefined values, intervals, tests, calibration, the verdict."""

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from components.core.metrics import compute_metrics
from components.core.statistics import (
    auc_resampled,
    bootstrap_indices,
    calibration,
    compare,
    confusion_matrices,
    interval,
    matrix_metrics,
    metric_intervals,
    one_vs_rest,
    roc_summary,
    wilson,
)
from components.core.verdict import pairwise, verdict

NAMES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")


def test_metrics_agree_with_scikit_learn_where_defined():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 4, 500))
    m = compute_metrics(y_true, y_pred)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=range(4))
    for k, name in enumerate(NAMES):
        assert m["per_class"][name]["precision"] == pytest.approx(precision[k])
        assert m["per_class"][name]["recall"] == pytest.approx(recall[k])
        assert m["per_class"][name]["f1"] == pytest.approx(f1[k])
        assert m["per_class"][name]["support"] == support[k]
    assert m["macro_f1"] == pytest.approx(f1.mean())


def test_undefined_values_are_undefined_not_zero():
    perfect_two_classes = compute_metrics([0, 0, 1, 1], [0, 0, 1, 1])
    assert perfect_two_classes["macro_f1"] == 1.0  # the absent classes are left out of the average
    assert perfect_two_classes["per_class"]["Normal"]["recall"] is None
    only_covid = compute_metrics([0, 0, 0], [0, 0, 1])
    assert only_covid["per_class"]["COVID"]["specificity"] is None  # no negatives
    assert only_covid["per_class"]["Normal"]["precision"] is None  # never predicted
    assert only_covid["per_class"]["Lung_Opacity"]["precision"] == 0.0  # predicted once, wrongly


def test_the_stratified_bootstrap_keeps_every_class_support():
    y = np.array([0] * 30 + [1] * 10 + [3] * 5)
    indices = bootstrap_indices(y, resamples=50, seed=1)
    counts = np.stack([np.bincount(y[row], minlength=4) for row in indices])
    assert (counts == [30, 10, 0, 5]).all()
    matrices = confusion_matrices(y, y, indices, 4)
    assert (matrices.sum(axis=(1, 2)) == len(y)).all()


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    """Simulated evaluations of a classifier that is right with probability 0.8 on 200 images."""
    rng = np.random.default_rng(3)
    covered, repetitions = 0, 200
    for _ in range(repetitions):
        y_true = rng.integers(0, 4, 200)
        y_pred = np.where(rng.random(200) < 0.8, y_true, (y_true + 1) % 4)
        low, high = metric_intervals(
            y_true, y_pred, NAMES, indices=bootstrap_indices(y_true, 400, int(rng.integers(1 << 30)))
        )["accuracy"]
        covered += low <= 0.8 <= high
    assert 0.90 <= covered / repetitions <= 0.99, covered / repetitions


def test_wilson_and_one_vs_rest_on_a_known_table():
    assert wilson(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)  # the textbook 95 % Wilson interval
    assert wilson(0, 0) is None
    table = one_vs_rest([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 0, 2], positive=0)
    assert (table["tp"], table["fn"], table["fp"], table["tn"]) == (2, 1, 1, 2)
    assert table["sensitivity"]["value"] == pytest.approx(2 / 3) and table["ppv"]["value"] == pytest.approx(
        2 / 3
    )


def test_mcnemar_exact_on_constructed_predictions():
    """10 images only the first variant gets right, 2 only the second: the exact binomial p-value."""
    y = np.zeros(40, dtype=int)
    first = np.zeros(40, dtype=int)
    second = np.zeros(40, dtype=int)
    first[:2], second[2:12] = 1, 1  # second wrong on 10, first wrong on 2
    result = compare(y, first, second, 4)
    assert result["mcnemar"]["only_first_right"] == 10 and result["mcnemar"]["only_second_right"] == 2
    assert result["mcnemar"]["p_value"] == pytest.approx(binomtest(2, 12, 0.5).pvalue)
    assert result["accuracy"]["difference"] == pytest.approx(8 / 40)


def test_auc_matches_scikit_learn_and_its_interval_holds_it():
    rng = np.random.default_rng(5)
    positive = rng.random(300) < 0.4
    scores = np.where(positive, rng.normal(1, 1, 300), rng.normal(0, 1, 300))
    assert auc_resampled(positive, scores)[0] == pytest.approx(roc_auc_score(positive, scores))
    probabilities = np.stack(
        [1 / (1 + np.exp(-scores)), 1 - 1 / (1 + np.exp(-scores)), *np.zeros((2, 300))], 1
    )
    roc = roc_summary(np.where(positive, 0, 1), probabilities, NAMES)
    assert roc["COVID"]["interval"][0] <= roc["COVID"]["auc"] <= roc["COVID"]["interval"][1]
    assert roc["Normal"]["auc"] is None and len(roc["COVID"]["fpr"]) == len(roc["COVID"]["thresholds"])


def test_calibration_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.3, 1.0, 20000)
    y_true = np.zeros(20000, dtype=int)
    y_true[rng.random(20000) > confidence] = 1  # right exactly as often as it says
    calibrated = np.stack([confidence, 1 - confidence, np.zeros(20000), np.zeros(20000)], 1)
    assert calibration(y_true, calibrated)["ece"] < 0.02
    overconfident = np.stack(
        [np.full(20000, 0.99), np.full(20000, 0.01), np.zeros(20000), np.zeros(20000)], 1
    )
    result = calibration(y_true, overconfident)
    assert result["ece"] > 0.25 and result["bins"] == 15
    perfect = np.eye(4)[[0, 1, 2, 3]]
    assert calibration(np.arange(4), perfect)["brier"] == 0.0


def test_interval_of_nothing_defined_is_none():
    assert interval(np.array([np.nan, np.nan])) is None
    assert np.isnan(matrix_metrics(np.zeros((4, 4)))["recall"]).all()


def _entries(params):
    return [
        {"variant": v, "macro_f1": f1, "trainable_params": p, "train_seconds": s} for v, f1, p, s in params
    ]


def test_the_verdict_names_a_clear_winner():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 4, 600)
    good = np.where(rng.random(600) < 0.95, y, (y + 1) % 4)
    poor = np.where(rng.random(600) < 0.60, y, (y + 1) % 4)
    pairs = pairwise(["model1", "model2"], y, {"model1": poor, "model2": good}, 4)
    entries = _entries(
        [
            ("model1", compute_metrics(y, poor)["macro_f1"], 100, 10.0),
            ("model2", compute_metrics(y, good)["macro_f1"], 300, 20.0),
        ]
    )
    ruling = verdict(entries, pairs)
    assert ruling["best_variant"] == "model2" and ruling["distinguishable"]
    assert ruling["comparisons"][0].startswith("model1 vs model2: -")
    assert "McNemar p < 0.001" in ruling["comparisons"][0] and "95 % CI" in ruling["comparisons"][0]


def test_indistinguishable_variants_name_the_cheaper():
    rng = np.random.default_rng(12)
    y = rng.integers(0, 4, 300)
    a = np.where(rng.random(300) < 0.8, y, (y + 1) % 4)
    b = a.copy()
    b[:3] = (y[:3] + 2) % 4  # three more errors: not a difference 300 images can show
    pairs = pairwise(["model1", "model3"], y, {"model1": b, "model3": a}, 4)
    entries = _entries(
        [
            ("model1", compute_metrics(y, b)["macro_f1"], 100, 5.0),
            ("model3", compute_metrics(y, a)["macro_f1"], 900, 50.0),
        ]
    )
    ruling = verdict(entries, pairs)
    assert ruling["best_variant"] == "model3" and not ruling["distinguishable"]
    assert ruling["cheapest_equivalent"] == "model1"
    assert "not distinguishable" in ruling["headline"] and "cheapest of them is model1" in ruling["headline"]
