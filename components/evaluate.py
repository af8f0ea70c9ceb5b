"""Scores one trained variant on the held-out images and writes everything `report` needs.

Consumes an ingested dataset folder, a split folder and a train output folder (model.keras,
train.json, history.json). Evaluates on the split's test ids, or on its validation ids when the
split has no test side. Produces, in the output folder:

  predictions.csv  id, true_class, predicted_class, prob_<class> per class (the single source of
                   every number below; see components/core/metrics.py)
  metrics.json     one `variants[]` entry of comparison.json: train.json and history.json merged with
                   the metrics computed from predictions.csv, plus eval_side ("test" or "val")
  dataset.json     the `dataset` object of comparison.json, so `report` needs nothing else
"""

from pathlib import Path

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.core.artifacts import component
from components.core.classes import CLASS_NAMES
from components.core.dataset import contract_summary, open_dataset, read_json, write_json
from components.core.errors import CxrError
from components.core.metrics import (
    DATASET_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    metrics_from_predictions,
    write_predictions,
)
from components.core.progress import log
from components.split import load_split, split_summary

__all__ = ["evaluate", "metrics_from_predictions", "METRICS_FILE", "DATASET_FILE", "PREDICTIONS_FILE"]

MODEL_FILE = "model.keras"
TRAIN_FILE = "train.json"
HISTORY_FILE = "history.json"

# train.json keys that a comparison.json variant entry carries, in the entry's order.
TRAIN_KEYS = ("variant", "title", "trainable_layers", "trainable_params", "total_params", "epochs",
              "train_seconds", "weights")


def evaluate(dataset_dir: Path, split_dir: Path, model_dir: Path, out_dir: Path, *,
             batch_size: int = 64) -> dict:
    """Predicts the held-out images with a trained model and writes predictions, metrics and dataset summary.

    Args:
        dataset_dir: an ingested dataset folder (`cxr ingest --out`).
        split_dir: a split folder (`cxr split --out`) made from that dataset.
        model_dir: a train output folder (`cxr train --out`).
        out_dir: where predictions.csv, metrics.json and dataset.json go (created; files replaced).
        batch_size: images per prediction batch.

    Returns:
        The metrics.json entry (one `variants[]` entry of comparison.json).
    """
    dataset_dir, split_dir, model_dir, out_dir = map(Path, (dataset_dir, split_dir, model_dir, out_dir))
    if batch_size < 1:
        raise CxrError(f"--batch-size must be at least 1, got {batch_size}")
    train_info, history = _read_model_dir(model_dir)
    dataset = open_dataset(dataset_dir)
    sides = load_split(split_dir)
    split = split_summary(split_dir)
    _check_fingerprints(dataset.summary.get("fingerprint"), split, split_dir, train_info, model_dir)
    eval_side = "test" if sides.get("test") else "val"
    ids = list(sides.get(eval_side) or [])
    if not ids:
        raise CxrError(f"split {split_dir} has neither test nor validation ids; run `cxr split` with "
                       "--val-fraction or --test-fraction above 0")
    rows = dataset.rows_for(ids)
    model = _load_model(model_dir)

    log(f"evaluate: {train_info['variant']} on {len(ids)} {eval_side} images of {dataset_dir}")
    from components.core.data import predict_probabilities

    probabilities = predict_probabilities(model, dataset, rows, batch_size=batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / PREDICTIONS_FILE, ids, dataset.labels_for(rows), probabilities)
    metrics = metrics_from_predictions(out_dir / PREDICTIONS_FILE)

    entry = {key: train_info[key] for key in TRAIN_KEYS}
    entry |= metrics
    entry["history"] = history
    entry["eval_side"] = eval_side
    entry["split_fingerprint"] = split.get("split_fingerprint")
    entry |= {key: value for key, value in train_info.items() if key not in entry}
    write_json(out_dir / METRICS_FILE, entry)
    write_json(out_dir / DATASET_FILE, contract_summary(dataset.summary))
    log(f"evaluate: {entry['variant']} accuracy {entry['accuracy']:.4f}, macro-F1 {entry['macro_f1']:.4f} "
        f"on {entry['n_eval']} {eval_side} images -> {out_dir}")
    return entry


def _read_model_dir(model_dir: Path) -> tuple[dict, dict]:
    if not model_dir.is_dir():
        raise CxrError(f"model folder {model_dir} not found; run `cxr train --out {model_dir}` first")
    if not (model_dir / MODEL_FILE).is_file():
        raise CxrError(f"{model_dir / MODEL_FILE} not found; run `cxr train --out {model_dir}` first")
    train_info = read_json(model_dir / TRAIN_FILE, "train")
    missing = [key for key in TRAIN_KEYS if not isinstance(train_info, dict) or key not in train_info]
    if missing:
        raise CxrError(f"{model_dir / TRAIN_FILE} lacks {missing}; run `cxr train` again")
    history = read_json(model_dir / HISTORY_FILE, "train")
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise CxrError(f"{model_dir / HISTORY_FILE} must map metric names to per-epoch lists; "
                       "run `cxr train` again")
    return train_info, history


def _check_fingerprints(dataset_fingerprint: str | None, split: dict, split_dir: Path, train_info: dict,
                       model_dir: Path) -> None:
    """Refuses a split of another dataset, or a split other than the one the model was trained on."""
    made_from = split.get("dataset_fingerprint")
    if dataset_fingerprint and made_from and made_from != dataset_fingerprint:
        raise CxrError(f"split {split_dir} was made from another dataset (fingerprint "
                       f"{made_from[:12]}…, this one {dataset_fingerprint[:12]}…); run `cxr split` on it")
    trained_on = train_info.get("dataset_fingerprint")
    if dataset_fingerprint and trained_on and trained_on != dataset_fingerprint:
        log(f"evaluate: note: {model_dir} was trained on another dataset (fingerprint {trained_on[:12]}…)")
        return
    trained_split = train_info.get("split_fingerprint")
    if trained_split and split.get("split_fingerprint") and trained_split != split["split_fingerprint"]:
        raise CxrError(f"{model_dir} was trained on another split of this dataset than {split_dir}: its "
                       "training images may be among the evaluated ones; pass the --split it was trained on")


def _load_model(model_dir: Path):
    from components.core.model import load_model  # imports TensorFlow; only predicting needs it

    path = model_dir / MODEL_FILE
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


@component
def evaluate_op(dataset: Input[Dataset], split_ids: Input[Artifact], model: Input[Model],
                evaluation: Output[Artifact], metrics: Output[Metrics],
                confusion_matrix: Output[ClassificationMetrics]):
    """Scores one trained variant on the held-out ids.

    Consumes the ingested `dataset`, `split_ids` and one variant's `model`; produces `evaluation`
    (a folder with predictions.csv, metrics.json and dataset.json, the variant in its metadata),
    `metrics` (accuracy, macro_f1, COVID sensitivity and specificity, train_seconds and
    trainable_params for the Kubeflow UI) and `confusion_matrix` (with the class names).
    """
    from pathlib import Path

    from components.core.artifacts import log_confusion_matrix, log_metrics
    from components.evaluate import evaluate

    entry = evaluate(Path(dataset.path), Path(split_ids.path), Path(model.path), Path(evaluation.path))
    evaluation.metadata.update({"variant": entry["variant"], "title": entry["title"]})
    metrics.metadata["variant"] = entry["variant"]
    log_metrics(metrics, entry)
    log_confusion_matrix(confusion_matrix, entry)
