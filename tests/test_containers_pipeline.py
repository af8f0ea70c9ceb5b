"""The container tier: the whole pipeline with kfp.local's DockerRunner, in the project's images.

Run by `make test-containers` (which starts Docker and builds the images first), not by `make test`.
"""

import json

import pytest

from pipelines.config import load_config
from pipelines.local_run import run_local

pytestmark = pytest.mark.containers


def test_pipeline_runs_in_the_images_without_network(tmp_path):
    report_dir = run_local(
        tmp_path / "run",
        runner="docker",
        demo_images=120,
        overrides=["study.epochs=2", "study.image_size=64"],
    )
    out = (tmp_path / "run" / "run-local.log").read_text()  # kfp's own lines go to the run's log
    images = load_config(None).images  # IMAGE_REGISTRY / IMAGE_TAG: what `make build-images-local` built
    assert f"Found image '{images.cpu}'" in out
    assert f"Found image '{images.ref(images.train_cpu_name)}'" in out
    assert "Pulling image" not in out
    comparison = json.loads((report_dir / "comparison.json").read_text())
    assert [v["variant"] for v in comparison["variants"]] == ["model1", "model2", "model3"]
    assert comparison["dataset"]["images"] == 120
    for variant in comparison["variants"]:
        assert variant["epochs"] == 2 and len(variant["history"]["loss"]) == 2
        matrix = variant["confusion_matrix"]
        assert variant["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(4)) / variant["n_eval"])
    html = (report_dir / "report.html").read_text()
    assert comparison["best_variant"] in html and html.count("<svg") >= 6
