"""Stratified, seeded split that keeps identical images on one side."""

import json

import pytest

from components.artifacts.split import KIND, read_split
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
    left_out = [e["id"] for e in summary["excluded"]]  # identical images under two labels
    assert len(left_out) == 4
    assert sorted(sides["train"] + sides["val"] + left_out) == sorted(
        f"{c}/images/{c}-{i + 1}.png" for c in CLASS_NAMES for i in range(COUNTS[c])
    )
    assert not set(sides["train"]) & set(sides["val"])


def test_study_preset_tests_ten_percent_of_each_class(dataset, tmp_path):
    val, test = SPLIT_PRESETS["study-80-10-10"]
    summary = split(
        dataset, tmp_path / "split", val_fraction=val, test_fraction=test, cross_class_duplicates="keep"
    )
    assert summary["per_class"]["test"] == {"COVID": 4, "Lung_Opacity": 6, "Normal": 10, "Viral Pneumonia": 2}
    assert summary["counts"]["val"] == 22
    assert summary["counts"]["train"] == 220 - 44


def test_identical_images_land_on_the_same_side(dataset, tmp_path):
    for seed in range(8):
        split(
            dataset,
            tmp_path / f"s{seed}",
            val_fraction=0.4,
            test_fraction=0.2,
            seed=seed,
            cross_class_duplicates="keep",
        )
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
    assert summary["seed"] == 7 and summary["counts"]["train"] + summary["counts"]["val"] == 220 - 4


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
    with pytest.raises(
        CxrError, match="class COVID has 1 image: too few for both the train and the val side"
    ):
        split(tiny, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_split_fingerprint_names_the_split(dataset, tmp_path):
    a = split(dataset, tmp_path / "a", seed=1)
    b = split(dataset, tmp_path / "b", seed=1)
    c = split(dataset, tmp_path / "c", seed=2)
    assert a["split_fingerprint"] == b["split_fingerprint"] != c["split_fingerprint"]
    assert a["dataset_fingerprint"]


def test_not_a_dataset_folder(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(CxrError, match="cxr ingest"):
        split(tmp_path / "notes", tmp_path / "s")


def test_an_artifact_of_another_kind_or_version_is_refused_in_one_line(dataset, tmp_path):
    split(dataset, tmp_path / "s")
    with pytest.raises(CxrError, match=r"--split .*ds holds a dataset artifact, expected a split artifact"):
        read_split(dataset)
    manifest = tmp_path / "s" / "artifact.json"
    version = KIND.schema_version
    manifest.write_text(manifest.read_text().replace(f'"schema_version": {version}', '"schema_version": 99'))
    with pytest.raises(
        CxrError, match=f"split artifact of schema version 99, this cxr-kfp reads version {version}"
    ):
        read_split(tmp_path / "s")
    manifest.unlink()
    with pytest.raises(CxrError, match=r"is not a split artifact \(no artifact.json\); run `cxr split"):
        read_split(tmp_path / "s")


def test_the_study_preset_gives_the_study_test_supports_exactly(tmp_path):
    """A stratified 80/20 whose 20 % is halved, stratified: 362 / 602 / 1019 / 134 of the real 21,165."""
    from components.demo.phantom import REAL_COUNTS

    real = write_dataset(tmp_path / "real", dict(zip(CLASS_NAMES, REAL_COUNTS, strict=True)), size=2)
    val, test = SPLIT_PRESETS["study-80-10-10"]
    summary = split(real, tmp_path / "s", val_fraction=val, test_fraction=test)
    assert summary["per_class"]["test"] == {
        "COVID": 362,
        "Lung_Opacity": 602,
        "Normal": 1019,
        "Viral Pneumonia": 134,
    }
    assert summary["counts"]["test"] == 2117 and summary["counts"]["val"] == 4233 - 2117


def test_identical_images_under_two_labels_are_left_out_and_listed(tmp_path):
    dataset = write_dataset(tmp_path / "ds", COUNTS, duplicates=[[0, 45], [1, 2]])  # COVID-1 = Lung_Opacity-6
    summary = split(dataset, tmp_path / "s")
    left_out = {e["id"] for e in summary["excluded"]}
    assert left_out == {"COVID/images/COVID-1.png", "Lung_Opacity/images/Lung_Opacity-6.png"}
    sides = read_split(tmp_path / "s").sides
    assert not left_out & set(sides["train"] + sides["val"] + sides["test"])
    assert summary["groups_across_sides"] == {"exact": 0, "near": 0}
    kept = split(dataset, tmp_path / "k", cross_class_duplicates="keep")
    assert kept["excluded"] == [] and kept["counts"]["train"] + kept["counts"]["val"] == 220


def test_near_duplicate_groups_stay_on_one_side(tmp_path):
    dataset = write_dataset(tmp_path / "ds", COUNTS, near_duplicates=[[3, 4, 5, 6], [60, 61]])
    for seed in range(6):
        split(dataset, tmp_path / f"s{seed}", val_fraction=0.4, seed=seed)
        sides = read_split(tmp_path / f"s{seed}").sides
        side_of = {i: s for s, ids in sides.items() for i in ids}
        group = [f"COVID/images/COVID-{i}.png" for i in (4, 5, 6, 7)]
        assert len({side_of[i] for i in group}) == 1
