"""Fine-tunes one variant of MobileNetV2 on the training side of a split.

Consumes a dataset and a split artifact; produces a model folder (components/artifacts/model.py):
model.keras, history.json and train.json.
"""

import time
from pathlib import Path

import keras
import tensorflow as tf

from components.artifacts.dataset import open_dataset
from components.artifacts.model import TrainRecord, write_model_folder
from components.artifacts.split import read_split
from components.core import data, study
from components.core.checks import check_training_settings
from components.core.model import build_model, count_params, resolve_weights, trainable_layer_names
from components.core.progress import log
from components.core.training import HISTORY_KEYS, EpochLog, device_strategy
from components.core.variants import get_variant


def train(
    dataset_dir: Path,
    split_dir: Path,
    out_dir: Path,
    *,
    variant: str,
    epochs: int = study.EPOCHS,
    batch_size: int = study.BATCH_SIZE,
    learning_rate: float = study.LEARNING_RATE,
    image_size: int = study.IMAGE_SIZE,
    weights: str = "imagenet",
    weights_sha256: str | None = None,
    weights_file: Path | None = None,
    seed: int = study.SEED,
    devices: list[str] | None = None,
) -> TrainRecord:
    """Trains `variant` on the split's training ids, validating on its validation ids each epoch.

    Args:
        dataset_dir: an ingested dataset folder.
        split_dir: a split folder of that dataset.
        out_dir: the model folder to write (replaced on rerun).
        variant: "model1", "model2" or "model3" (DESIGN.md §1).
        epochs: passes over the training side.
        batch_size: global batch size (split across devices under MirroredStrategy).
        learning_rate: Adam's learning rate.
        image_size: square model input in pixels (the stored pixels are resized per batch).
        weights: "imagenet", "none", "demo", a local backbone weights file or a gs:// URI.
        weights_sha256: expected sha256 of a weights file, checked when given.
        weights_file: a local backbone weights file loaded in place of resolving `weights`, which is
            then only recorded (the pipeline's demo-backbone step hands its file over this way).
        seed: seeds weight initialisation, dropout and the per-epoch order of the training images.
        devices: devices to mirror over; default: every GPU when more than one is visible.

    Returns:
        The record written to train.json.
    """
    spec = get_variant(variant)
    check_training_settings(epochs, batch_size, image_size)
    dataset = open_dataset(dataset_dir)
    split = read_split(split_dir)
    train_rows, val_rows = dataset.rows_for(split.sides["train"]), dataset.rows_for(split.sides["val"])
    train_labels, val_labels = dataset.labels_for(train_rows), dataset.labels_for(val_rows)
    if weights_file is not None:
        resolved_weights = str(weights_file)
    else:
        resolved_weights = resolve_weights(weights, image_size=image_size, sha256=weights_sha256)

    keras.utils.set_random_seed(seed)
    strategy = device_strategy(devices)
    log(
        f"train {variant}: {len(train_rows)} training / {len(val_rows)} validation images, "
        f"{epochs} epochs, batch {batch_size}, image {image_size}px, weights {weights}, "
        f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__})"
    )
    with strategy.scope():
        model = build_model(spec, image_size=image_size, weights=resolved_weights)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    train_batches = data.training_batches(
        dataset,
        train_rows,
        train_labels,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
    )
    val_batches = data.eval_batches(
        dataset, val_rows, image_size=image_size, batch_size=batch_size, labels=val_labels
    )
    epoch_log = EpochLog(f"train {variant}", epochs)
    started = time.perf_counter()
    fit = model.fit(
        train_batches,
        epochs=epochs,
        steps_per_epoch=data.steps_per_epoch(len(train_rows), batch_size),
        validation_data=val_batches,
        shuffle=False,
        verbose=0,
        callbacks=[epoch_log],
    )
    train_seconds = time.perf_counter() - started

    history = {key: [float(v) for v in fit.history[key]] for key in HISTORY_KEYS}
    record: TrainRecord = {
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
        "dataset_fingerprint": dataset.fingerprint,
        "split_fingerprint": split.fingerprint,
        "tensorflow": tf.__version__,
    }
    write_model_folder(Path(out_dir), model.save, history, record)
    log(
        f"train {variant}: done in {train_seconds:.1f} s, final val_accuracy "
        f"{history['val_accuracy'][-1]:.3f}; wrote {Path(out_dir)}"
    )
    return record
