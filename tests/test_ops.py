"""Every KFP op called directly (`.python_func`), with real kfp artifacts: what the Kubeflow UI shows.

The ops run their steps for real on a tiny dataset; these tests check what each op adds: the
artifact files land where KFP expects them and the metadata and metrics the UI displays are set.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from components.artifacts.dataset import open_dataset
from components.artifacts.evaluation import UI_METRICS
from components.core.classes import CLASS_NAMES
from components.core.model import Backbone
from components.demo import backbone as demo_backbone
from pipelines.config import load_config
from pipelines.ops import build_components
from tests.factories import write_dataset

OPS = build_components("registry.example/cxr-kfp-cpu:t1", "registry.example/cxr-kfp-train:t1")
COUNTS = {"COVID": 8, "Lung_Opacity": 8, "Normal": 10, "Viral Pneumonia": 6}
SIZE = 32


def artifact(kind, folder: Path, name: str):
    return kind(name=name, uri=str(folder / name))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Ingest → split → train (demo backbone) → evaluate → report through the ops, once."""
    root = tmp_path_factory.mktemp("ops")
    artifacts = {}
    dataset = artifact(dsl.Dataset, root, "dataset")
    write_dataset(Path(dataset.path), COUNTS, size=SIZE)
    split_ids = artifact(dsl.Artifact, root, "split_ids")
    OPS.split.python_func(dataset=dataset, split_ids=split_ids, val_fraction=0.25, test_fraction=0.0, seed=1)
    backbone = artifact(dsl.Model, root, "backbone")
    Path(backbone.path).mkdir()
    weights = Backbone(SIZE, weights=None).base
    weights.save_weights(Path(backbone.path) / demo_backbone.BACKBONE_FILE)
    model = artifact(dsl.Model, root, "model")
    OPS.train.python_func(
        dataset=dataset,
        split_ids=split_ids,
        model=model,
        variant="model1",
        epochs=1,
        batch_size=8,
        learning_rate=1e-3,
        image_size=SIZE,
        weights="demo",
        seed=3,
        head_units=[16, 8],
        dropout=0.1,
        backbone=backbone,
    )
    evaluation, metrics = artifact(dsl.Artifact, root, "evaluation"), artifact(dsl.Metrics, root, "metrics")
    confusion = artifact(dsl.ClassificationMetrics, root, "confusion_matrix")
    OPS.evaluate.python_func(
        dataset=dataset,
        split_ids=split_ids,
        model=model,
        evaluation=evaluation,
        metrics=metrics,
        confusion_matrix=confusion,
    )
    report = {
        name: artifact(kind, root, name)
        for name, kind in (
            ("comparison", dsl.Artifact),
            ("report_html", dsl.HTML),
            ("report_markdown", dsl.Markdown),
            ("model_card", dsl.Markdown),
            ("run_metrics", dsl.Metrics),
        )
    }
    OPS.report.python_func(evaluations=[evaluation], **report)
    artifacts.update(
        dataset=dataset,
        split_ids=split_ids,
        backbone=backbone,
        backbone_weights=weights,
        model=model,
        evaluation=evaluation,
        metrics=metrics,
        confusion_matrix=confusion,
        **report,
    )
    return artifacts


def test_ingest_op_writes_the_artifact_and_its_metadata(kaggle_folder, tmp_path, capsys):
    dataset = artifact(dsl.Dataset, tmp_path, "dataset")
    OPS.ingest.python_func(
        source=str(kaggle_folder()), dataset_fingerprint="stale", stored_size=8, dataset=dataset
    )
    opened = open_dataset(Path(dataset.path))
    assert opened.pixels.shape == (11, 8, 8)
    assert dataset.metadata == {
        "images": 11,
        "COVID": 3,
        "Lung_Opacity": 2,
        "Normal": 4,
        "Viral Pneumonia": 2,
        "skipped": 0,
        "duplicate_groups": 0,
        "stored_size": 8,
        "fingerprint": opened.fingerprint,
    }
    assert "warning: dataset_fingerprint stale is not the fingerprint" in capsys.readouterr().err


def test_split_op_counts_each_side_in_its_metadata(run):
    counts = run["split_ids"].metadata
    assert counts["train"] + counts["val"] == sum(COUNTS.values()) and counts["test"] == 0
    assert (Path(run["split_ids"].path) / "val.txt").read_text().count("\n") == counts["val"]


def test_demo_backbone_op_builds_the_weights_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_CACHE_DIR", str(tmp_path / "cache"))
    built = []

    def pretrain(cached: Path, image_size: int, seed: int):
        built.append(image_size)
        Backbone(image_size, weights=None).base.save_weights(cached)

    monkeypatch.setattr(demo_backbone, "_pretrain", pretrain)
    for name in ("first", "second"):
        backbone = artifact(dsl.Model, tmp_path, name)
        OPS.demo_backbone.python_func(image_size=SIZE, backbone=backbone)
        assert (Path(backbone.path) / demo_backbone.BACKBONE_FILE).is_file()
        assert backbone.metadata == {"weights": "demo", "image_size": SIZE}
    assert built == [SIZE]


def test_train_op_loads_the_run_backbone_and_describes_the_model(run):
    metadata = run["model"].metadata
    assert set(metadata) == {
        "variant",
        "title",
        "trainable_params",
        "total_params",
        "epochs",
        "train_seconds",
        "replicas",
    }
    assert metadata["variant"] == "model1" and metadata["epochs"] == 1 and metadata["replicas"] == 1
    record = json.loads((Path(run["model"].path) / "train.json").read_text())
    assert record["weights"] == "demo"
    from components.core.model import load_model

    trained = load_model(Path(run["model"].path) / "model.keras").get_layer("backbone").base
    np.testing.assert_array_equal(
        trained.get_layer("Conv_1").kernel.numpy(), run["backbone_weights"].get_layer("Conv_1").kernel.numpy()
    )


def test_evaluate_op_logs_the_ui_metrics_and_the_confusion_matrix(run):
    entry = json.loads((Path(run["evaluation"].path) / "metrics.json").read_text())
    metrics = run["metrics"].metadata
    assert set(metrics) == {"variant", *UI_METRICS}
    assert metrics["accuracy"] == entry["accuracy"] and metrics["variant"] == "model1"
    assert metrics["covid_sensitivity"] == entry["per_class"]["COVID"]["recall"]
    matrix = run["confusion_matrix"].metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == list(CLASS_NAMES)
    assert [r["row"] for r in matrix["rows"]] == entry["confusion_matrix"]
    roc = run["confusion_matrix"].metadata["confidenceMetrics"]  # COVID against the rest
    assert len(roc) == len(entry["statistics"]["roc"]["COVID"]["fpr"])
    assert run["evaluation"].metadata == {"variant": "model1", "title": "FC head"}


def test_report_op_hands_the_ui_its_html_markdown_and_run_metrics(run):
    comparison = Path(run["comparison"].path)
    assert Path(run["report_html"].path).read_bytes() == (comparison / "report.html").read_bytes()
    assert Path(run["report_markdown"].path).read_bytes() == (comparison / "report.md").read_bytes()
    assert Path(run["model_card"].path).read_bytes() == (comparison / "model_card.md").read_bytes()
    run_metrics = run["run_metrics"].metadata
    assert run_metrics["best_variant"] == "model1" == run["comparison"].metadata["best_variant"]
    assert run_metrics["distinguishable"] is True  # the only variant
    assert {f"model1_{name}" for name in UI_METRICS} <= set(run_metrics)


def test_components_carry_the_configured_images_and_install_nothing():
    images = load_config(None, ["images.registry=registry.example/team", "images.tag=abc123"], env={}).images
    ops = build_components(images.cpu, images.train)
    for name in ("ingest", "split", "demo_backbone", "evaluate", "report"):
        container = getattr(ops, name).component_spec.implementation.container
        assert container.image == "registry.example/team/cxr-kfp-cpu:abc123", name
        assert "pip install" not in " ".join(container.command), name
    assert ops.train.component_spec.implementation.container.image == (
        "registry.example/team/cxr-kfp-train:abc123"
    )
