"""The container tier: the whole pipeline with kfp.local's DockerRunner, in the project's images.

Run by `make test-containers` (which starts Docker and builds the images first), not by `make test`.
"""

import json
import re
import shutil
import subprocess

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


CREDENTIAL_FILES = (
    "/run/secrets",  # BuildKit secrets (the build's pip_conf, pip_cert) are mounted for one RUN only
    "/etc/pip.conf",
    "$HOME/.config/pip/pip.conf",
    "$HOME/.pip/pip.conf",
    "$HOME/.netrc",
    "$HOME/.docker/config.json",
    "$HOME/.config/gcloud",
    "/root/.config/gcloud",
)
CREDENTIAL_TEXT = re.compile(
    r"PRIVATE KEY-----|KFP_TOKEN|KFP_COOKIE|GOOGLE_APPLICATION_CREDENTIALS|AWS_SECRET_ACCESS_KEY|"
    r"://[^/\s:@]+:[^/\s@]+@"  # a user:password@ in a URL (an index URL with its login, say)
)


@pytest.mark.parametrize("which", ["cpu", "train_cpu"])
def test_no_credentials_in_the_images_layers_environment_or_home(which):
    images = load_config(None).images
    image = images.cpu if which == "cpu" else images.ref(images.train_cpu_name)
    history = _docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    environment = _docker("image", "inspect", "--format", "{{json .Config.Env}}", image)
    for what, text in (("history", history), ("environment", environment)):
        found = CREDENTIAL_TEXT.search(text)
        assert found is None, f"{image}: its {what} holds {found.group(0)!r}"
    listing = " ".join(f'"{path}"' for path in CREDENTIAL_FILES)
    present = _docker(
        "run", "--rm", "--network", "none", image, "sh", "-c",
        f'for p in {listing}; do if [ -d "$p" ]; then ls -A "$p" | sed "s|^|$p/|"; '
        'elif [ -e "$p" ]; then echo "$p"; fi; done',
    )  # fmt: skip
    assert present.strip() == "", f"{image} holds credential files: {present.split()}"


def _docker(*args: str) -> str:
    docker = shutil.which("/usr/bin/docker") or shutil.which("docker")
    return subprocess.run([docker, *args], capture_output=True, text=True, check=True).stdout
