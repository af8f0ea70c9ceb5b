"""Grad-CAM: where a model looks when it scores a class (Selvaraju et al., 2017).

For an image and a class, the gradients of the class's logit (its pre-softmax score) with respect to
a convolutional activation are averaged over space into one weight per channel; the weighted sum of
the channels, through a ReLU, is the heat map, scaled so its peak is 1. For the study's models the
activation is MobileNetV2's last one, out_relu (7 × 7 × 1280 at 224 px): the backbone's output.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from components.core.model import mobilenet_input


def grad_cam(activations_of: Callable, logits_of: Callable, images, classes) -> np.ndarray:
    """Heat maps (n, h, w) in [0, 1] of `classes[i]` for `images[i]`.

    Args:
        activations_of: images → convolutional activations (n, h, w, channels).
        logits_of: activations → pre-softmax class scores (n, classes).
        images: a batch the model takes.
        classes: one class index per image.
    """
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        activations = activations_of(images)
        tape.watch(activations)
        logits = logits_of(activations)
        scores = tf.gather(logits, tf.constant(classes, dtype=tf.int32), axis=1, batch_dims=1)
    gradients = tape.gradient(scores, activations)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
    peaks = cam.reshape(len(cam), -1).max(axis=1)
    return cam / np.where(peaks > 0, peaks, 1.0)[:, None, None]


def model_parts(model: keras.Model) -> tuple[Callable, Callable]:
    """(pixels → out_relu activations, activations → logits) of a full model (core/model.py)."""
    backbone = model.get_layer("backbone")
    head = model.layers[model.layers.index(backbone) + 1 :]
    output = head[-1]

    def activations_of(pixels):
        return backbone(mobilenet_input(pixels), training=False)

    def logits_of(activations):
        x = activations
        for layer in head[:-1]:
            x = layer(x, training=False)
        return tf.matmul(x, output.kernel) + output.bias

    return activations_of, logits_of


def model_grad_cam(model: keras.Model, pixels: np.ndarray, classes) -> np.ndarray:
    """Heat maps of a full model for float32 (n, size, size, 1) pixels in 0..255 (see grad_cam)."""
    return grad_cam(*model_parts(model), pixels, classes)


def pick_examples(y_true: np.ndarray, y_pred: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Positions of a seeded choice of evaluated images, in class order.

    Per class one predicted right and one predicted wrong, when the class has such images.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(classes):
        for right in (True, False):
            pool = np.flatnonzero((y_true == k) & ((y_pred == y_true) == right))
            if len(pool):
                chosen.append(int(rng.choice(pool)))
    return np.array(chosen, dtype=np.int64)
