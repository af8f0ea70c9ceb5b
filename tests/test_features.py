"""The feature cache is exact: the tail on cached features is the full model, and training on them is
training on pixels (components/core/features.py).
"""

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from components.artifacts import features as features_artifact
from components.artifacts.dataset import open_dataset
from components.artifacts.features import open_features
from components.core import training
from components.core.errors import CxrError
from components.core.features import (
    aligned_empty,
    bridge_model,
    host_tensor,
    predict_on_features,
    prefix_model,
    prefix_shape,
    tail_model,
    tail_start,
)
from components.core.model import build_model, load_model
from components.core.variants import VARIANTS
from components.evaluate import evaluate
from components.featurize import featurize
from components.split import split
from components.train import train
from tests.factories import write_dataset

COUNTS = {"COVID": 12, "Lung_Opacity": 12, "Normal": 16, "Viral Pneumonia": 8}
SIZE = 64  # the prefix output is 2 x 2 x 960 here
SETTINGS = {"epochs": 3, "batch_size": 8, "image_size": SIZE, "weights": "none", "seed": 3}
# Stated tolerances (measured here: 0.0 for float32; 0.024 for float16).
FLOAT32_TOLERANCE = 1e-5
FLOAT16_PROBABILITY_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    write_dataset(root / "ds", COUNTS, size=48)
    split(root / "ds", root / "split", val_fraction=0.25, seed=1)
    return root


def probe_images() -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (12, SIZE, SIZE, 1)).astype("float32")


def max_weight_difference(a, b) -> float:
    return max(float(np.abs(x.numpy() - y.numpy()).max()) for x, y in zip(a.weights, b.weights, strict=True))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prefix_then_tail_is_the_full_model(variant):
    model = build_model(VARIANTS[variant], image_size=SIZE, weights=None)
    pixels = probe_images()
    features = prefix_model(model.get_layer("backbone"), SIZE).predict(pixels, verbose=0)
    assert features.shape[1:] == prefix_shape(SIZE)
    start = tail_start(model)
    bridge = bridge_model(model, start)
    inputs = features if bridge is None else bridge.predict(features, verbose=0)
    tail = tail_model(model, start)
    np.testing.assert_allclose(
        tail.predict(inputs, verbose=0), model.predict(pixels, verbose=0), atol=FLOAT32_TOLERANCE, rtol=0
    )
    assert {w.path for w in tail.trainable_weights} == {w.path for w in model.trainable_weights}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_on_cached_features_is_training_on_pixels(prepared, variant, tmp_path):
    """Same seed, same batch order: the float32 cache ends with the pixel path's weights and predictions."""
    on_pixels = train(
        prepared / "ds",
        prepared / "split",
        tmp_path / "pixels",
        variant=variant,
        feature_cache=False,
        **SETTINGS,
    )
    on_features = train(
        prepared / "ds",
        prepared / "split",
        tmp_path / "features",
        variant=variant,
        feature_dtype="float32",
        **SETTINGS,
    )
    assert on_pixels["feature_cache"] == "off" and on_features["feature_cache"] == "in this step"
    a, b = load_model(tmp_path / "pixels" / "model.keras"), load_model(tmp_path / "features" / "model.keras")
    assert max_weight_difference(a, b) <= FLOAT32_TOLERANCE
    pixels = probe_images()
    np.testing.assert_allclose(
        a.predict(pixels, verbose=0), b.predict(pixels, verbose=0), atol=FLOAT32_TOLERANCE
    )
    history = [json.loads((tmp_path / side / "history.json").read_text()) for side in ("pixels", "features")]
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history[0][key], history[1][key], atol=1e-5)


@pytest.mark.slow
def test_a_float16_cache_stays_within_its_stated_tolerance(prepared, tmp_path):
    settings = dict(SETTINGS, variant="model3")
    train(prepared / "ds", prepared / "split", tmp_path / "f32", feature_dtype="float32", **settings)
    train(prepared / "ds", prepared / "split", tmp_path / "f16", feature_dtype="float16", **settings)
    a, b = load_model(tmp_path / "f32" / "model.keras"), load_model(tmp_path / "f16" / "model.keras")
    pixels = probe_images()
    assert (
        np.abs(a.predict(pixels, verbose=0) - b.predict(pixels, verbose=0)).max()
        <= FLOAT16_PROBABILITY_TOLERANCE
    )


def test_steps_per_execution_changes_nothing(prepared, tmp_path, monkeypatch):
    settings = dict(SETTINGS, variant="model2", epochs=2)
    monkeypatch.setattr(training, "STEPS_PER_EXECUTION", 1)
    train(prepared / "ds", prepared / "split", tmp_path / "one", **settings)
    monkeypatch.setattr(training, "STEPS_PER_EXECUTION", 4)  # does not divide the 5 steps of an epoch
    train(prepared / "ds", prepared / "split", tmp_path / "four", **settings)
    a, b = load_model(tmp_path / "one" / "model.keras"), load_model(tmp_path / "four" / "model.keras")
    assert max_weight_difference(a, b) == 0.0


@pytest.mark.slow
def test_a_features_artifact_serves_train_and_evaluate_with_the_same_numbers(prepared, tmp_path, capfd):
    summary = featurize(prepared / "ds", tmp_path / "features", image_size=SIZE, weights="none")
    assert summary["shape"] == [sum(COUNTS.values()), *prefix_shape(SIZE)] and summary["dtype"] == "float32"
    assert "featurize: done" in capfd.readouterr().err
    # weights=none gives every model its own random backbone: train on this one's features with its file.
    model = build_model(VARIANTS["model2"], image_size=SIZE, weights=None)
    weights_file = tmp_path / "backbone.weights.h5"
    model.get_layer("backbone").base.save_weights(weights_file)
    featurize(prepared / "ds", tmp_path / "features", image_size=SIZE, weights=str(weights_file))
    record = train(
        prepared / "ds",
        prepared / "split",
        tmp_path / "model",
        variant="model2",
        features_dir=tmp_path / "features",
        **dict(SETTINGS, weights=str(weights_file)),
    )
    assert record["feature_cache"] == "features artifact" and record["feature_seconds"] == 0
    from_pixels = evaluate(prepared / "ds", prepared / "split", tmp_path / "model", tmp_path / "eval-pixels")
    from_features = evaluate(
        prepared / "ds",
        prepared / "split",
        tmp_path / "model",
        tmp_path / "eval-features",
        features_dir=tmp_path / "features",
    )
    assert from_features["confusion_matrix"] == from_pixels["confusion_matrix"]
    probabilities = [
        np.loadtxt(tmp_path / side / "predictions.csv", delimiter=",", skiprows=1, usecols=range(3, 7))
        for side in ("eval-pixels", "eval-features")
    ]
    np.testing.assert_allclose(probabilities[0], probabilities[1], atol=FLOAT32_TOLERANCE)


def test_features_of_another_dataset_size_or_backbone_are_refused(prepared, tmp_path):
    featurize(prepared / "ds", tmp_path / "features", image_size=SIZE, weights="none")
    features = open_features(tmp_path / "features")
    fingerprint = open_dataset(prepared / "ds").fingerprint
    features.check_matches(
        dataset_fingerprint=fingerprint, image_size=SIZE, weights="none", weights_sha256=None
    )
    cases = [
        ({"dataset_fingerprint": "0" * 64}, "dataset_fingerprint"),
        ({"image_size": 96}, "image_size"),
        ({"weights": "imagenet"}, "weights"),
    ]
    for change, named in cases:
        wanted = dict(dataset_fingerprint=fingerprint, image_size=SIZE, weights="none", weights_sha256=None)
        with pytest.raises(CxrError, match=f"were made with {named} .*; run `cxr featurize`"):
            features.check_matches(**(wanted | change))
    with pytest.raises(CxrError, match="image_size 64, not 96"):
        train(
            prepared / "ds",
            prepared / "split",
            tmp_path / "m",
            variant="model1",
            features_dir=tmp_path / "features",
            **dict(SETTINGS, image_size=96),
        )


def test_rows_are_read_in_any_order_without_holding_the_file(prepared, tmp_path, monkeypatch):
    featurize(prepared / "ds", tmp_path / "features", image_size=SIZE, weights="none", dtype="float16")
    features = open_features(tmp_path / "features")
    everything = np.load(features.file)
    rows = np.array([5, 2, 3, 4, 40, 0, 41])
    out = np.empty((len(rows), *everything.shape[1:]), everything.dtype)
    np.testing.assert_array_equal(features.read_rows(rows, out), everything[rows])
    # A long run of consecutive rows is read a bounded piece at a time, not in one read of its size.
    row_bytes = everything[0].nbytes
    monkeypatch.setattr(features_artifact, "READ_BYTES", 2 * row_bytes)
    reads = []

    class CountingFile(io.FileIO):
        def readinto(self, view):
            reads.append(len(view))
            return super().readinto(view)

    monkeypatch.setattr(features_artifact, "open", CountingFile, raising=False)
    every_row = np.arange(len(everything))
    out = np.empty_like(everything)
    np.testing.assert_array_equal(features.read_rows(every_row, out), everything)
    assert max(reads) == 2 * row_bytes
    model = build_model(VARIANTS["model1"], image_size=SIZE, weights=None)
    probabilities = predict_on_features(
        model, features.read_rows, rows, everything.shape[1:], everything.dtype
    )
    assert probabilities.shape == (len(rows), 4)


def test_the_training_table_is_shared_with_tensorflow_not_copied():
    table = aligned_empty((8, 2, 2, 960), np.float32)
    table[...] = 1.0
    tensor = host_tensor(table)
    table[3, 0, 0, 0] = 5.0
    assert float(tensor[3, 0, 0, 0]) == 5.0


@pytest.mark.slow
def test_cached_training_under_mirrored_strategy_over_two_cpu_devices(prepared, tmp_path):
    """The 2 x GPU path on cached features runs (one step per execution, keras#19246) on two logical CPUs."""
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from components.train import train
        record = train({str(prepared / "ds")!r}, {str(prepared / "split")!r}, {str(tmp_path / "m")!r},
                       variant="model3", epochs=2, batch_size=8, image_size={SIZE}, weights="none",
                       devices=["/cpu:0", "/cpu:1"])
        print(json.dumps(record))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["replicas"] == 2 and record["feature_cache"] == "in this step"
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))


def test_a_failed_features_write_is_one_line_and_leaves_no_partial_file(tmp_path):
    from components.artifacts.features import FeaturesWriter

    writer = FeaturesWriter(tmp_path / "features", (64, 1, 1, 960), "float32")

    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    real_file, writer._file = writer._file, FullDisk()
    real_file.close()
    with pytest.raises(CxrError, match="cannot write .*No space left on device"):
        for _ in range(64):
            writer.write(np.zeros((1, 1, 1, 960), np.float32))
        writer.close({})
    writer.abort()
    assert not writer.partial.exists()
