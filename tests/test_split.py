"""Stratified, seeded split that keeps identical images on one side."""

import json

import pytest

from components.artifacts.split import read_split
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.study import SPLIT_PRESETS
from components.split import split
from tests.factories import write_dataset

COUNTS = {"COVID": 40, "Lung_Opacity": 60, "Normal": 100, "Viral Pneumonia": 20}


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds", COUNTS, duplicates=[[0, 1, 2], [45, 150], [39, 41]])


def test_default_is_a_stratified_70_30_holdout(dataset, tmp_path):
    summary = split(dataset, tmp_path / "split")
    for c in CLASS_NAMES:
        assert abs(summary["per_class"]["val"][c] - 0.3 * COUNTS[c]) <= 2
        assert summary["per_class"]["test"][c] == 0
    sides = read_split(tmp_path / "split").sides
    assert sorted(sides["train"] + sides["val"]) == sorted(
        f"{c}/images/{c}-{i + 1}.png" for c in CLASS_NAMES for i in range(COUNTS[c])
    )
    assert not set(sides["train"]) & set(sides["val"])


def test_study_preset_tests_ten_percent_of_each_class(dataset, tmp_path):
    val, test = SPLIT_PRESETS["study-80-10-10"]
    summary = split(dataset, tmp_path / "split", val_fraction=val, test_fraction=test)
    assert summary["per_class"]["test"] == {"COVID": 4, "Lung_Opacity": 6, "Normal": 10, "Viral Pneumonia": 2}
    assert summary["counts"]["val"] == 22
    assert summary["counts"]["train"] == 220 - 44


def test_identical_images_land_on_the_same_side(dataset, tmp_path):
    for seed in range(8):
        split(dataset, tmp_path / f"s{seed}", val_fraction=0.4, test_fraction=0.2, seed=seed)
        sides = read_split(tmp_path / f"s{seed}").sides
        side_of = {i: s for s, ids in sides.items() for i in ids}
        for group in (
            ["COVID/images/COVID-1.png", "COVID/images/COVID-2.png", "COVID/images/COVID-3.png"],
            ["Lung_Opacity/images/Lung_Opacity-6.png", "Normal/images/Normal-51.png"],
        ):
            assert len({side_of[i] for i in group}) == 1, (seed, group)


def test_same_seed_same_split_other_seed_other_split(dataset, tmp_path):
    split(dataset, tmp_path / "a", seed=7)
    split(dataset, tmp_path / "b", seed=7)
    split(dataset, tmp_path / "c", seed=8)
    assert read_split(tmp_path / "a").sides == read_split(tmp_path / "b").sides
    assert read_split(tmp_path / "a").sides != read_split(tmp_path / "c").sides
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["counts"]["train"] + summary["counts"]["val"] == 220


def test_rerun_on_the_same_folder_replaces_it(dataset, tmp_path):
    split(dataset, tmp_path / "s", val_fraction=0.5)
    split(dataset, tmp_path / "s", val_fraction=0.3)
    assert len(read_split(tmp_path / "s").sides["val"]) == pytest.approx(66, abs=2)


@pytest.mark.parametrize(
    "val, test, match",
    [
        (0.0, 0.0, "--val-fraction"),
        (1.2, 0.0, "--val-fraction"),
        (0.3, -0.1, "--test-fraction"),
        (0.6, 0.4, "sum must be below 1"),
    ],
)
def test_bad_fractions_are_rejected(dataset, tmp_path, val, test, match):
    with pytest.raises(CxrError, match=match):
        split(dataset, tmp_path / "s", val_fraction=val, test_fraction=test)


def test_a_failed_split_leaves_nothing_that_train_would_accept(tmp_path):
    tiny = write_dataset(tmp_path / "tiny", {"COVID": 1, "Normal": 1})
    with pytest.raises(CxrError, match="too few images"):
        split(tiny, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_split_fingerprint_names_the_split(dataset, tmp_path):
    a = split(dataset, tmp_path / "a", seed=1)
    b = split(dataset, tmp_path / "b", seed=1)
    c = split(dataset, tmp_path / "c", seed=2)
    assert a["split_fingerprint"] == b["split_fingerprint"] != c["split_fingerprint"]
    assert a["dataset_fingerprint"]


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(CxrError, match="cxr ingest"):
        split(tmp_path, tmp_path / "s")


def test_an_artifact_of_another_kind_or_version_is_refused_in_one_line(dataset, tmp_path):
    split(dataset, tmp_path / "s")
    with pytest.raises(CxrError, match=r"--split .*ds holds a dataset artifact, expected a split artifact"):
        read_split(dataset)
    manifest = tmp_path / "s" / "artifact.json"
    manifest.write_text(manifest.read_text().replace('"schema_version": 1', '"schema_version": 99'))
    with pytest.raises(CxrError, match="split artifact of schema version 99, this cxr-kfp reads version 1"):
        read_split(tmp_path / "s")
    manifest.unlink()
    with pytest.raises(CxrError, match=r"is not a split artifact \(no artifact.json\); run `cxr split"):
        read_split(tmp_path / "s")
