"""Scores one trained variant on the held-out images and writes everything `report` needs.

Consumes a dataset, a split and a model folder; evaluates on the split's test ids, or on its
validation ids when it has no test side. Produces an evaluation folder
(components/artifacts/evaluation.py): predictions.csv, the single source of every number, and
metrics.json and dataset.json computed from it.
"""

from pathlib import Path

import numpy as np

from components.artifacts.dataset import Dataset, dataset_object, open_dataset
from components.artifacts.evaluation import KIND as EVALUATION_KIND
from components.artifacts.evaluation import GradCam, VariantEntry, write_evaluation
from components.artifacts.features import open_features
from components.artifacts.model import ModelFolder, read_model_folder
from components.artifacts.split import Split, read_split
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.progress import log

GRADCAM_SEED = 7
GRADCAM_DISPLAY_SIZE = 128


@EVALUATION_KIND.cleans_up
def evaluate(
    dataset_dir: Path,
    split_dir: Path,
    model_dir: Path,
    out_dir: Path,
    *,
    batch_size: int = 64,
    features_dir: Path | None = None,
) -> VariantEntry:
    """Predicts the held-out images with a trained model and writes predictions, metrics and dataset summary.

    Args:
        dataset_dir: an ingested dataset folder (`cxr ingest --out`).
        split_dir: a split folder (`cxr split --out`) made from that dataset.
        model_dir: a model folder (`cxr train --out`).
        out_dir: the evaluation folder to write (created; files replaced).
        batch_size: images per prediction batch.
        features_dir: the features folder the model was trained from (`cxr featurize`): the model's
            tail then predicts from them instead of running the full model on pixels (the same
            predictions, without the prefix pass).

    Returns:
        The metrics.json entry (one `variants[]` entry of comparison.json).
    """
    if batch_size < 1:
        raise CxrError(f"--batch-size must be at least 1, got {batch_size}")
    inputs = [
        ("--dataset", dataset_dir),
        ("--split", split_dir),
        ("--model", model_dir),
        ("--features", features_dir),
    ]
    out_dir = EVALUATION_KIND.prepare_output(out_dir, inputs=inputs)
    model_folder = read_model_folder(model_dir)
    dataset = open_dataset(dataset_dir)
    split = read_split(split_dir)
    split.check_made_from(dataset.fingerprint, dataset.path)
    _check_fingerprints(dataset.fingerprint, split, model_folder)
    eval_side = split.eval_side
    ids = split.sides[eval_side]
    if not ids:
        raise CxrError(
            f"split {split.path} has neither test nor validation ids; run `cxr split` with "
            "--val-fraction or --test-fraction above 0"
        )
    rows = dataset.rows_for(ids)
    model = _load_model(model_folder)

    record = model_folder.record
    features = open_features(features_dir) if features_dir else None
    if features:
        features.check_matches(
            dataset_fingerprint=dataset.fingerprint,
            image_size=int(model.input_shape[1]),
            weights=record["weights"],
            weights_sha256=record.get("weights_sha256"),
        )
    source = f"features {features.path}" if features else "pixels"
    log(f"evaluate: {record['variant']} on {len(ids)} {eval_side} images of {dataset.path}, from {source}")
    if features:
        from components.core.features import predict_on_features

        summary = features.summary
        probabilities = predict_on_features(
            model, features.read_rows, rows, tuple(summary["shape"][1:]), summary["dtype"]
        )
    else:
        from components.core.data import predict_probabilities

        probabilities = predict_probabilities(model, dataset, rows, batch_size=batch_size)
    y_true = dataset.labels_for(rows)
    entry = write_evaluation(
        out_dir,
        ids=ids,
        y_true=y_true,
        probabilities=probabilities,
        train=model_folder.record,
        history=model_folder.history,
        eval_side=eval_side,
        split_fingerprint=split.fingerprint,
        dataset=dataset_object(dataset.summary),
        split=split.summary,
        gradcam=_grad_cam_examples(model, dataset, rows, ids, y_true, probabilities),
    )
    log(
        f"evaluate: {entry['variant']} accuracy {entry['accuracy']:.4f}, macro-F1 {entry['macro_f1']:.4f} "
        f"on {entry['n_eval']} {eval_side} images -> {out_dir}"
    )
    return entry


def _check_fingerprints(dataset_fingerprint: str | None, split: Split, model: ModelFolder) -> None:
    """Refuses a split other than the one the model was trained on."""
    trained_on = model.record.get("dataset_fingerprint")
    if dataset_fingerprint and trained_on and trained_on != dataset_fingerprint:
        log(f"evaluate: note: {model.path} was trained on another dataset (fingerprint {trained_on[:12]}…)")
        return
    trained_split = model.record.get("split_fingerprint")
    if trained_split and trained_split != split.fingerprint:
        raise CxrError(
            f"{model.path} was trained on another split of this dataset than {split.path}: its "
            "training images may be among the evaluated ones; pass the --split it was trained on"
        )


def _load_model(model_folder: ModelFolder):
    from components.core.model import load_model  # imports TensorFlow; only predicting needs it

    path = model_folder.model_file
    try:
        model = load_model(path)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors … for a bad file
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CxrError(f"cannot load {path} ({first_line}); run `cxr train` again") from exc
    input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    if len(input_shape) != 4 or input_shape[-1] != 1 or input_shape[1] != input_shape[2]:
        raise CxrError(f"{path} takes input {input_shape}; expected (batch, size, size, 1) grayscale pixels")
    if output_shape[-1] != len(CLASS_NAMES):
        raise CxrError(f"{path} outputs {output_shape[-1]} classes; expected {len(CLASS_NAMES)}")
    return model


def _grad_cam_examples(model, dataset: Dataset, rows, ids, y_true, probabilities) -> GradCam:
    """Grad-CAM of a seeded choice of evaluated images (one right and one wrong per class)."""
    from components.core.data import resize_pixels
    from components.core.gradcam import model_grad_cam, pick_examples

    y_pred = probabilities.argmax(axis=1)
    chosen = pick_examples(y_true, y_pred, len(CLASS_NAMES), GRADCAM_SEED)
    if "backbone" not in {layer.name for layer in model.layers}:
        log("evaluate: no Grad-CAM: the model has no MobileNetV2 backbone to look into")
        chosen = chosen[:0]
    stored = (
        np.stack([dataset.pixels[rows[i]] for i in chosen]) if len(chosen) else np.zeros((0, 8, 8), np.uint8)
    )
    pixels = resize_pixels(stored, int(model.input_shape[1]))
    heatmaps = model_grad_cam(model, pixels, y_pred[chosen]) if len(chosen) else np.zeros((0, 1, 1))
    display = resize_pixels(stored, GRADCAM_DISPLAY_SIZE).numpy()[..., 0].round().astype(np.uint8)
    return GradCam(
        [ids[i] for i in chosen],
        y_true[chosen],
        y_pred[chosen],
        probabilities[chosen, y_pred[chosen]].astype(np.float32),
        display,
        heatmaps.astype(np.float32),
    )
