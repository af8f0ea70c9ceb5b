"""The Kubeflow components: one thin typed wrapper per step. This module imports only kfp.

Each op is a plain function whose body imports its step (components/) when the task runs, inside
the image; compiling and submitting need nothing but kfp. `build_components` turns the functions into
KFP components with the images of a configuration, so no op ever carries a placeholder image.
"""

from dataclasses import dataclass

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output
from kfp.dsl.python_component import PythonComponent


def ingest_op(source: str, dataset_fingerprint: str, stored_size: int, dataset: Output[Dataset]):
    """Decodes and validates every image of the source once.

    Consumes `source` (a folder, .zip or gs:// prefix the task can read, or demo:N);
    `dataset_fingerprint` is only a cache key (KFP caches on parameters, not on the bytes behind a
    gs:// URI): give the fingerprint `cxr ingest` prints so a data change invalidates the cache; a
    mismatch is logged. `stored_size` 0 means the most common image size. Produces the `dataset`
    artifact (summary.json, index.csv, pixels.npy) whose metadata carries the image counts, duplicate
    groups, stored size and the computed fingerprint.
    """
    from pathlib import Path

    from components.core.progress import log
    from components.ingest import ingest

    summary = ingest(source, Path(dataset.path), stored_size=stored_size or None)
    if dataset_fingerprint and dataset_fingerprint != summary["fingerprint"]:
        log(
            f"warning: dataset_fingerprint {dataset_fingerprint} is not the fingerprint of {source} "
            f"({summary['fingerprint']}); pass the latter so KFP caching follows the data"
        )
    dataset.metadata.update(
        {
            "images": summary["images"],
            **summary["per_class"],
            "skipped": len(summary["skipped"]),
            "duplicate_groups": summary["duplicate_groups"],
            "stored_size": summary["stored_size"],
            "fingerprint": summary["fingerprint"],
        }
    )


def split_op(
    dataset: Input[Dataset],
    split_ids: Output[Artifact],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    cross_class_duplicates: str = "exclude",
):
    """Splits the ingested dataset into train / val / test id lists.

    Consumes the `dataset` artifact of ingest_op; produces `split_ids`, a folder with train.txt,
    val.txt, test.txt and summary.json (per-class counts per side, also in the artifact metadata;
    identical images under two labels are left out unless `cross_class_duplicates` is "keep").
    """
    from pathlib import Path

    from components.split import split

    summary = split(
        Path(dataset.path),
        Path(split_ids.path),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        cross_class_duplicates=cross_class_duplicates,
    )
    split_ids.metadata.update(summary["counts"] | {"excluded": len(summary["excluded"])})


def demo_backbone_op(image_size: int, backbone: Output[Model]):
    """Pretrains the offline demo backbone once for the whole run (only when weights is `demo`).

    Consumes nothing but the image size; produces `backbone`, a folder holding the MobileNetV2 no-top
    weights file that every train task loads in place of ImageNet weights (which need network access).
    """
    from pathlib import Path

    from components.demo.backbone import BACKBONE_FILE, make_demo_weights

    make_demo_weights(Path(backbone.path) / BACKBONE_FILE, image_size=image_size)
    backbone.metadata.update({"weights": "demo", "image_size": image_size})


def featurize_op(
    dataset: Input[Dataset],
    features: Output[Artifact],
    image_size: int,
    weights: str,
    backbone: Input[Model] = None,
):
    """Runs MobileNetV2's frozen prefix once over every image, for all variants (CPU-only runs).

    Consumes the ingested `dataset` and, when weights is `demo`, the run's demo `backbone`; produces
    `features`, the cached prefix output of every image (features.npy, features.json) that every
    train and evaluate task reads instead of running the prefix itself. Its metadata carries the
    shape, dtype, seconds and images per second.
    """
    from pathlib import Path

    from components.demo.backbone import BACKBONE_FILE
    from components.featurize import featurize

    weights_file = Path(backbone.path) / BACKBONE_FILE if backbone is not None and weights == "demo" else None
    summary = featurize(
        Path(dataset.path),
        Path(features.path),
        image_size=image_size,
        weights=weights,
        weights_file=weights_file,
    )
    features.metadata.update({key: summary[key] for key in ("shape", "dtype", "seconds", "images_per_s")})


def train_op(
    dataset: Input[Dataset],
    split_ids: Input[Artifact],
    model: Output[Model],
    variant: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    image_size: int,
    weights: str,
    seed: int,
    head_units: list,
    dropout: float,
    checkpoint_root: str = "",
    run_id: str = "",
    backbone: Input[Model] = None,
    features: Input[Artifact] = None,
):
    """Fine-tunes one variant on the split's training side (the pipeline gives it 2 x T4).

    Consumes the ingested `dataset`, `split_ids`, when weights is `demo` the run's demo `backbone`,
    and the run's shared `features` when it has a featurize step (else this task runs the frozen prefix
    itself, once); only the variant's trainable tail trains, on the cached features. Produces `model`, a
    folder with model.keras (the full model), history.json and train.json; the variant, parameter
    counts, epochs, training time and replicas travel in its metadata. Checkpoints every epoch to
    `checkpoint_root`/`run_id`/`variant` when a root is given (a retried task resumes from them), else
    inside its own output folder.
    """
    from pathlib import Path

    from components.demo.backbone import BACKBONE_FILE
    from components.train import train

    weights_file = Path(backbone.path) / BACKBONE_FILE if backbone is not None and weights == "demo" else None
    record = train(
        Path(dataset.path),
        Path(split_ids.path),
        Path(model.path),
        variant=variant,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        image_size=image_size,
        weights=weights,
        weights_file=weights_file,
        seed=seed,
        features_dir=Path(features.path) if features is not None else None,
        head_units=tuple(head_units),
        dropout=dropout,
        checkpoints=f"{checkpoint_root}/{run_id}/{variant}" if checkpoint_root else None,
    )
    shown = ("variant", "title", "trainable_params", "total_params", "epochs", "train_seconds", "replicas")
    model.metadata.update({key: record[key] for key in shown})


def evaluate_op(
    dataset: Input[Dataset],
    split_ids: Input[Artifact],
    model: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    confusion_matrix: Output[ClassificationMetrics],
    features: Input[Artifact] = None,
):
    """Scores one trained variant on the held-out ids.

    Consumes the ingested `dataset`, `split_ids`, one variant's `model` and, when the run has a
    featurize step, its `features` (the model's tail predicts from them: the full model's predictions
    without its prefix pass); produces `evaluation` (a folder with predictions.csv, metrics.json and
    dataset.json, the variant in its metadata), `metrics` (accuracy, macro_f1, COVID sensitivity and
    specificity, train_seconds and trainable_params for the Kubeflow UI) and `confusion_matrix` (with
    the class names).
    """
    from pathlib import Path

    from components.artifacts.evaluation import ui_metrics
    from components.core.classes import CLASS_NAMES
    from components.evaluate import evaluate

    entry = evaluate(
        Path(dataset.path),
        Path(split_ids.path),
        Path(model.path),
        Path(evaluation.path),
        features_dir=Path(features.path) if features is not None else None,
    )
    evaluation.metadata.update({"variant": entry["variant"], "title": entry["title"]})
    metrics.metadata["variant"] = entry["variant"]
    for name, value in ui_metrics(entry).items():
        metrics.log_metric(name, value)
    confusion_matrix.log_confusion_matrix(list(CLASS_NAMES), entry["confusion_matrix"])
    covid = entry["statistics"]["roc"]["COVID"]
    if covid["fpr"] is not None:  # COVID against the rest, at fixed false-positive rates
        confusion_matrix.log_roc_curve(covid["fpr"], covid["tpr"], covid["thresholds"])


def report_op(
    evaluations: Input[list[Artifact]],
    comparison: Output[Artifact],
    report_html: Output[HTML],
    report_markdown: Output[Markdown],
    model_card: Output[Markdown],
    run_metrics: Output[Metrics],
):
    """Merges every variant's evaluation into the run's comparison, verdict first.

    Consumes the collected `evaluations` of the ParallelFor; produces `comparison` (a folder with
    comparison.json, comparison.csv, report.md, report.html and model_card.md), the same report as
    `report_html` and `report_markdown` and the `model_card` for the Kubeflow UI, and `run_metrics`
    keyed `<variant>_<metric>` so whole runs compare in the UI (the verdict in its metadata).
    """
    import shutil
    from pathlib import Path

    from components.artifacts.comparison import HTML_FILE, MARKDOWN_FILE, MODEL_CARD_FILE
    from components.artifacts.evaluation import ui_metrics
    from components.report import report

    result = report([Path(e.path) for e in evaluations], Path(comparison.path))
    shutil.copyfile(Path(comparison.path) / HTML_FILE, report_html.path)
    shutil.copyfile(Path(comparison.path) / MARKDOWN_FILE, report_markdown.path)
    shutil.copyfile(Path(comparison.path) / MODEL_CARD_FILE, model_card.path)
    verdict = {
        "best_variant": result["best_variant"],
        "distinguishable": result["verdict"]["distinguishable"],
    }
    comparison.metadata.update(verdict)
    run_metrics.metadata.update(verdict)
    for entry in result["variants"]:
        for name, value in ui_metrics(entry, prefix=entry["variant"]).items():
            run_metrics.log_metric(name, value)


@dataclass(frozen=True)
class Components:
    """The KFP components of one configuration, each with its image."""

    ingest: PythonComponent
    split: PythonComponent
    demo_backbone: PythonComponent
    featurize: PythonComponent
    train: PythonComponent
    evaluate: PythonComponent
    report: PythonComponent


def build_components(cpu_image: str, train_image: str) -> Components:
    """The ops as KFP components: train on `train_image`, every other step on `cpu_image`.

    The images carry kfp and the project, so no component installs anything when it starts.
    """

    def component(func, image: str) -> PythonComponent:
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return Components(
        ingest=component(ingest_op, cpu_image),
        split=component(split_op, cpu_image),
        demo_backbone=component(demo_backbone_op, cpu_image),
        featurize=component(featurize_op, cpu_image),
        train=component(train_op, train_image),
        evaluate=component(evaluate_op, cpu_image),
        report=component(report_op, cpu_image),
    )
