"""The input pipeline: the training order, and batches of stored pixels for training and prediction.

Training order is a pure function of (seed, epoch): epoch e visits the n training images in
`epoch_order(n, seed, e)`; `epoch_batches` turns that into batches of positions, which the pixel path
below and the feature-cache path (core/training.py) both follow, so both see the same batches.
Keras' own shuffle would restart at the epoch-0 order after a resume; deriving the order here (and
`first_epoch`) is what exact resume after preemption builds on.

Pixels come from the ingested dataset's memory map (decoded once at ingest), are resized to the
model's image size per batch and fed as float32 (batch, size, size, 1) in 0..255; the model turns
them into MobileNetV2's 3-channel [-1, 1] input itself (see components/core/model.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from components.core.progress import Progress

if TYPE_CHECKING:
    from components.artifacts.dataset import Dataset


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of range(n) that epoch `epoch` visits, reproducible from (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def resize_pixels(pixels, image_size: int) -> tf.Tensor:
    """uint8 (n, S, S) stored pixels → float32 (n, image_size, image_size, 1) model input in 0..255.

    Area resizing (each output pixel averages the stored pixels it covers) when S differs.
    """
    images = tf.convert_to_tensor(np.asarray(pixels)[..., np.newaxis], dtype=tf.float32)
    if images.shape[1] != image_size:
        images = tf.image.resize(images, (image_size, image_size), method="area")
    return images


def _gather(pixels: np.ndarray, rows: np.ndarray, image_size: int) -> tf.Tensor:
    # Memory-map reads are fastest in ascending order; restore the requested order afterwards.
    sort = np.argsort(rows, kind="stable")
    batch = np.empty((len(rows),) + pixels.shape[1:], dtype=np.uint8)
    batch[sort] = pixels[rows[sort]]
    return resize_pixels(batch, image_size)


def _batch_loader(pixels: np.ndarray, image_size: int):
    def load(rows):
        images = tf.py_function(lambda r: _gather(pixels, r.numpy(), image_size), [rows], tf.float32)
        images.set_shape((None, image_size, image_size, 1))
        return images

    return load


def epoch_batches(labels: np.ndarray, *, batch_size: int, seed: int, epoch: int) -> tf.data.Dataset:
    """(positions, labels) batches of one epoch over range(len(labels)), in epoch_order(n, seed, epoch).

    One finite dataset per epoch: Keras' steps_per_execution then never runs an epoch into the next.
    """
    labels = np.asarray(labels, dtype=np.int32)
    order = epoch_order(len(labels), seed, epoch)
    return tf.data.Dataset.from_tensor_slices((order.astype(np.int32), labels[order])).batch(batch_size)


def training_batches(
    dataset: Dataset,
    rows: np.ndarray,
    labels: np.ndarray,
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    epoch: int,
) -> tf.data.Dataset:
    """(images, labels) batches of pixel rows `rows` for one epoch, in the order of epoch_batches."""
    batches = epoch_batches(labels, batch_size=batch_size, seed=seed, epoch=epoch)
    rows = tf.constant(rows)
    load = _batch_loader(dataset.pixels, image_size)
    return batches.map(
        lambda p, y: (load(tf.gather(rows, p)), y), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(2)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of n images (the last batch may be smaller)."""
    return -(-n // batch_size)


def pixel_batches(
    pixels: np.ndarray,
    rows: np.ndarray,
    *,
    image_size: int,
    batch_size: int,
    labels: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of pixels[rows] in the given order, loaded and resized ahead of the model.

    Images, or (images, labels) when labels are given.
    """
    load = _batch_loader(pixels, image_size)
    parallel = tf.data.AUTOTUNE
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size).map(load, num_parallel_calls=parallel)
    else:
        ds = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(batch_size)
        ds = ds.map(lambda r, y: (load(r), y), num_parallel_calls=parallel)
    return ds.prefetch(2)


def eval_batches(
    dataset: Dataset, rows: np.ndarray, *, image_size: int, batch_size: int, labels: np.ndarray | None = None
) -> tf.data.Dataset:
    """pixel_batches of an ingested dataset's rows."""
    return pixel_batches(dataset.pixels, rows, image_size=image_size, batch_size=batch_size, labels=labels)


def predict_probabilities(model, dataset: Dataset, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities (len(rows), classes) of `model` on the given pixel rows, with progress."""
    image_size = int(model.input_shape[1])
    progress = Progress("predict", len(rows))
    # A compiled call: eager calls of MobileNetV2 at 224 px held several GB of intermediate tensors.
    forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    parts = []
    for images in eval_batches(dataset, rows, image_size=image_size, batch_size=batch_size):
        parts.append(forward(images).numpy())
        progress.advance(len(parts[-1]))
    if not parts:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(parts)
