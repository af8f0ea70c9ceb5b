"""Output folders: a user's files are never deleted or overwritten, inputs are never written over,
and an artifact is whole or refused (artifact.json written last, its sizes and hashes checked).
"""

import json

import pytest

from components.artifacts.manifest import MANIFEST_FILE, WRITING_MARKER
from components.artifacts.split import KIND as SPLIT_KIND
from components.artifacts.split import read_split
from components.core.errors import CxrError
from components.demo.kaggle_layout import make_demo_dataset
from components.ingest import ingest
from components.split import split
from components.train import train
from tests.factories import write_dataset

PER_CLASS = {"COVID": 12, "Lung_Opacity": 12, "Normal": 12, "Viral Pneumonia": 12}


def demo_source(tmp_path):
    make_demo_dataset(tmp_path / "src", total=24, size=64, seed=1)
    return tmp_path / "src"


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "dataset", PER_CLASS)


def test_ingest_refuses_a_folder_of_the_users_and_changes_nothing_in_it(tmp_path):
    source = demo_source(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.partial.docx").write_text("chapter 3")
    (mine / "summary.json").write_text('{"mine": true}')
    with pytest.raises(CxrError, match=r"--out .*mine is not empty and was not written by cxr-kfp"):
        ingest(source, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["summary.json", "thesis.partial.docx"]
    assert (mine / "thesis.partial.docx").read_text() == "chapter 3"
    assert json.loads((mine / "summary.json").read_text()) == {"mine": True}


def test_an_output_inside_the_source_or_around_it_is_refused(tmp_path):
    source = demo_source(tmp_path)
    with pytest.raises(CxrError, match=r"--out .*src/out overlaps --source"):
        ingest(source, source / "out")
    with pytest.raises(CxrError, match="overlaps --source"):
        ingest(source, tmp_path)
    assert not (source / "out").exists()


def test_split_into_its_own_dataset_is_refused_and_the_dataset_stays_whole(dataset):
    before = (dataset / "summary.json").read_bytes()
    with pytest.raises(CxrError, match="overlaps --dataset"):
        split(dataset, dataset)
    assert (dataset / "summary.json").read_bytes() == before


def test_a_folder_of_another_artifact_kind_is_refused(dataset, tmp_path):
    split(dataset, tmp_path / "split")
    with pytest.raises(CxrError, match=r"holds a split artifact; give a new or empty folder for the dataset"):
        ingest(demo_source(tmp_path), tmp_path / "split")


def test_a_rerun_replaces_its_own_files_and_keeps_the_users(dataset, tmp_path):
    out = tmp_path / "split"
    split(dataset, out, seed=1)
    (out / "notes.txt").write_text("why seed 1")
    (out / ".val.txt.cxr-tmp-999").write_text("left by a killed run")
    first = read_split(out).fingerprint
    split(dataset, out, seed=2)
    assert read_split(out).fingerprint != first
    assert (out / "notes.txt").read_text() == "why seed 1"
    assert not (out / ".val.txt.cxr-tmp-999").exists() and not (out / WRITING_MARKER).exists()


def test_a_split_being_rewritten_is_not_readable_until_it_is_whole(dataset, tmp_path):
    """What a SIGKILL during a rerun leaves (the old manifest gone, some new files) is refused."""
    out = tmp_path / "split"
    split(dataset, out)
    SPLIT_KIND.prepare_output(out, inputs=[("--dataset", dataset)])  # a rerun's first act, then killed
    (out / "train.txt").write_text("COVID/images/COVID-1.png\n")
    with pytest.raises(CxrError, match="stopped while writing it, so it is not whole; run `cxr split"):
        read_split(out)
    with pytest.raises(CxrError, match="stopped while writing it"):
        train(dataset, out, tmp_path / "model", variant="model1", epochs=1, image_size=32, weights="none")
    assert not (tmp_path / "model" / MANIFEST_FILE).exists()


def test_a_file_changed_after_the_manifest_is_refused(dataset, tmp_path):
    out = tmp_path / "split"
    split(dataset, out)
    ids = (out / "val.txt").read_text().splitlines()
    (out / "val.txt").write_text("".join(f"{i}\n" for i in reversed(ids)))  # same size, other bytes
    with pytest.raises(CxrError, match=r"val.txt is not the file `cxr split` wrote \(its size or sha256"):
        read_split(out)


def test_train_refuses_a_split_of_another_dataset(dataset, tmp_path):
    other = write_dataset(tmp_path / "other", PER_CLASS, seed=5)
    split(other, tmp_path / "split")
    with pytest.raises(CxrError, match=r"split .* was made from another dataset than .*dataset"):
        train(dataset, tmp_path / "split", tmp_path / "model", variant="model1", weights="none")


def test_train_refuses_an_output_that_is_a_file_before_any_work(dataset, tmp_path):
    split(dataset, tmp_path / "split")
    (tmp_path / "model.txt").write_text("not a folder")
    with pytest.raises(CxrError, match=r"--out .*model.txt is a file; give a folder for the model"):
        train(dataset, tmp_path / "split", tmp_path / "model.txt", variant="model1", weights="none")
