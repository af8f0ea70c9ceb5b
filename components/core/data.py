"""The input pipeline: batches of stored pixels for training and prediction.

Pixels come from the ingested dataset's memory map (decoded once at ingest), are resized to the
model's image size per batch and fed as float32 (batch, size, size, 1) in 0..255; the model turns
them into MobileNetV2's 3-channel [-1, 1] input itself (see components/core/model.py).

Training order is a pure function of (seed, epoch): epoch e visits the training rows in
`epoch_order(n, seed, e)`. Keras' own shuffle would restart at the epoch-0 order after a resume;
deriving the order here (and `first_epoch`) is what exact resume after preemption will build on
once the train step checkpoints (not yet: a retried train task starts again at epoch 0).
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


def training_batches(
    dataset: Dataset,
    rows: np.ndarray,
    labels: np.ndarray,
    *,
    image_size: int,
    batch_size: int,
    epochs: int,
    seed: int,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """(images, labels) batches for epochs first_epoch..epochs-1, each epoch in its own seeded order.

    One dataset spans all epochs (pass steps_per_epoch = ceil(len(rows) / batch_size) to fit), so
    no epoch ever borrows another epoch's images and the order never depends on Keras' shuffle.
    """
    orders = np.stack([rows[epoch_order(len(rows), seed, e)] for e in range(first_epoch, epochs)])
    label_of_row = dict(zip(rows.tolist(), labels.tolist(), strict=True))
    order_labels = np.vectorize(label_of_row.__getitem__, otypes=[np.int32])(orders)
    per_epoch = tf.data.Dataset.from_tensor_slices((orders, order_labels))
    batches = per_epoch.flat_map(lambda r, y: tf.data.Dataset.from_tensor_slices((r, y)).batch(batch_size))
    load = _batch_loader(dataset.pixels, image_size)
    return batches.map(lambda r, y: (load(r), y), num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch of n images (the last batch may be smaller)."""
    return -(-n // batch_size)


def eval_batches(
    dataset: Dataset, rows: np.ndarray, *, image_size: int, batch_size: int, labels: np.ndarray | None = None
) -> tf.data.Dataset:
    """Batches of the given rows in the given order (images, or (images, labels) when labels are given)."""
    load = _batch_loader(dataset.pixels, image_size)
    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(rows).batch(batch_size).map(load)
    else:
        ds = tf.data.Dataset.from_tensor_slices((rows, labels)).batch(batch_size)
        ds = ds.map(lambda r, y: (load(r), y))
    return ds.prefetch(2)


def predict_probabilities(model, dataset: Dataset, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities (len(rows), classes) of `model` on the given pixel rows, with progress."""
    image_size = int(model.input_shape[1])
    progress = Progress("predict", len(rows))
    parts = []
    for images in eval_batches(dataset, rows, image_size=image_size, batch_size=batch_size):
        parts.append(model(images, training=False).numpy())
        progress.advance(len(parts[-1]))
    if not parts:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(parts)
