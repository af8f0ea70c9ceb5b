"""Metrics arithmetic, the prediction file, and the evaluate step end to end on a tiny model."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from components.artifacts.dataset import dataset_object, open_dataset
from components.artifacts.evaluation import (
    PREDICTION_COLUMNS,
    VariantEntry,
    metrics_from_predictions,
    write_predictions,
)
from components.artifacts.model import write_model_folder
from components.artifacts.split import read_split
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.metrics import compute_metrics, labels_from_confusion_matrix
from components.evaluate import evaluate
from components.report import report
from components.split import split
from tests.factories import write_dataset

COUNTS = {"COVID": 10, "Lung_Opacity": 10, "Normal": 14, "Viral Pneumonia": 6}
TRAIN_RECORD = {
    "variant": "model2",
    "title": "FC head + last conv",
    "trainable_layers": ["Conv_1", "head"],
    "trainable_params": 1234,
    "total_params": 5678,
    "epochs": 2,
    "train_seconds": 1.5,
    "weights": "none",
    "image_size": 16,
    "batch_size": 8,
    "learning_rate": 0.001,
    "seed": 3,
}
HISTORY = {"loss": [1.2, 0.9], "accuracy": [0.4, 0.6], "val_loss": [1.1, 1.0], "val_accuracy": [0.5, 0.55]}


def test_metrics_match_hand_computed_values_with_a_class_absent():
    # true:  3 COVID, 2 Lung_Opacity, 4 Normal, no Viral Pneumonia; one Normal predicted as Viral Pneumonia
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 3]
    m = compute_metrics(np.array(y_true), np.array(y_pred))
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 3, 1], [0, 0, 0, 0]]
    assert m["n_eval"] == 9
    assert m["accuracy"] == pytest.approx(6 / 9)
    expected = {  # precision, recall, f1, specificity, support
        "COVID": (1.0, 2 / 3, 0.8, 6 / 6, 3),
        "Lung_Opacity": (0.5, 0.5, 0.5, 6 / 7, 2),
        "Normal": (0.75, 0.75, 0.75, 4 / 5, 4),
        "Viral Pneumonia": (0.0, None, 0.0, 8 / 9, 0),  # no image of it: no recall
    }
    assert list(m["per_class"]) == list(CLASS_NAMES)
    for name, (precision, recall, f1, specificity, support) in expected.items():
        assert m["per_class"][name] == pytest.approx(
            {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "specificity": specificity,
                "support": support,
            }
        )
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 0.75) / 3)  # over the classes that have images
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 4 * 0.75) / 9)
    json.dumps(m)  # plain Python types only
    assert all(type(v) is int for row in m["confusion_matrix"] for v in row)
    assert type(m["per_class"]["COVID"]["support"]) is int and type(m["accuracy"]) is float


def test_labels_from_confusion_matrix_reproduce_it():
    matrix = [[3, 0, 1, 0], [0, 0, 0, 0], [2, 1, 5, 0], [0, 0, 0, 4]]
    assert compute_metrics(*labels_from_confusion_matrix(matrix))["confusion_matrix"] == matrix


def test_prediction_file_round_trips_and_rejects_a_tampered_file(tmp_path):
    path = tmp_path / "predictions.csv"
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.2, 0.6], [0.2, 0.5, 0.2, 0.1]], dtype=np.float32)
    write_predictions(path, ["a.png", "b c.png", "d.png"], [0, 3, 2], probs)
    frame = pd.read_csv(path)
    assert tuple(frame.columns) == PREDICTION_COLUMNS
    assert list(frame["predicted_class"]) == ["COVID", "Viral Pneumonia", "Lung_Opacity"]
    np.testing.assert_array_equal(frame[[f"prob_{c}" for c in CLASS_NAMES]].to_numpy(), probs)
    assert metrics_from_predictions(path)["confusion_matrix"] == [
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
    ]

    frame.loc[0, "predicted_class"] = "Normal"
    frame.to_csv(path, index=False)
    with pytest.raises(CxrError, match="disagrees with the probabilities"):
        metrics_from_predictions(path)
    frame.drop(columns=["prob_Normal"]).to_csv(path, index=False)
    with pytest.raises(CxrError, match="lacks columns"):
        metrics_from_predictions(path)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    write_dataset(root / "ds", COUNTS, size=16)
    split(root / "ds", root / "split_test", val_fraction=0.25, test_fraction=0.25, seed=1)
    split(root / "ds", root / "split_val", val_fraction=0.3, seed=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Flatten(),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    write_model_folder(root / "model", model.save, HISTORY, TRAIN_RECORD)
    return root


def test_evaluate_writes_predictions_metrics_and_dataset_from_the_test_side(prepared, capfd):
    out = prepared / "eval"
    entry = evaluate(prepared / "ds", prepared / "split_test", prepared / "model", out, batch_size=4)
    test_ids = read_split(prepared / "split_test").sides["test"]

    frame = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert tuple(frame.columns) == (
        "id",
        "true_class",
        "predicted_class",
        "prob_COVID",
        "prob_Lung_Opacity",
        "prob_Normal",
        "prob_Viral Pneumonia",
    )
    assert list(frame["id"]) == test_ids
    assert list(frame["true_class"]) == [i.split("/")[0] for i in test_ids]
    probs = frame[[f"prob_{c}" for c in CLASS_NAMES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    assert json.loads((out / "metrics.json").read_text()) == entry
    assert set(VariantEntry.__required_keys__) <= set(entry)
    assert entry["eval_side"] == "test" and entry["n_eval"] == len(test_ids)
    assert {k: entry[k] for k in TRAIN_RECORD} == TRAIN_RECORD
    assert entry["history"] == HISTORY
    cm = np.array(entry["confusion_matrix"])
    assert entry["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert sum(m["support"] for m in entry["per_class"].values()) == entry["n_eval"] == cm.sum()
    assert {
        k: entry[k] for k in metrics_from_predictions(out / "predictions.csv")
    } == metrics_from_predictions(out / "predictions.csv")
    assert json.loads((out / "dataset.json").read_text()) == dataset_object(
        open_dataset(prepared / "ds").summary
    )
    err = capfd.readouterr().err
    assert "predict:" in err and "evaluate: model2 accuracy" in err

    first = {name: (out / name).read_bytes() for name in ("predictions.csv", "metrics.json", "dataset.json")}
    evaluate(prepared / "ds", prepared / "split_test", prepared / "model", out, batch_size=4)
    assert {name: (out / name).read_bytes() for name in first} == first
    assert sorted(p.name for p in out.iterdir()) == [
        "artifact.json",
        "dataset.json",
        "gradcam.npz",
        "metrics.json",
        "predictions.csv",
        "split.json",
    ]

    comparison = report([out], prepared / "report")
    assert comparison["best_variant"] == "model2" and comparison["variants"] == [entry]


def test_evaluate_uses_validation_ids_when_the_split_has_no_test_side(prepared):
    entry = evaluate(prepared / "ds", prepared / "split_val", prepared / "model", prepared / "eval_val")
    assert entry["eval_side"] == "val"
    assert entry["n_eval"] == len(read_split(prepared / "split_val").sides["val"])


def test_evaluate_rejects_missing_or_invalid_inputs_with_one_line(prepared, tmp_path):
    ds, sp, model = prepared / "ds", prepared / "split_test", prepared / "model"
    plain = tmp_path / "plain"
    plain.mkdir()
    bad_model = tmp_path / "bad_model"
    write_model_folder(bad_model, lambda path: path.write_bytes(b"not a zip"), HISTORY, TRAIN_RECORD)
    no_record = tmp_path / "no_record"
    write_model_folder(no_record, lambda path: path.write_bytes(b"not a zip"), HISTORY, TRAIN_RECORD)
    (no_record / "train.json").unlink()
    write_dataset(tmp_path / "other_ds", dict.fromkeys(CLASS_NAMES, 6), size=16)
    split(tmp_path / "other_ds", tmp_path / "other_split", val_fraction=0.5, seed=1)
    cases = [
        (
            (ds, sp, tmp_path / "missing", tmp_path / "o1"),
            "--model .*missing: no such folder; run `cxr train",
        ),
        ((ds, sp, no_record, tmp_path / "o2"), "model artifact lacks train.json; run `cxr train"),
        ((ds, sp, bad_model, tmp_path / "o3"), "cannot load .*model.keras"),
        (
            (tmp_path / "nods", sp, model, tmp_path / "o4"),
            "--dataset .*nods: no such folder; run `cxr ingest",
        ),
        ((ds, plain, model, tmp_path / "o5"), "is not a split artifact .*; run `cxr split"),
        ((ds, ds, model, tmp_path / "o6"), "--split .*ds holds a dataset artifact, expected a split"),
        ((ds, tmp_path / "other_split", model, tmp_path / "o7"), "made from another dataset"),
    ]
    for args, message in cases:
        with pytest.raises(CxrError, match=message) as caught:
            evaluate(*args)
        assert "\n" not in str(caught.value)
