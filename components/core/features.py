"""Exact feature caching: the frozen prefix runs once per image; each variant trains only its tail.

All three variants freeze everything before block_16_project (DESIGN.md §1). The prefix, up to
PREFIX_LAYER (block_16_depthwise_relu: 7×7×960 at 224 px), is the same function for all of them in
inference mode; `extract_features` runs it once per image, in large batches. What follows is the tail:

    PREFIX_LAYER → block_16_project → block_16_project_BN → Conv_1 → Conv_1_bn → out_relu → head
    model3 trains  from block_16_project on
    model2 trains  from Conv_1 on (block_16_project and its BN stay frozen)
    model1 trains  the head alone

A variant's frozen stretch between the cache and its first trainable layer (its bridge) runs once per
image too (`variant_inputs`): model2 trains on 7×7×320 tensors, model1 on the pooled 1280-d vector.
The tail model calls exactly the full model's layers (shared weights, BatchNorm in inference mode),
so it reproduces the full model's outputs, and training it trains the full model, which is what a
model folder saves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from components.core.data import pixel_batches
from components.core.model import Backbone, mobilenet_input
from components.core.progress import Progress
from components.core.training import device_strategy

PREFIX_LAYER = "block_16_depthwise_relu"
TAIL_LAYERS = ("block_16_project", "block_16_project_BN", "Conv_1", "Conv_1_bn", "out_relu")
BRIDGE_CHUNK = 1024  # cached rows per bridge call
_ALIGN = 64  # TensorFlow shares a host buffer only at this alignment


def tail_start(model: keras.Model) -> int:
    """Position in TAIL_LAYERS of the model's first trainable backbone layer (len: only the head trains)."""
    trainable = set(model.get_layer("backbone").trainable_layers)
    return next((i for i, name in enumerate(TAIL_LAYERS) if name in trainable), len(TAIL_LAYERS))


def prefix_shape(image_size: int) -> tuple[int, int, int]:
    """(h, w, channels) of the cached features at `image_size` (7, 7, 960 at 224 px)."""
    side = image_size
    for _ in range(5):  # MobileNetV2 halves the side five times before block_16 (stride 2, "same")
        side = -(-side // 2)
    return (side, side, 960)


def prefix_model(backbone: Backbone, image_size: int) -> keras.Model:
    """Pixels (size, size, 1) in 0..255 → PREFIX_LAYER features, in inference mode."""
    base = backbone.base
    prefix = keras.Model(base.input, base.get_layer(PREFIX_LAYER).output, name="prefix")
    pixels = keras.Input((image_size, image_size, 1), name="pixels")
    return keras.Model(pixels, prefix(mobilenet_input(pixels), training=False), name="feature_prefix")


def bridge_model(model: keras.Model, start: int) -> keras.Model | None:
    """PREFIX_LAYER features → the input of the tail at `start` (None when they are that input already)."""
    if start == 0:
        return None
    base = model.get_layer("backbone").base
    features = keras.Input(base.get_layer(TAIL_LAYERS[0]).input.shape[1:], name="features")
    x = InferenceMode([base.get_layer(name) for name in TAIL_LAYERS[:start]], name="frozen_bridge")(features)
    if start == len(TAIL_LAYERS):
        x = model.get_layer("head_pool")(x)
    return keras.Model(features, x, name="bridge")


def tail_model(model: keras.Model, start: int) -> keras.Model:
    """The tail at `start` (see tail_start) → class probabilities, calling the full model's own layers."""
    base = model.get_layer("backbone").base
    head = model.layers[model.layers.index(model.get_layer("backbone")) + 1 :]
    if start < len(TAIL_LAYERS):
        shape = base.get_layer(TAIL_LAYERS[start]).input.shape[1:]
    else:
        shape, head = head[0].output.shape[1:], head[1:]  # the pooled vector: skip head_pool
    inputs = keras.Input(shape, name="tail_input")
    x = inputs
    if start < len(TAIL_LAYERS):
        x = InferenceMode([base.get_layer(name) for name in TAIL_LAYERS[start:]], name="backbone_tail")(x)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x, name="tail")


def extraction_precision() -> str:
    """The prefix pass's default precision: mixed_float16 on tensor-core GPUs, else float32.

    Tensor cores need compute capability 7.0 or more (the T4 has 7.5). On CPU bfloat16 was slower
    than float32 (bench/micro.py precision).
    """
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [
        tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus
    ]
    return "mixed_float16" if gpus and min(capabilities) >= (7, 0) else "float32"


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to `name` for what is built inside."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def extract_features(
    weights: str | list[np.ndarray] | None,
    image_size: int,
    pixels: np.ndarray,
    rows: np.ndarray,
    write: Callable[[np.ndarray], None],
    *,
    batch_size: int = 64,
    label: str = "features",
    precision: str | None = None,
) -> float:
    """Runs the prefix over `pixels[rows]` in row order and hands each chunk of features to `write`.

    The prefix runs data-parallel over every visible GPU (one device on CPU).

    Args:
        weights: the backbone's weights: what Keras loads (a weights file, "imagenet", None), or
            those of a built Backbone (`get_weights()`), copied.
        image_size: model input side; stored pixels are resized to it (core/data.py resize_pixels).
        pixels: uint8 (images, S, S) stored pixels (a dataset's memory map).
        rows: the pixel rows to run, in the order `write` receives them.
        write: called with each (chunk, h, w, 960) float32 array, in order.
        batch_size: images per forward batch (split across GPUs).
        label: the progress line's label.
        precision: a Keras dtype policy; default extraction_precision().

    Returns:
        The seconds it took.
    """
    strategy = device_strategy()
    with precision_policy(precision or extraction_precision()), strategy.scope():
        backbone = Backbone(image_size, weights=None if isinstance(weights, list) else weights)
        if isinstance(weights, list):
            backbone.set_weights(weights)
        prefix = prefix_model(backbone, image_size)
    batches = pixel_batches(pixels, rows, image_size=image_size, batch_size=batch_size)
    if strategy.num_replicas_in_sync > 1:
        forward = tf.function(lambda images: strategy.gather(strategy.run(prefix, args=(images,)), axis=0))
        batches = strategy.experimental_distribute_dataset(batches)
    else:  # one device: a plain compiled call (the distributed form cost a fifth more CPU here)
        forward = tf.function(lambda images: prefix(images, training=False))
    progress = Progress(label, len(rows))
    started = time.perf_counter()
    for images in batches:
        features = np.asarray(forward(images), dtype=np.float32)
        write(features)
        progress.advance(len(features))
    return time.perf_counter() - started


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array whose buffer TensorFlow can use without copying (see host_tensor)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    buffer = np.empty(size + _ALIGN, dtype=np.uint8)
    offset = -buffer.ctypes.data % _ALIGN
    return buffer[offset : offset + size].view(dtype).reshape(shape)


def host_tensor(array: np.ndarray) -> tf.Tensor:
    """A tf.Tensor on the array's own buffer (no copy: a cache of gigabytes exists once)."""
    if array.ctypes.data % _ALIGN or not array.flags.c_contiguous:
        aligned = aligned_empty(array.shape, array.dtype)
        aligned[...] = array
        array = aligned
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def variant_inputs(
    model: keras.Model,
    start: int,
    read: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rows: np.ndarray,
    cache_shape: tuple[int, ...],
    dtype,
) -> np.ndarray:
    """The tail inputs of `rows`: their cached features through the variant's bridge, in row order.

    Args:
        model: the full model (its frozen bridge layers are used).
        start: see tail_start.
        read: read(rows, out) copies cached features of `rows` into `out` (Features.read_rows).
        rows: pixel rows of the images wanted.
        cache_shape: (h, w, channels) of one cached feature tensor.
        dtype: dtype of the result (the cache's: float16 halves the memory of model3's inputs).

    Returns:
        An aligned (len(rows), *tail input shape) array.
    """
    bridge = bridge_model(model, start)
    if bridge is None:
        return read(rows, aligned_empty((len(rows), *cache_shape), dtype))
    out = aligned_empty((len(rows), *bridge.output.shape[1:]), dtype)
    chunk = np.empty((BRIDGE_CHUNK, *cache_shape), dtype)
    for begin in range(0, len(rows), BRIDGE_CHUNK):
        part = rows[begin : begin + BRIDGE_CHUNK]
        cached = read(part, chunk[: len(part)])
        out[begin : begin + len(part)] = bridge.predict(cached.astype(np.float32), batch_size=256, verbose=0)
    return out


class InferenceMode(keras.layers.Layer):
    """Calls backbone layers in order, always in inference mode, whatever mode its caller runs in.

    A Keras 3 functional model passes its own `training` flag down, overriding a `training=False`
    written at construction (see core/model.py Backbone): a trainable BatchNorm layer of the tail would
    normalise with batch statistics during fit, as it never does in the full model.
    """

    def __init__(self, layers: list[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.inner = list(layers)

    def call(self, inputs):
        """The layers applied in order, training=False."""
        x = inputs
        for layer in self.inner:
            x = layer(x, training=False)
        return x

    def compute_output_shape(self, input_shape):
        """The last layer's output shape."""
        for layer in self.inner:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape


class FeatureLookup(keras.layers.Layer):
    """Row indices → their rows of a host-memory table, as float32 (gathered on the CPU).

    Training on cached features feeds row indices, not tensors: the table is captured by reference in
    the training function, so no input pipeline copies it (tf.data would).
    """

    def __init__(self, table: tf.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.table = table

    def call(self, rows):
        """The float32 rows of the table at `rows`."""
        with tf.device("/cpu:0"):
            return tf.cast(tf.gather(self.table, rows), "float32")

    def compute_output_shape(self, input_shape):
        """(batch, *row shape)."""
        return (*input_shape, *self.table.shape[1:])


def predict_on_features(
    model: keras.Model,
    read: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rows: np.ndarray,
    cache_shape: tuple[int, ...],
    dtype,
    *,
    batch_size: int = 512,
) -> np.ndarray:
    """Softmax probabilities of a full model for `rows`, from their cached features (bridge, then tail).

    Equal to the full model on the images' pixels (within float32 rounding; a float16 cache rounds the
    features first). `read`, `cache_shape` and `dtype` as for variant_inputs.
    """
    start = tail_start(model)
    bridge, tail = bridge_model(model, start), tail_model(model, start)
    progress = Progress("predict", len(rows))
    parts = []
    buffer = np.empty((BRIDGE_CHUNK, *cache_shape), dtype)
    for begin in range(0, len(rows), BRIDGE_CHUNK):
        part = rows[begin : begin + BRIDGE_CHUNK]
        x = read(part, buffer[: len(part)]).astype(np.float32)
        if bridge is not None:
            x = bridge.predict(x, batch_size=batch_size, verbose=0)
        parts.append(tail.predict(x, batch_size=batch_size, verbose=0))
        progress.advance(len(part))
    return np.concatenate(parts) if parts else np.zeros((0, int(model.output_shape[-1])), np.float32)
