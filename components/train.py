"""Fine-tunes one variant of MobileNetV2 on the training side of a split.

Output folder D: D/model.keras (the final model), D/history.json (loss, accuracy, val_loss,
val_accuracy per epoch) and D/train.json (variant, trainable_layers, trainable_params,
total_params, epochs, train_seconds, weights, and the settings used).
"""


import time
from pathlib import Path

import keras
import tensorflow as tf
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.core import data
from components.core.artifacts import component
from components.core.checks import check_training_settings
from components.core.dataset import open_dataset, write_json
from components.core.model import (
    build_model,
    count_params,
    resolve_weights,
    trainable_layer_names,
)
from components.core.progress import log
from components.core.variants import get_variant
from components.split import load_split, split_summary

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def train(dataset_dir: Path, split_dir: Path, out_dir: Path, *, variant: str, epochs: int = 20,
          batch_size: int = 16, learning_rate: float = 1e-3, image_size: int = 224,
          weights: str = "imagenet", weights_sha256: str | None = None, seed: int = 42,
          devices: list[str] | None = None) -> dict:
    """Trains `variant` on the split's training ids, validating on its validation ids each epoch.

    Args:
        dataset_dir: an ingested dataset folder.
        split_dir: a split folder of that dataset.
        out_dir: where model.keras, history.json and train.json go (replaced on rerun).
        variant: "model1", "model2" or "model3" (DESIGN.md §1).
        epochs: passes over the training side.
        batch_size: global batch size (split across devices under MirroredStrategy).
        learning_rate: Adam's learning rate.
        image_size: square model input in pixels (the stored pixels are resized per batch).
        weights: "imagenet", "none", "demo", a local backbone weights file or a gs:// URI.
        weights_sha256: expected sha256 of a weights file, checked when given.
        seed: seeds weight initialisation, dropout and the per-epoch order of the training images.
        devices: devices to mirror over; default: every GPU when more than one is visible.

    Returns:
        The record written to train.json.
    """
    spec = get_variant(variant)
    check_training_settings(epochs, batch_size, image_size)
    dataset = open_dataset(dataset_dir)
    sides = load_split(split_dir)
    train_rows, val_rows = dataset.rows_for(sides["train"]), dataset.rows_for(sides["val"])
    train_labels, val_labels = dataset.labels_for(train_rows), dataset.labels_for(val_rows)
    resolved_weights = resolve_weights(weights, image_size=image_size, sha256=weights_sha256)

    keras.utils.set_random_seed(seed)
    strategy = _strategy(devices)
    log(f"train {variant}: {len(train_rows)} training / {len(val_rows)} validation images, "
        f"{epochs} epochs, batch {batch_size}, image {image_size}px, weights {weights}, "
        f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__})")
    with strategy.scope():
        model = build_model(spec, image_size=image_size, weights=resolved_weights)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    train_batches = data.training_batches(dataset, train_rows, train_labels, image_size=image_size,
                                          batch_size=batch_size, epochs=epochs, seed=seed)
    val_batches = data.eval_batches(dataset, val_rows, image_size=image_size, batch_size=batch_size,
                                    labels=val_labels)
    epoch_log = EpochLog(variant, epochs)
    started = time.perf_counter()
    fit = model.fit(train_batches, epochs=epochs,
                    steps_per_epoch=data.steps_per_epoch(len(train_rows), batch_size),
                    validation_data=val_batches, shuffle=False, verbose=0,
                    callbacks=[epoch_log])
    train_seconds = time.perf_counter() - started

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    history = {key: [float(v) for v in fit.history[key]] for key in HISTORY_KEYS}
    write_json(out_dir / "history.json", history)
    record = {
        "variant": spec.id,
        "title": spec.title,
        "trainable_layers": trainable_layer_names(model),
        "trainable_params": count_params(model.trainable_weights),
        "total_params": count_params(model.weights),
        "epochs": epochs,
        "train_seconds": round(train_seconds, 3),
        "epoch_seconds": [round(t, 3) for t in epoch_log.seconds],
        "weights": weights,
        "image_size": image_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "replicas": strategy.num_replicas_in_sync,
        "dataset_fingerprint": dataset.summary.get("fingerprint"),
        "split_fingerprint": split_summary(split_dir).get("split_fingerprint"),
        "tensorflow": tf.__version__,
    }
    write_json(out_dir / "train.json", record)
    log(f"train {variant}: done in {train_seconds:.1f} s, final val_accuracy "
        f"{history['val_accuracy'][-1]:.3f}; wrote {out_dir / 'model.keras'}")
    return record


class EpochLog(keras.callbacks.Callback):
    """One console line per epoch: the variant, epoch, losses, accuracies and seconds."""

    def __init__(self, variant: str, epochs: int):
        super().__init__()
        self.variant, self.epochs = variant, epochs
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.seconds.append(time.perf_counter() - self._started)
        values = " ".join(f"{k}={logs[k]:.4f}" for k in HISTORY_KEYS if k in logs)
        log(f"train {self.variant}: epoch {epoch + 1}/{self.epochs} {values} ({self.seconds[-1]:.1f} s)")


def _strategy(devices: list[str] | None) -> tf.distribute.Strategy:
    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] if len(gpus) > 1 else None
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


@component
def train_op(dataset: Input[Dataset], split_ids: Input[Artifact], model: Output[Model], variant: str,
             epochs: int, batch_size: int, learning_rate: float, image_size: int, weights: str, seed: int):
    """Fine-tunes one variant on the split's training side (the pipeline gives it 2 x T4).

    Consumes the ingested `dataset` and `split_ids`; produces `model`, a folder with model.keras,
    history.json and train.json. The variant name and parameter counts travel in its metadata.
    """
    from pathlib import Path

    from components.train import train

    record = train(Path(dataset.path), Path(split_ids.path), Path(model.path), variant=variant,
                   epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   image_size=image_size, weights=weights, seed=seed)
    model.metadata.update({key: record[key] for key in (
        "variant", "title", "trainable_params", "total_params", "epochs", "train_seconds", "replicas")})
