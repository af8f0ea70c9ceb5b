"""Configuration: YAML per environment, environment variables, --set overrides, clear errors."""

import subprocess

import pytest

from components.core.errors import CxrError
from pipelines.config import CONFIG_DIR, load_config


def test_shipped_configs_load_and_validate():
    names = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert {"local.yaml", "cluster.yaml", "kind.yaml"} <= names
    for path in CONFIG_DIR.glob("*.yaml"):
        load_config(path, env={})


def test_precedence_defaults_then_yaml_then_env_then_set():
    config = load_config(
        CONFIG_DIR / "local.yaml",
        ["study.epochs=2", "images.tag=abc"],
        env={"IMAGE_REGISTRY": "europe-docker.pkg.dev/p/r", "IMAGE_TAG": "from-env"},
    )
    assert config.study.image_size == 64  # local.yaml
    assert config.study.epochs == 2  # --set beats YAML
    assert config.images.tag == "abc"  # --set beats the environment
    assert config.images.cpu == "europe-docker.pkg.dev/p/r/cxr-kfp-cpu:abc"
    assert config.study.learning_rate == 1e-3  # default


def test_default_tag_is_the_git_sha_of_the_checkout_and_never_latest():
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tag = load_config(None, env={}).images.cpu.rsplit(":", 1)[1]
    assert tag in (sha, f"{sha}-dirty")
    with pytest.raises(CxrError, match="latest"):
        load_config(None, ["images.tag=latest"], env={})


def test_outside_a_git_checkout_the_tag_must_be_given(tmp_path, monkeypatch):
    import pipelines.config

    monkeypatch.setattr(pipelines.config, "__file__", str(tmp_path / "pipelines" / "config.py"))
    with pytest.raises(CxrError, match="not a git checkout with a commit; set IMAGE_TAG"):
        _ = load_config(None, env={}).images.cpu
    assert load_config(None, ["images.tag=v1"], env={}).images.cpu.endswith(":v1")


def test_text_settings_keep_the_text_as_typed():
    config = load_config(
        None,
        ["images.tag=01234567", "kfp.experiment=yes", "study.weights=null", "study.source=gs://b/p: x"],
        env={},
    )
    assert config.images.tag == "01234567" and config.kfp.experiment == "yes"
    assert config.study.weights == "null" and config.study.source == "gs://b/p: x"


def test_a_section_that_is_not_a_mapping(tmp_path):
    (tmp_path / "c.yaml").write_text("study: 3\n")
    with pytest.raises(CxrError, match="section 'study' must be a mapping"):
        load_config(tmp_path / "c.yaml", env={})


def test_lists_and_booleans_from_the_command_line():
    config = load_config(None, ["study.variants=model1,model3", "placement.caching=false"], env={})
    assert config.study.variants == ["model1", "model3"] and config.placement.caching is False


@pytest.mark.parametrize(
    "override, match",
    [
        ("study.epochz=3", "unknown setting 'study.epochz'"),
        ("study.epochs=three", "not a whole number"),
        ("study.epochs=2.7", "not a whole number"),
        ("placement.caching=ture", "not true or false"),
        ("study.image_size=16", "study.image_size 16 is below"),
        ("study.variants=model7", "study.variants"),
        ("study.val_fraction=1.0", "val_fraction"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_settings_are_named(override, match):
    with pytest.raises(CxrError, match=match):
        load_config(None, [override], env={})


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(CxrError, match="no such file.*local.yaml"):
        load_config(tmp_path / "nope.yaml", env={})
    (tmp_path / "bad.yaml").write_text("study: [unclosed")
    with pytest.raises(CxrError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml", env={})


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ("study.image_size=10000", "study.image_size 10000 is out of range: use 32 to 1024"),
        ("study.stored_size=100000", "study.stored_size 100000 is out of range: use 1 to 4096"),
        ("study.learning_rate=nan", "study.learning_rate nan must be a finite number in"),
        ("study.learning_rate=0", "study.learning_rate 0.0 must be a finite number in"),
        ("study.seed=-1", "study.seed -1 is out of range: use 0 to 4294967295"),
        ("study.split_seed=4294967296", "study.split_seed 4294967296 is out of range"),
        ("study.epochs=0", "study.epochs 0 is out of range: use 1 to 10000"),
        ("study.head_units=256,0", "study.head_units 0 is out of range: use 1 to 65536"),
        ("study.dropout=1", "study.dropout 1.0 must be in"),
        ("placement.train_cpu=eight", "placement.train_cpu 'eight': give a positive Kubernetes quantity"),
        ("placement.step_cpu=0", "placement.step_cpu '0': give a positive"),
        ("placement.train_memory=32GB", "placement.train_memory '32GB': give a positive Kubernetes quantity"),
        ("placement.step_memory=-1G", "placement.step_memory '-1G'"),
    ],
)
def test_out_of_range_settings_are_refused_with_their_range(setting, match):
    with pytest.raises(CxrError, match=match):
        load_config(CONFIG_DIR / "local.yaml", [setting], env={})
