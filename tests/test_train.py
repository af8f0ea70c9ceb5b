"""The train step: outputs, progress, weights resolution, and the multi-device (mirrored) path."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from components.artifacts.dataset import open_dataset
from components.core.data import epoch_order, training_batches
from components.core.errors import CxrError
from components.core.model import Backbone, load_model, resolve_weights
from components.split import split
from components.train import train
from tests.factories import write_dataset

COUNTS = {"COVID": 12, "Lung_Opacity": 12, "Normal": 16, "Viral Pneumonia": 8}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_dataset(root / "ds", COUNTS, size=40)
    split(root / "ds", root / "split", val_fraction=0.25, seed=1)
    return root


def test_train_writes_model_history_and_record(prepared, capfd):
    out = prepared / "model2"
    record = train(
        prepared / "ds",
        prepared / "split",
        out,
        variant="model2",
        epochs=2,
        batch_size=8,
        image_size=32,
        weights="none",
        seed=3,
    )
    assert {p.name for p in out.iterdir()} >= {"model.keras", "history.json", "train.json"}
    assert json.loads((out / "train.json").read_text()) == record
    history = json.loads((out / "history.json").read_text())
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 2 for v in history.values())
    assert record["trainable_layers"][:2] == ["Conv_1", "Conv_1_bn"]
    assert record["trainable_params"] < record["total_params"]
    assert record["n_train"] + record["n_val"] == sum(COUNTS.values())
    assert record["epochs"] == 2 and record["weights"] == "none" and record["train_seconds"] > 0
    assert len(record["epoch_seconds"]) == 2 and sum(record["epoch_seconds"]) <= record["train_seconds"]
    assert load_model(out / "model.keras").input_shape == (None, 32, 32, 1)
    err = capfd.readouterr().err
    assert "train model2: epoch 1/2" in err and "epoch 2/2" in err


def test_evaluating_on_another_split_than_training_is_refused(prepared, tmp_path):
    """A model's training images must never be scored: evaluate checks the split it was trained on."""
    from components.evaluate import evaluate

    train(
        prepared / "ds",
        prepared / "split",
        tmp_path / "m",
        variant="model1",
        epochs=1,
        batch_size=8,
        image_size=32,
        weights="none",
    )
    split(prepared / "ds", tmp_path / "other-split", val_fraction=0.25, seed=99)
    with pytest.raises(CxrError, match="trained on another split"):
        evaluate(prepared / "ds", tmp_path / "other-split", tmp_path / "m", tmp_path / "e")
    entry = evaluate(prepared / "ds", prepared / "split", tmp_path / "m", tmp_path / "e")
    assert (
        entry["split_fingerprint"]
        == json.loads((prepared / "split" / "summary.json").read_text())["split_fingerprint"]
    )


def test_each_epoch_visits_every_training_image_once_in_a_seeded_order(prepared):
    dataset = open_dataset(prepared / "ds")
    rows = np.arange(10, 30)
    labels = dataset.labels_for(rows)
    batches = [
        b
        for e in range(2)
        for b in training_batches(dataset, rows, labels, image_size=40, batch_size=8, seed=5, epoch=e)
    ]
    assert [len(y) for _, y in batches] == [8, 8, 4, 8, 8, 4]
    for epoch, chunk in enumerate((batches[:3], batches[3:])):
        seen = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in chunk])
        expected = dataset.pixels[rows[epoch_order(len(rows), 5, epoch)], 0, 0]
        np.testing.assert_array_equal(seen, expected)
        np.testing.assert_array_equal(
            np.concatenate([y.numpy() for _, y in chunk]), labels[epoch_order(len(rows), 5, epoch)]
        )
    assert not np.array_equal(epoch_order(20, 5, 0), epoch_order(20, 5, 1))


def test_weights_file_is_loaded_and_checked(tmp_path):
    base = Backbone(32, weights=None).base
    path = tmp_path / "backbone.weights.h5"
    base.save_weights(path)
    assert resolve_weights(str(path)) == str(path)
    loaded = Backbone(32, weights=resolve_weights(str(path))).base
    np.testing.assert_array_equal(
        loaded.get_layer("Conv_1").kernel.numpy(), base.get_layer("Conv_1").kernel.numpy()
    )
    (tmp_path / "backbone.weights.h5.sha256").write_text("0" * 64 + "  backbone.weights.h5\n")
    with pytest.raises(CxrError, match="does not match"):
        resolve_weights(str(path))


def test_unreachable_imagenet_weights_name_the_options(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", offline)
    with pytest.raises(CxrError, match="--weights PATH.*gs://.*cxr demo-weights.*none"):
        Backbone(224, weights="imagenet")


def test_bad_inputs_are_one_line_errors(prepared, tmp_path):
    with pytest.raises(CxrError, match="no such file"):
        resolve_weights(str(tmp_path / "missing.h5"))
    with pytest.raises(CxrError, match="--epochs"):
        train(prepared / "ds", prepared / "split", tmp_path / "m", variant="model1", epochs=0)
    with pytest.raises(CxrError, match="unknown variant"):
        train(prepared / "ds", prepared / "split", tmp_path / "m", variant="model9")
    (tmp_path / "notes").mkdir()
    with pytest.raises(CxrError, match="cxr split"):
        train(prepared / "ds", tmp_path / "notes", tmp_path / "m", variant="model1", weights="none")


def test_training_under_mirrored_strategy_over_two_cpu_devices(prepared, tmp_path):
    """The 2 x GPU path on pixels (MirroredStrategy) runs here on two logical CPU devices."""
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from components.train import train
        record = train({str(prepared / "ds")!r}, {str(prepared / "split")!r}, {str(tmp_path / "m")!r},
                       variant="model1", epochs=2, batch_size=8, image_size=32, weights="none",
                       devices=["/cpu:0", "/cpu:1"], feature_cache=False)
        print(json.dumps(record))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["replicas"] == 2
    assert "MirroredStrategy" in done.stderr
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": float("nan")}, "--learning-rate nan must be a finite number"),
        ({"seed": -1}, "--seed -1 is out of range"),
        ({"image_size": 10000}, "--image-size 10000 is out of range"),
        ({"head_units": (256, 0)}, "--head-units 0 is out of range"),
    ],
)
def test_bad_settings_are_refused_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(CxrError, match=match):
        train(tmp_path / "no-dataset", tmp_path / "no-split", tmp_path / "out", variant="model1", **kwargs)
    assert not (tmp_path / "out").exists()
