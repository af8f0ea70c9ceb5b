"""The real pipeline under kfp.local's SubprocessRunner on tiny demo data (what `make run-local` runs)."""

import json
import os
import subprocess
import sys

import pytest

from tests.kfp_local import task_outputs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`cxr run-local` as a user runs it; returns (run folder, its console output)."""
    out = tmp_path_factory.mktemp("local-run")
    temp = tmp_path_factory.mktemp("system-temp")  # the run's TMPDIR: nothing may be left in it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run-local",
            "--out",
            str(out),
            "--set",
            "study.epochs=2",
            "--set",
            "study.split_seed=3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
        env=dict(os.environ, TMPDIR=str(temp)),
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert list(temp.iterdir()) == [] and not (out / ".tmp").exists()
    return out, done.stdout


def test_report_holds_all_three_variants(run):
    out, _ = run
    comparison = json.loads((out / "report" / "comparison.json").read_text())
    assert [v["variant"] for v in comparison["variants"]] == ["model1", "model2", "model3"]
    assert [v["title"] for v in comparison["variants"]] == [
        "FC head",
        "FC head + last conv",
        "FC head + last 2 conv",
    ]
    best = max(comparison["variants"], key=lambda v: (v["macro_f1"], -v["trainable_params"]))
    assert comparison["best_variant"] == best["variant"]
    assert comparison["dataset"]["images"] == 240
    for v in comparison["variants"]:
        assert v["epochs"] == 2 and all(len(c) == 2 for c in v["history"].values())
        assert v["weights"] == "demo"
        assert sum(map(sum, v["confusion_matrix"])) == v["n_eval"]


def test_one_demo_backbone_step_feeds_every_train_task(run):
    out, _ = run
    outputs = task_outputs(out)
    assert len(outputs["demo-backbone-op"]) == 1 and len(outputs["train-op"]) == 3
    assert outputs["demo-backbone-op"][0]["backbone"]["metadata"] == {"weights": "demo", "image_size": 64}


def test_report_html_and_markdown_agree_with_the_json(run):
    out, _ = run
    comparison = json.loads((out / "report" / "comparison.json").read_text())
    html = (out / "report" / "report.html").read_text()
    markdown = (out / "report" / "report.md").read_text()
    for v in comparison["variants"]:
        assert f"{v['macro_f1']:.4f}" in markdown and f"{v['macro_f1']:.4f}" in html
    assert html.count("<svg") >= 6


def test_kubeflow_ui_artifacts(run):
    """Each evaluate task logs UI metrics and a confusion matrix; report logs <variant>_<metric>."""
    out, _ = run
    comparison = json.loads((out / "report" / "comparison.json").read_text())
    by_variant = {v["variant"]: v for v in comparison["variants"]}
    outputs = task_outputs(out)
    assert len(outputs["evaluate-op"]) == 3
    for task in outputs["evaluate-op"]:
        variant = task["evaluation"]["metadata"]["variant"]
        metrics = task["metrics"]["metadata"]
        assert metrics["accuracy"] == by_variant[variant]["accuracy"]
        confusion = task["confusion_matrix"]["metadata"]["confusionMatrix"]
        assert [r["row"] for r in confusion["rows"]] == by_variant[variant]["confusion_matrix"]
    (report,) = outputs["report-op"]
    run_metrics = report["run_metrics"]["metadata"]
    assert {"model1_accuracy", "model2_macro_f1", "model3_covid_sensitivity"} <= set(run_metrics)
    assert run_metrics["model2_accuracy"] == by_variant["model2"]["accuracy"]


def test_the_console_shows_tasks_and_progress_and_the_log_holds_the_rest(run):
    out, console = run
    lines = console.splitlines()
    for task in (
        "ingest-op",
        "split-op",
        "demo-backbone-op",
        "featurize-op",
        "train-op",
        "evaluate-op",
        "report-op",
    ):
        assert f"{task}: started" in lines and any(line.startswith(f"{task}: done in ") for line in lines)
    assert "  train model3: epoch 2/2" in console and "  ingest: decode: 240/240" in console
    finished = next(i for i, line in enumerate(lines) if line.startswith("run-local: finished in "))
    assert lines[finished].endswith(f"report: {out / 'report' / 'report.html'}")
    # The console ends with the verdict and the variant table with intervals.
    assert lines[finished + 1].startswith("verdict: ")
    assert lines[-4].startswith("variant  accuracy [95 % CI]") and lines[-1].startswith("model3   0.")
    log = (out / "run-local.log").read_text()
    for noise in ("oneDNN", "executor_input", "have no effect in the current local runner", "[cxr]"):
        assert noise not in console, noise
    assert "oneDNN" in log and "have no effect in the current local runner" in log
    assert "train model3: epoch 2/2" in log
    assert len(lines) < 120, f"{len(lines)} console lines"
