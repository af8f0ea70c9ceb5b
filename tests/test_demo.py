"""The embedded demo dataset (Kaggle layout, determinism, learnability) and the offline demo backbone."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.demo import backbone, phantom
from components.demo.backbone import make_demo_weights
from components.demo.kaggle_layout import make_demo_dataset
from components.demo.phantom import class_counts, demo_arrays

TOP_LEVEL = {*CLASS_NAMES, *(f"{name}.metadata.xlsx" for name in CLASS_NAMES), "README.md.txt"}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    """A 60-image demo set at the default 299 px, shared by the read-only layout tests."""
    out = tmp_path_factory.mktemp("demo") / "COVID-19_Radiography_Dataset"
    return out, make_demo_dataset(out, total=60, seed=0)


def test_class_counts_follow_the_real_proportions():
    assert class_counts(21165) == dict(zip(CLASS_NAMES, phantom.REAL_COUNTS, strict=True))
    assert class_counts(240) == {"COVID": 41, "Lung_Opacity": 68, "Normal": 116, "Viral Pneumonia": 15}
    assert class_counts(24) == dict.fromkeys(CLASS_NAMES, 6)
    for total in range(24, 400, 7):
        counts = class_counts(total)
        assert sum(counts.values()) == total
        assert min(counts.values()) >= phantom.MIN_PER_CLASS
        assert counts["Normal"] == max(counts.values())


def test_layout_is_kaggles_with_spaces_in_names(dataset):
    root, summary = dataset
    assert {p.name for p in root.iterdir()} == TOP_LEVEL
    assert (root / "Viral Pneumonia" / "images" / "Viral Pneumonia-1.png").is_file()
    assert (root / "Viral Pneumonia" / "masks" / "Viral Pneumonia-1.png").is_file()
    for name, count in class_counts(60).items():
        assert {p.name for p in (root / name).iterdir()} == {"images", "masks"}
        expected = {f"{name}-{i}.png" for i in range(1, count + 1)}
        assert {p.name for p in (root / name / "images").iterdir()} == expected
        assert {p.name for p in (root / name / "masks").iterdir()} == expected
    assert summary["per_class"] == class_counts(60)
    assert summary["images"] == 60 and summary["size"] == 299 and summary["seed"] == 0
    assert summary["path"] == str(root.absolute())


def test_images_are_8bit_gray_with_an_rgb_minority_and_256px_masks(dataset):
    root, summary = dataset
    modes = {}
    for path in root.glob("*/images/*.png"):
        with Image.open(path) as image:
            assert image.size == (299, 299)
            modes.setdefault(image.mode, []).append(path)
            if image.mode == "RGB":
                rgb = np.asarray(image)
                assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    assert set(modes) == {"L", "RGB"}
    assert len(modes["RGB"]) == summary["rgb_images"] == 3  # 5 % of 60
    for path in root.glob("*/masks/*.png"):
        with Image.open(path) as mask:
            assert (mask.mode, mask.size) == ("L", (256, 256))
            values = np.unique(np.asarray(mask))
            assert set(values.tolist()) == {0, 255}


def test_masks_cover_the_dark_lung_fields(dataset):
    root, _ = dataset
    image = Image.open(root / "Normal" / "images" / "Normal-1.png").convert("L")
    image = np.asarray(image.resize((256, 256)))
    lungs = np.asarray(Image.open(root / "Normal" / "masks" / "Normal-1.png")) > 0
    chest = np.zeros_like(lungs)
    chest[40:216, 40:216] = True
    assert 0.15 < lungs.mean() < 0.5
    assert image[lungs].mean() < image[chest & ~lungs].mean() - 30


def test_metadata_files_and_readme(dataset):
    root, _ = dataset
    for name, count in class_counts(60).items():
        table = pd.read_excel(root / f"{name}.metadata.xlsx", engine="openpyxl")
        assert list(table.columns) == ["FILE NAME", "FORMAT", "SIZE", "URL"]
        assert table["FILE NAME"].tolist() == [f"{name}-{i}" for i in range(1, count + 1)]
        assert set(table["FORMAT"]) == {"PNG"} and set(table["SIZE"]) == {"299*299"}
    readme = (root / "README.md.txt").read_text()
    assert readme.startswith("Synthetic demo data from cxr-kfp") and "seed: 0" in readme


def test_arrays_equal_the_written_pixels(dataset):
    root, _ = dataset
    images, labels = demo_arrays(60, 299, 0)
    assert images.dtype == np.uint8 and images.shape == (60, 299, 299)
    assert np.bincount(labels).tolist() == list(class_counts(60).values())
    first_vp = int(np.argmax(labels == CLASS_NAMES.index("Viral Pneumonia")))
    written = Image.open(root / "Viral Pneumonia" / "images" / "Viral Pneumonia-1.png").convert("L")
    assert np.array_equal(np.asarray(written), images[first_vp])


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    make_demo_dataset(tmp_path / "a", total=24, size=48, seed=3)
    make_demo_dataset(tmp_path / "b", total=24, size=48, seed=3)
    make_demo_dataset(tmp_path / "c", total=24, size=48, seed=4)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    # Byte-identical at any later time too: the .xlsx carries no time of writing.
    with zipfile.ZipFile(tmp_path / "a" / "COVID.metadata.xlsx") as xlsx:
        assert {info.date_time for info in xlsx.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        core = xlsx.read("docProps/core.xml").decode()
    assert re.findall(r"<dcterms:(?:created|modified)[^>]*>([^<]*)<", core) == ["2020-01-01T00:00:00Z"] * 2
    images = [k for k in a if "/images/" in k]
    assert all(a[k] != c[k] for k in images)


def test_rerun_replaces_the_folder_content(tmp_path):
    out = tmp_path / "demo"
    make_demo_dataset(out, total=40, size=48, seed=1)
    (out / "COVID" / "images" / "stray.png").write_bytes(b"x")
    summary = make_demo_dataset(out, total=24, size=40, seed=2)
    make_demo_dataset(tmp_path / "fresh", total=24, size=40, seed=2)
    assert _files(out) == _files(tmp_path / "fresh")
    assert summary["per_class"] == class_counts(24)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "fresh"]  # no staging left behind


def test_refuses_to_replace_a_folder_that_is_not_a_demo_set(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CxrError, match="not a demo dataset"):
        make_demo_dataset(tmp_path / "mine", total=24, size=40)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CxrError, match="not a folder"):
        make_demo_dataset(tmp_path / "a-file", total=24, size=40)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"total": 10}, "--total"),
        ({"size": 8}, "--size"),
        ({"seed": -1}, "--seed"),
        ({"total": 2.5}, "--total"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, word):
    with pytest.raises(CxrError, match=word):
        make_demo_dataset(tmp_path / "d", **kwargs)
    assert not (tmp_path / "d").exists()


def test_default_set(tmp_path):
    summary = make_demo_dataset(tmp_path / "demo")
    assert summary["images"] == 240 and summary["rgb_images"] == 12
    assert len(list((tmp_path / "demo").glob("*/images/*.png"))) == 240


def test_classes_are_learnable_from_small_images():
    """Even a linear model on 24 × 24 thumbnails beats the majority class by a wide margin."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    images, labels = demo_arrays(240, 96, seed=5)
    thumbs = images.reshape(240, 24, 4, 24, 4).mean(axis=(2, 4)).reshape(240, -1) / 255.0
    train, test = train_test_split(np.arange(240), test_size=0.5, stratify=labels, random_state=0)
    model = LogisticRegression(max_iter=2000).fit(thumbs[train], labels[train])
    majority = np.mean(labels[test] == np.bincount(labels[train]).argmax())
    assert model.score(thumbs[test], labels[test]) > majority + 0.1


def test_weights_file_name_must_end_in_weights_h5(tmp_path):
    for name in ("backbone.h5", "backbone.keras", ".weights.h5"):
        with pytest.raises(CxrError, match=r"\.weights\.h5"):
            make_demo_weights(tmp_path / name, image_size=64)


# ---------------------------------------------------------------------------------------------
# The demo backbone (trains MobileNetV2 at 64 px once: 1 to 2.5 minutes on 2 CPU cores)
# ---------------------------------------------------------------------------------------------

WEIGHTS_SIZE = 64


@pytest.fixture(scope="module")
def demo_weights(tmp_path_factory):
    """Demo backbone weights built once into a private cache; yields (weights file, cache folder)."""
    cache = tmp_path_factory.mktemp("cxr-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CXR_CACHE_DIR", str(cache))
        path = make_demo_weights(
            tmp_path_factory.mktemp("weights") / "demo.weights.h5", image_size=WEIGHTS_SIZE, seed=0
        )
        yield path, cache


@pytest.mark.slow
def test_second_call_copies_from_the_cache(demo_weights, tmp_path, monkeypatch):
    path, cache = demo_weights
    monkeypatch.setenv("CXR_CACHE_DIR", str(cache))

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the weights are cached")

    monkeypatch.setattr(backbone, "_pretrain", no_training)
    again = make_demo_weights(tmp_path / "sub" / "again.weights.h5", image_size=WEIGHTS_SIZE, seed=0)
    assert again.read_bytes() == path.read_bytes()
    assert [p.name for p in (cache / "demo-weights").iterdir()] == [
        f"mobilenetv2-notop-demo-v{backbone.DEMO_WEIGHTS_VERSION}-{WEIGHTS_SIZE}px-seed0.weights.h5"
    ]


@pytest.mark.slow
def test_frozen_backbone_features_are_useful(demo_weights):
    """MobileNetV2(weights=PATH) loads the file at any size; a linear probe on its pooled features
    of an unseen demo set (another seed) is far above chance. Measured here: 0.92 at 64 px
    (0.84 at 96 px); randomly initialised weights give the majority-class rate, 0.48.
    """
    import keras
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    path, _ = demo_weights
    size = WEIGHTS_SIZE
    base = keras.applications.MobileNetV2(include_top=False, weights=str(path), input_shape=(size, size, 3))
    larger = keras.applications.MobileNetV2(include_top=False, weights=str(path), input_shape=(128, 128, 3))
    for a, b in zip(base.weights, larger.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    images, labels = demo_arrays(240, 299, seed=1)
    x = tf.image.resize(images[..., np.newaxis].astype("float32"), (size, size), method="area")
    x = keras.applications.mobilenet_v2.preprocess_input(tf.concat([x, x, x], axis=-1))
    features = keras.layers.GlobalAveragePooling2D()(base(x, training=False)).numpy()
    train, test = train_test_split(np.arange(240), test_size=0.5, stratify=labels, random_state=0)
    probe = LogisticRegression(max_iter=3000).fit(features[train], labels[train])
    accuracy = probe.score(features[test], labels[test])
    assert accuracy > 0.7, f"probe accuracy {accuracy:.3f}"
