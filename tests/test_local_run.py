"""run-local's checks that need no pipeline run: what DockerRunner can see."""

import pytest

from components.core.errors import CxrError
from pipelines.local_run import _check_visible_in_containers, run_local


def test_docker_runner_refuses_a_source_outside_the_run_folder(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(CxrError, match="--source .* is outside .*only folder DockerRunner mounts"):
        run_local(tmp_path / "run", source=str(tmp_path / "data"), runner="docker")


def test_unset_and_symbolic_values_are_not_paths(tmp_path):
    _check_visible_in_containers(tmp_path, {"--source": "", "study.weights": "demo"})
    _check_visible_in_containers(tmp_path, {"--source": "gs://bucket/data", "study.weights": "imagenet"})
    (tmp_path / "inputs").mkdir()
    _check_visible_in_containers(tmp_path, {"--source": str(tmp_path / "inputs")})


def test_a_failed_task_ends_the_console_with_its_own_reason(tmp_path):
    import subprocess
    import sys

    source = tmp_path / "data" / "COVID" / "images"
    source.mkdir(parents=True)
    (source / "COVID-1.png").write_text("not an image")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run-local",
            "--out",
            str(tmp_path / "run"),
            "--source",
            str(tmp_path / "data"),
            "--set",
            "study.weights=none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cxr: run-local: ingest-op failed: --source ") and "no usable image found" in last
    assert "Traceback" not in done.stderr and "Traceback" in (tmp_path / "run" / "run-local.log").read_text()
