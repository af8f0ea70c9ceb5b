"""The three variants: exactly the layers DESIGN.md §1 names train, chosen by name."""

import keras
import numpy as np
import pytest

from components.core.errors import CxrError
from components.core.model import build_model, count_params, load_model, trainable_layer_names
from components.core.variants import VARIANTS, get_variant

HEAD = ["head_dense_1", "head_dense_2", "head_output"]
# MobileNetV2 (alpha 1.0, no top) + head 1280→256→128→4; independent of the input size.
HEAD_PARAMS = (1280 * 256 + 256) + (256 * 128 + 128) + (128 * 4 + 4)
CONV_1 = 320 * 1280 + 2 * 1280  # Conv_1 kernel (no bias) + Conv_1_bn gamma, beta
BLOCK_16_PROJECT = 960 * 320 + 2 * 320  # block_16_project kernel + its BN gamma, beta
BACKBONE_TOTAL = 2_257_984


@pytest.fixture(scope="module")
def models():
    return {v: build_model(VARIANTS[v], image_size=64, weights=None) for v in VARIANTS}


def test_trainable_layers_are_exactly_the_variant_table(models):
    assert trainable_layer_names(models["model1"]) == HEAD
    assert trainable_layer_names(models["model2"]) == ["Conv_1", "Conv_1_bn"] + HEAD
    assert trainable_layer_names(models["model3"]) == (
        ["block_16_project", "block_16_project_BN", "Conv_1", "Conv_1_bn"] + HEAD
    )


def test_parameter_counts(models):
    counts = {v: count_params(m.trainable_weights) for v, m in models.items()}
    assert counts == {
        "model1": HEAD_PARAMS,
        "model2": HEAD_PARAMS + CONV_1,
        "model3": HEAD_PARAMS + CONV_1 + BLOCK_16_PROJECT,
    }
    assert counts["model1"] < counts["model2"] < counts["model3"]
    for m in models.values():
        assert count_params(m.weights) == BACKBONE_TOTAL + HEAD_PARAMS


def test_backbone_runs_batchnorm_in_inference_mode(models):
    """Training-mode calls must not move the frozen backbone's BatchNorm statistics."""
    model = models["model3"]
    bn = model.get_layer("backbone").base.get_layer("Conv_1_bn")
    before = [w.numpy().copy() for w in bn.non_trainable_weights]
    model(np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype("float32"), training=True)
    for b, a in zip(before, bn.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(b, a.numpy())


def test_inside_preprocessing_equals_mobilenet_preprocess_input(models):
    model = models["model1"]
    probe = keras.Model(model.input, model.get_layer("preprocess").output)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 1)).astype("float32")
    expected = keras.applications.mobilenet_v2.preprocess_input(np.repeat(pixels, 3, axis=-1))
    np.testing.assert_allclose(probe(pixels).numpy(), expected, atol=1e-6)


def test_saved_model_reloads_with_its_trainable_layers(models, tmp_path):
    model = models["model2"]
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert trainable_layer_names(loaded) == trainable_layer_names(model)
    x = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 1)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(CxrError, match="model1, model2, model3"):
        get_variant("model4")
