"""The study through the `cxr` command line: demo-data → ingest → split → train × 3 → evaluate → report."""

import json
import subprocess
import sys

import numpy as np
import pytest

from components.core.classes import CLASS_NAMES
from components.core.variants import VARIANTS

pytestmark = pytest.mark.slow
IMAGE_SIZE = 64  # the demo backbone is built once per size; every test uses 64 px
EPOCHS = 6


def cxr(*args):
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"cxr {' '.join(map(str, args))} failed:\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cxr("demo-data", root / "data", "--total", 240, "--size", 128, "--seed", 3)
    cxr("demo-weights", root / "backbone.weights.h5", "--image-size", IMAGE_SIZE)
    ingest = cxr("ingest", "--source", root / "data", "--out", root / "dataset")
    cxr("split", "--dataset", root / "dataset", "--out", root / "split", "--seed", 5)
    logs = {"ingest": ingest.stderr}
    for variant in VARIANTS:
        logs[variant] = cxr(
            "train",
            "--dataset",
            root / "dataset",
            "--split",
            root / "split",
            "--variant",
            variant,
            "--out",
            root / variant,
            "--epochs",
            EPOCHS,
            "--image-size",
            IMAGE_SIZE,
            "--weights",
            root / "backbone.weights.h5",
            "--seed",
            1,
        ).stderr
        cxr(
            "evaluate",
            "--dataset",
            root / "dataset",
            "--split",
            root / "split",
            "--model",
            root / variant,
            "--out",
            root / f"eval-{variant}",
        )
    evaluations = [a for v in VARIANTS for a in ("--evaluation", root / f"eval-{v}")]
    cxr("report", *evaluations, "--out", root / "report")
    return root, logs


def test_report_files_and_schema(study):
    root, _ = study
    assert {p.name for p in (root / "report").iterdir()} >= {
        "comparison.json",
        "comparison.csv",
        "report.md",
        "report.html",
    }
    comparison = json.loads((root / "report" / "comparison.json").read_text())
    assert comparison["class_names"] == list(CLASS_NAMES)
    assert comparison["selection_metric"] == "macro_f1"
    assert comparison["dataset"]["images"] == 240
    assert [v["variant"] for v in comparison["variants"]] == list(VARIANTS)
    best = max(comparison["variants"], key=lambda v: v["macro_f1"])
    assert comparison["best_variant"] == best["variant"]


def test_every_number_is_internally_consistent(study):
    root, _ = study
    comparison = json.loads((root / "report" / "comparison.json").read_text())
    n_val = len((root / "split" / "val.txt").read_text().split("\n")) - 1
    for v in comparison["variants"]:
        matrix = np.array(v["confusion_matrix"])
        assert v["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
        assert v["n_eval"] == matrix.sum() == n_val
        assert sum(c["support"] for c in v["per_class"].values()) == v["n_eval"]
        assert [v["per_class"][c]["support"] for c in CLASS_NAMES] == matrix.sum(axis=1).tolist()
        assert all(len(curve) == EPOCHS == v["epochs"] for curve in v["history"].values())
    trainable = [v["trainable_params"] for v in comparison["variants"]]
    assert trainable == sorted(trainable) and len(set(trainable)) == 3


def test_every_variant_beats_chance_clearly(study):
    root, _ = study
    comparison = json.loads((root / "report" / "comparison.json").read_text())
    majority_share = max(comparison["dataset"]["per_class"].values()) / comparison["dataset"]["images"]
    for v in comparison["variants"]:
        assert v["accuracy"] > majority_share + 0.15, (v["variant"], v["accuracy"], majority_share)
        assert v["macro_f1"] > 0.5, (v["variant"], v["macro_f1"])


def test_progress_is_shown(study):
    _, logs = study
    assert "ingest" in logs["ingest"] and "240" in logs["ingest"]
    assert f"epoch {EPOCHS}/{EPOCHS}" in logs["model3"]


def test_rerunning_a_step_on_its_output_folder_replaces_it(study):
    root, _ = study
    before = (root / "split" / "train.txt").read_text()
    cxr(
        "split",
        "--dataset",
        root / "dataset",
        "--out",
        root / "split",
        "--seed",
        5,
        "--preset",
        "study-80-10-10",
    )
    assert (root / "split" / "test.txt").read_text() and (root / "split" / "train.txt").read_text() != before
    cxr("split", "--dataset", root / "dataset", "--out", root / "split", "--seed", 5)
    assert (root / "split" / "train.txt").read_text() == before
    assert (root / "split" / "test.txt").read_text() == ""


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "ingest",
            "--source",
            tmp_path / "nope",
            "--out",
            tmp_path / "o",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("cxr: --source") and done.stderr.count("\n") == 1
