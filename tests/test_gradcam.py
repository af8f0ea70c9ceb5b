"""Grad-CAM finds what decides: a model and an image built so the answer is known."""

import keras
import numpy as np

from components.core.gradcam import grad_cam, model_grad_cam, pick_examples
from components.core.model import build_model
from components.core.variants import VARIANTS


def test_the_heat_map_peaks_where_the_decisive_pattern_is():
    """Activations are the image itself (a 1×1 identity convolution); class 0's logit is their mean, so the
    heat map of class 0 is the image: it peaks on the bright patch and is zero elsewhere.
    """
    conv = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones")
    dense = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]))
    image = np.zeros((1, 16, 16, 1), np.float32)
    image[0, 2:5, 10:13, 0] = 1.0  # the decisive pattern, top right

    def logits_of(activations):
        return dense(keras.ops.mean(activations, axis=(1, 2)))

    cam = grad_cam(conv, logits_of, image, [0])[0]
    assert np.unravel_index(cam.argmax(), cam.shape) in {(r, c) for r in range(2, 5) for c in range(10, 13)}
    assert cam.max() == 1.0 and cam[8:, :].max() == 0.0
    assert grad_cam(conv, logits_of, image, [1])[0].max() == 0.0  # class 1 is pushed down by the patch


def test_the_study_models_give_one_map_per_image_over_out_relu():
    model = build_model(VARIANTS["model2"], image_size=64, weights=None)
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 1)).astype("float32")
    cams = model_grad_cam(model, pixels, [0, 1, 2])
    assert cams.shape == (3, 2, 2) and (cams >= 0).all() and (cams <= 1).all()


def test_examples_are_one_right_and_one_wrong_per_class_seeded():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 1, 0, 1, 1, 2, 0, 3])
    chosen = pick_examples(y_true, y_pred, 4, seed=1)
    assert [(y_true[i], y_pred[i] == y_true[i]) for i in chosen] == [
        (0, True),
        (0, False),
        (1, True),
        (2, True),
        (2, False),
        (3, True),
    ]
    assert (pick_examples(y_true, y_pred, 4, seed=1) == chosen).all()
