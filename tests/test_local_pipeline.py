"""The real pipeline under kfp.local's SubprocessRunner on tiny demo data (what `make run-local` runs)."""

import json

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local-run")
    code = main(["run-local", "--out", str(out), "--set", "study.epochs=2", "--set", "study.split_seed=3"])
    assert code == 0
    return out


def test_report_holds_all_three_variants(run):
    comparison = json.loads((run / "report" / "comparison.json").read_text())
    assert [v["variant"] for v in comparison["variants"]] == ["model1", "model2", "model3"]
    assert [v["title"] for v in comparison["variants"]] == [
        "FC head", "FC head + last conv", "FC head + last 2 conv"]
    assert comparison["best_variant"] in {"model1", "model2", "model3"}
    assert comparison["dataset"]["images"] == 240
    for v in comparison["variants"]:
        assert v["epochs"] == 2 and all(len(c) == 2 for c in v["history"].values())
        assert v["weights"].endswith("demo-backbone-64px.weights.h5")
        assert sum(map(sum, v["confusion_matrix"])) == v["n_eval"]


def test_report_html_and_markdown_agree_with_the_json(run):
    comparison = json.loads((run / "report" / "comparison.json").read_text())
    html = (run / "report" / "report.html").read_text()
    markdown = (run / "report" / "report.md").read_text()
    for v in comparison["variants"]:
        assert f"{v['macro_f1']:.4f}" in markdown and f"{v['macro_f1']:.4f}" in html
    assert html.count("<svg") >= 6


def test_kubeflow_ui_artifacts(run):
    """Each evaluate task logs UI metrics and a confusion matrix; report logs <variant>_<metric>."""
    comparison = json.loads((run / "report" / "comparison.json").read_text())
    matrices = {v["variant"]: v["confusion_matrix"] for v in comparison["variants"]}
    accuracies = {v["variant"]: v["accuracy"] for v in comparison["variants"]}
    executor_outputs = {p.parent.name + "/" + p.parent.parent.name: json.loads(p.read_text())
                        for p in run.glob("cxr-transfer-learning-*/**/executor_output.json")}
    evaluates = [o for k, o in executor_outputs.items() if k.startswith("evaluate-op/")]
    assert len(evaluates) == 3
    for output in evaluates:
        artifacts = output["artifacts"]
        metrics = artifacts["metrics"]["artifacts"][0]["metadata"]
        assert {"accuracy", "macro_f1", "covid_sensitivity", "covid_specificity", "train_seconds",
                "trainable_params"} <= set(metrics)
        confusion = artifacts["confusion_matrix"]["artifacts"][0]["metadata"]["confusionMatrix"]
        assert [c["displayName"] for c in confusion["annotationSpecs"]] == [
            "COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]
        variant = artifacts["evaluation"]["artifacts"][0]["metadata"]["variant"]
        assert [r["row"] for r in confusion["rows"]] == matrices[variant]
        assert metrics["accuracy"] == accuracies[variant]
    report = next(o for k, o in executor_outputs.items() if k.startswith("report-op/"))
    run_metrics = report["artifacts"]["run_metrics"]["artifacts"][0]["metadata"]
    assert {"model1_accuracy", "model2_macro_f1", "model3_covid_sensitivity"} <= set(run_metrics)
    assert run_metrics["model2_accuracy"] == accuracies["model2"]
