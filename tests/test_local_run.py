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
