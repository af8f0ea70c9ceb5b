"""The Makefile: self-documenting help, and flags rejected with a clear message before anything runs."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("KFP_HOST", "RUNNER", "MAKEFLAGS")}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environ | env,
        timeout=60,
    )


def test_help_lists_the_readme_commands():
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)
    for target in (
        "run-local",
        "test",
        "test-containers",
        "compile",
        "submit-pipeline",
        "build-images",
        "push-images",
        "kind-up",
        "kind-test",
    ):
        assert f" {target} " in done.stdout, target


def test_bad_runner_is_rejected():
    done = make("run-local", "RUNNER=kubernetes")
    assert done.returncode != 0
    assert "RUNNER must be subprocess or docker, not 'kubernetes'" in done.stderr


def test_submit_without_host_names_kfp_host():
    done = make("submit-pipeline")
    assert done.returncode != 0 and "submit-pipeline needs KFP_HOST" in done.stderr


def test_compile_pins_the_configured_images():
    done = make("compile", "IMAGE_REGISTRY=registry.example/team", "IMAGE_TAG=v1.2.3")
    assert done.returncode == 0, done.stderr
    assert "IMAGE_REGISTRY=registry.example/team IMAGE_TAG=v1.2.3" in done.stdout
    assert "cxr compile --config pipelines/configs/cluster.yaml" in done.stdout


def test_run_local_with_docker_runner():
    done = make("run-local", "RUNNER=docker", "SOURCE=data/x.zip")
    assert done.returncode == 0, done.stderr
    assert "cxr run-local --out runs/local --runner docker --source data/x.zip" in done.stdout
