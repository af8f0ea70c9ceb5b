"""Fine-tunes one variant of MobileNetV2 on the training side of a split.

Consumes a dataset and a split artifact, and optionally a features artifact; produces a model folder
(components/artifacts/model.py): model.keras (the full model), history.json and train.json.

By default only the variant's tail trains, on cached features (components/core/features.py): from
the features artifact when one is given, else from a prefix pass this step runs itself over the
training and validation images. `feature_cache=False` trains the full model on pixels every step
(the reference the cached path is tested against, and the way for random augmentation).
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components.artifacts.dataset import Dataset, open_dataset
from components.artifacts.features import DEFAULT_DTYPE, open_features
from components.artifacts.model import CHECKPOINTS_FOLDER, TrainRecord, write_model_folder
from components.artifacts.model import KIND as MODEL_KIND
from components.artifacts.split import read_split
from components.core import data, study
from components.core.checkpoints import Checkpoints
from components.core.checks import check_head, check_learning_rate, check_seed, check_training_settings
from components.core.features import aligned_empty, extract_features, prefix_shape, tail_start, variant_inputs
from components.core.model import (
    build_model,
    count_params,
    resolve_weights,
    trainable_layer_names,
    weights_file_sha256,
)
from components.core.progress import log
from components.core.training import compile_model, device_strategy, fit_epochs, fit_on_features
from components.core.variants import get_variant
from components.demo.backbone import is_demo_weights


@MODEL_KIND.cleans_up
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
    features_dir: Path | None = None,
    feature_cache: bool = True,
    feature_dtype: str = DEFAULT_DTYPE,
    head_units: tuple[int, ...] = study.HEAD_UNITS,
    dropout: float = study.HEAD_DROPOUT,
    checkpoints: str | Path | None = None,
    deterministic: bool = False,
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
        image_size: square model input in pixels (the stored pixels are resized to it).
        weights: "imagenet", "none", "demo", a local backbone weights file or a gs:// URI.
        weights_sha256: expected sha256 of a weights file, checked when given.
        weights_file: a local backbone weights file loaded in place of resolving `weights`, which is
            then only recorded (the pipeline's demo-backbone step hands its file over this way).
        seed: seeds weight initialisation, dropout and the per-epoch order of the training images.
        devices: devices to mirror training over; default: on pixels every GPU when more than one is
            visible, on cached features one device. The prefix pass uses every GPU either way.
        features_dir: a features folder (`cxr featurize`) of this dataset, image size and weights.
        feature_cache: train the tail on cached features (default); False: the full model on pixels.
        feature_dtype: dtype of the features this step extracts itself ("float16" or "float32").
        head_units: sizes of the head's two hidden fully connected layers.
        dropout: dropout rate after each of them.
        checkpoints: where to checkpoint every epoch (a folder or a gs:// prefix; default
            out_dir/checkpoints); the same command run again resumes from the newest whole checkpoint
            of the same settings, and the checkpoints are removed once the model folder is written.
        deterministic: TensorFlow op determinism on (two runs with one seed give the same bits; some
            GPU kernels get slower).

    Returns:
        The record written to train.json.
    """
    spec = get_variant(variant)
    check_training_settings(epochs, batch_size, image_size)
    check_learning_rate(learning_rate)
    seed = check_seed(seed)
    head_units = check_head(head_units, dropout)
    inputs = [("--dataset", dataset_dir), ("--split", split_dir), ("--features", features_dir)]
    out_dir = MODEL_KIND.prepare_output(out_dir, inputs=inputs)
    dataset = open_dataset(dataset_dir)
    split = read_split(split_dir)
    split.check_made_from(dataset.fingerprint, dataset.path)
    train_rows, val_rows = dataset.rows_for(split.sides["train"]), dataset.rows_for(split.sides["val"])
    train_labels, val_labels = dataset.labels_for(train_rows), dataset.labels_for(val_rows)
    resolved = (
        str(weights_file)
        if weights_file
        else resolve_weights(weights, image_size=image_size, sha256=weights_sha256)
    )
    features = open_features(features_dir) if features_dir and feature_cache else None
    if features:
        features.check_matches(
            dataset_fingerprint=dataset.fingerprint,
            image_size=image_size,
            weights=weights,
            weights_sha256=weights_file_sha256(resolved),
        )

    resolved_sha256 = weights_file_sha256(resolved)
    settings = {
        "variant": spec.id,
        **dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, image_size=image_size),
        **dict(seed=seed, weights_sha256=resolved_sha256, head_units=head_units, dropout=dropout),
        **dict(dataset=dataset.fingerprint, split=split.fingerprint, feature_cache=feature_cache),
        "features": features.summary["dtype"] if features else feature_dtype,
        "devices": devices,
    }
    saved = Checkpoints(checkpoints or out_dir / CHECKPOINTS_FOLDER, settings)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    # On cached features the tail trains on one device unless told otherwise: its steps are too small
    # for MirroredStrategy's per-step synchronisation to pay (bench/micro.py devices).
    strategy = device_strategy(devices) if devices or not feature_cache else tf.distribute.get_strategy()
    source = (
        ("features " + str(features.path)) if features else ("cached features" if feature_cache else "pixels")
    )
    log(
        f"train {variant}: {len(train_rows)} training / {len(val_rows)} validation images, "
        f"{epochs} epochs, batch {batch_size}, image {image_size}px, weights {weights}, on {source}, "
        f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__})"
    )
    with strategy.scope():
        model = build_model(
            spec, image_size=image_size, weights=resolved, head_units=tuple(head_units), dropout=dropout
        )
    label = f"train {variant}"
    feature_seconds = 0.0
    if feature_cache:
        rows = np.concatenate([train_rows, val_rows])
        if features:
            table = variant_inputs(
                model,
                tail_start(model),
                features.read_rows,
                rows,
                tuple(features.summary["shape"][1:]),
                features.summary["dtype"],
            )
        else:
            table, feature_seconds = _extract_tail_inputs(
                model, dataset, rows, image_size, feature_dtype, saved
            )
        history, epoch_seconds, train_seconds = fit_on_features(
            model,
            table,
            train_labels,
            val_labels,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            strategy=strategy,
            label=label,
            checkpoints=saved,
        )
    else:
        with strategy.scope():
            compile_model(model, learning_rate)

        def train_batches(epoch: int):
            return data.training_batches(
                dataset,
                train_rows,
                train_labels,
                image_size=image_size,
                batch_size=batch_size,
                seed=seed,
                epoch=epoch,
            )

        val_batches = data.eval_batches(
            dataset, val_rows, image_size=image_size, batch_size=batch_size, labels=val_labels
        )
        history, epoch_seconds, train_seconds = fit_epochs(
            model, train_batches, val_batches, epochs=epochs, label=label, checkpoints=saved
        )

    record: TrainRecord = {
        "variant": spec.id,
        "title": spec.title,
        "trainable_layers": trainable_layer_names(model),
        "trainable_params": count_params(model.trainable_weights),
        "total_params": count_params(model.weights),
        "epochs": epochs,
        "train_seconds": round(train_seconds, 3),
        "epoch_seconds": [round(t, 3) for t in epoch_seconds],
        "weights": weights,
        "weights_sha256": resolved_sha256,
        "demo_weights": is_demo_weights(weights) or is_demo_weights(resolved),
        "head_units": list(head_units),
        "dropout": dropout,
        "resize": "area",
        "departures_from_study": study.DEPARTURES,
        "image_size": image_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "replicas": strategy.num_replicas_in_sync,
        "feature_cache": "features artifact" if features else ("in this step" if feature_cache else "off"),
        "feature_seconds": round(feature_seconds, 3),
        "checkpoint_seconds": round(saved.longest_write_seconds, 3),
        "checkpoint_bytes": saved.last_bytes,
        "dataset_fingerprint": dataset.fingerprint,
        "split_fingerprint": split.fingerprint,
        "tensorflow": tf.__version__,
    }
    write_model_folder(out_dir, model.save, history, record)
    saved.clear()
    log(
        f"train {variant}: done in {train_seconds:.1f} s, final val_accuracy "
        f"{history['val_accuracy'][-1]:.3f}; wrote {Path(out_dir)}"
    )
    return record


def _extract_tail_inputs(
    model: keras.Model, dataset: Dataset, rows: np.ndarray, image_size: int, dtype: str, saved: Checkpoints
) -> tuple[np.ndarray, float]:
    """The prefix over `rows`, then the variant's bridge: (tail inputs in row order, prefix seconds).

    The prefix features of an interrupted attempt of the same training are reused, not recomputed.
    """
    shape = prefix_shape(image_size)
    cache = aligned_empty((len(rows), *shape), dtype)
    seconds = 0.0
    kept = saved.load_features(cache.shape, dtype)
    if kept is not None:
        cache[:] = kept
    else:
        filled = 0

        def keep(chunk: np.ndarray) -> None:
            nonlocal filled
            cache[filled : filled + len(chunk)] = chunk
            filled += len(chunk)

        seconds = extract_features(
            model.get_layer("backbone").get_weights(), image_size, dataset.pixels, rows, keep
        )
        saved.save_features(cache)
    start = tail_start(model)
    if start == 0:
        return cache, seconds
    positions = np.arange(len(rows))
    table = variant_inputs(
        model, start, lambda p, out: np.take(cache, p, axis=0, out=out), positions, shape, dtype
    )
    return table, seconds
