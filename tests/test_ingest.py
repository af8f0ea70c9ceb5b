"""Ingest: which files are samples, every skip reason, every accepted encoding, the artifact it writes."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.artifacts.dataset import INDEX_COLUMNS, INDEX_FILE, PIXELS_FILE, SUMMARY_FILE, open_dataset
from components.artifacts.manifest import MANIFEST_FILE
from components.core import images
from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.ingest import ingest

RNG = np.random.default_rng(7)
GRAY = RNG.integers(0, 256, (12, 12), dtype=np.uint8)


def png_bytes(im: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    return buf.getvalue()


def add(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def skipped_by_path(summary: dict) -> dict[str, dict]:
    return {s["path"]: s for s in summary["skipped"]}


def zip_folder(folder: Path, zip_path: Path, *, top: str | None = None, junk: bool = False) -> Path:
    """Zips `folder`, its files under `top/` when given (like Kaggle's archive.zip)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            name = f"{top}/{name}" if top else name
            if path.is_dir():
                zf.writestr(name + "/", b"")
            else:
                zf.write(path, name)
        if junk:
            zf.writestr(f"__MACOSX/{top or '.'}/._README.md.txt", b"\x00\x05\x16\x07")
    return zip_path


# --------------------------------------------------------------------------------------------
# The artifact
# --------------------------------------------------------------------------------------------


def test_ingests_the_kaggle_layout_into_the_dataset_artifact(kaggle_folder, tmp_path, capsys):
    source = kaggle_folder()
    summary = ingest(str(source), tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")

    assert summary == json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert dataset.summary == summary
    assert summary["images"] == 11 and dataset.pixels.shape == (11, 16, 16)
    assert dataset.pixels.dtype == np.uint8
    assert summary["per_class"] == {"COVID": 3, "Lung_Opacity": 2, "Normal": 4, "Viral Pneumonia": 2}
    assert summary["stored_size"] == 16 and summary["skipped"] == []
    assert summary["color_modes"] == {"L": 11}
    assert summary["ignored"] == {"masks": 11, "metadata": 4, "readme": 1, "os_junk": 0, "other": 0}
    assert summary["source"] == str(source)
    assert list(dataset.index.columns) == list(INDEX_COLUMNS)
    # Rows: class order, then id; ids relative to the dataset folder, spaces kept.
    ids = dataset.index["id"].tolist()
    assert ids == sorted(ids, key=lambda i: (CLASS_NAMES.index(i.split("/")[0]), i))
    assert "Viral Pneumonia/images/Viral Pneumonia-1.png" in ids
    for row, item in dataset.index.iterrows():
        file = source / item["id"]
        assert item["source_path"] == str(file.resolve())
        assert item["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
        assert np.array_equal(dataset.pixels[row], np.asarray(Image.open(file)))
        assert item["pixel_sha256"] == images.pixel_sha256(np.asarray(Image.open(file)))
        assert (item["width"], item["height"], item["mode"], item["format"]) == (16, 16, "L", "PNG")
    assert (dataset.index["duplicate_group"] == -1).all()
    pairs = sorted(zip(ids, dataset.index["sha256"], strict=True))
    expected_fp = hashlib.sha256("".join(f"{i}\t{s}\n" for i, s in pairs).encode()).hexdigest()
    assert summary["fingerprint"] == expected_fp
    err = capsys.readouterr().err
    assert "ingest: decode: 11/11" in err and "COVID 3, Lung_Opacity 2, Normal 4, Viral Pneumonia 2" in err
    assert "colour modes: L 11" in err


def test_source_may_be_a_folder_that_contains_the_dataset_folder(kaggle_folder, tmp_path):
    kaggle_folder("downloads/COVID-19_Radiography_Dataset")
    inner = ingest(tmp_path / "downloads/COVID-19_Radiography_Dataset", tmp_path / "a")
    outer = ingest(tmp_path / "downloads", tmp_path / "b")
    assert outer["fingerprint"] == inner["fingerprint"]
    assert (
        pd.read_csv(tmp_path / "a" / INDEX_FILE)["id"].tolist()
        == pd.read_csv(tmp_path / "b" / INDEX_FILE)["id"].tolist()
    )


def test_zip_sources_match_the_folder(kaggle_folder, tmp_path):
    source = kaggle_folder()
    add(source, "COVID/images/broken.png", b"")
    folder = ingest(source, tmp_path / "from-dir")
    flat = ingest(zip_folder(source, tmp_path / "flat.zip"), tmp_path / "from-zip")
    archive = ingest(
        zip_folder(source, tmp_path / "archive.zip", top="COVID-19_Radiography_Dataset", junk=True),
        tmp_path / "from-archive",
    )
    base = open_dataset(tmp_path / "from-dir")
    for out, summary in (("from-zip", flat), ("from-archive", archive)):
        other = open_dataset(tmp_path / out)
        assert summary["fingerprint"] == folder["fingerprint"]
        assert np.array_equal(other.pixels, base.pixels)
        pd.testing.assert_frame_equal(
            other.index.drop(columns="source_path"), base.index.drop(columns="source_path")
        )
        assert [s["reason"] for s in summary["skipped"]] == ["empty"]
    assert archive["ignored"]["os_junk"] == 1
    assert open_dataset(tmp_path / "from-archive").index["source_path"][0] == (
        f"{(tmp_path / 'archive.zip').resolve()}!/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png"
    )


def test_rerun_replaces_outputs_and_is_deterministic(kaggle_folder, tmp_path):
    source = kaggle_folder()
    first = ingest(source, tmp_path / "out")
    files = {
        name: (tmp_path / "out" / name).read_bytes()
        for name in (SUMMARY_FILE, INDEX_FILE, PIXELS_FILE, MANIFEST_FILE)
    }
    (source / "Normal/images/Normal-4.png").unlink()
    second = ingest(source, tmp_path / "out")
    assert second["images"] == first["images"] - 1
    assert open_dataset(tmp_path / "out").pixels.shape[0] == second["images"]
    add(source, "Normal/images/Normal-4.png", b"")  # now skipped: a different artifact again
    ingest(source, tmp_path / "out")
    (source / "Normal/images/Normal-4.png").unlink()
    kaggle_folder()  # rewrites the same files
    ingest(source, tmp_path / "out")
    assert {name: (tmp_path / "out" / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)


def test_an_output_folder_inside_the_source_is_refused(kaggle_folder):
    source = kaggle_folder()
    with pytest.raises(CxrError, match=r"--out .*ingested overlaps --source"):
        ingest(source, source / "ingested")
    assert not (source / "ingested").exists()


def test_a_failed_rerun_leaves_no_artifact_rather_than_a_mixed_one(kaggle_folder, tmp_path, monkeypatch):
    source = kaggle_folder()
    ingest(source, tmp_path / "out")

    def boom(pixels, size):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(images, "resize_square", boom)
    with pytest.raises(RuntimeError):
        ingest(source, tmp_path / "out", stored_size=8)
    # The rerun replaced the old dataset from its start; what it had written is gone too.
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(CxrError, match="is not a dataset artifact"):
        open_dataset(tmp_path / "out")
    monkeypatch.undo()
    assert ingest(source, tmp_path / "out", stored_size=8)["stored_size"] == 8


# --------------------------------------------------------------------------------------------
# Skip reasons: each listed with a stable code and printed
# --------------------------------------------------------------------------------------------


def valid_png() -> bytes:
    return png_bytes(Image.fromarray(GRAY))


def png_with_bad_idat_crc() -> bytes:
    data = bytearray(valid_png())
    at = data.index(b"IDAT")
    data[at + 6] ^= 0xFF  # a byte of the compressed data; the chunk's CRC now fails
    return bytes(data)


def huge_png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, data, reason, detail",
    [
        ("empty", b"", "empty", "0 bytes"),
        ("not-an-image", b"this is a text file, not a PNG\n", "not_an_image", "cannot identify"),
        ("cut-in-half", valid_png()[: len(valid_png()) // 2], "truncated", "ends inside"),
        ("bad-crc", png_with_bad_idat_crc(), "truncated", "bad CRC"),
        ("cut-header", valid_png()[:20], "truncated", "header"),
        ("cut-jpeg", jpeg_bytes(GRAY)[:-200], "truncated", "decoding failed"),
        ("no-iend", valid_png()[:-12], "truncated", "IEND"),
        ("bomb", huge_png_header(20_000, 20_000), "too_large", "DecompressionBomb"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "",
)
def test_each_skip_reason_is_listed_and_printed(kaggle_folder, tmp_path, capsys, name, data, reason, detail):
    source = kaggle_folder(extras=False)
    add(source, f"COVID/images/{name}.png", data)
    summary = ingest(source, tmp_path / "out", max_pixels=10**9)
    skip = skipped_by_path(summary)[f"COVID/images/{name}.png"]
    assert skip["reason"] == reason and reason in images.SKIP_REASONS
    assert detail in skip["detail"]
    assert summary["images"] == 11 and summary["per_class"]["COVID"] == 3
    assert f"COVID/images/{name}.png: {reason} (" in capsys.readouterr().err


def test_too_large_by_pixels_is_refused_from_the_header(kaggle_folder, tmp_path, monkeypatch):
    source = kaggle_folder(extras=False)
    add(source, "Normal/images/big.png", png_bytes(Image.new("L", (40, 30))))
    decoded = []
    real_decode = images.decode_gray
    monkeypatch.setattr(
        images, "decode_gray", lambda data, **kw: decoded.append(1) or real_decode(data, **kw)
    )
    summary = ingest(source, tmp_path / "out", max_pixels=1000)
    skip = skipped_by_path(summary)["Normal/images/big.png"]
    assert skip["reason"] == "too_large" and "40x30 = 1,200 pixels" in skip["detail"]
    assert len(decoded) == 11  # the oversized image was never decoded


def test_zip_member_over_the_size_limit_is_refused_unread(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    add(source, "COVID/images/bomb.png", b"\0" * 5000)  # compresses to a few bytes
    summary = ingest(zip_folder(source, tmp_path / "s.zip"), tmp_path / "out", max_file_bytes=4000)
    skip = skipped_by_path(summary)["COVID/images/bomb.png"]
    assert skip["reason"] == "too_large" and "5,000 bytes" in skip["detail"]


def test_corrupt_zip_member_is_truncated(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    zip_path = zip_folder(source, tmp_path / "s.zip")
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo("Normal/images/Normal-2.png")
    # Overwrite the middle of the member's compressed data (after its 30-byte local header + name).
    start = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[start : start + 8] = b"\x00" * 8
    zip_path.write_bytes(bytes(data))
    summary = ingest(zip_path, tmp_path / "out")
    assert skipped_by_path(summary)["Normal/images/Normal-2.png"]["reason"] == "truncated"
    assert summary["images"] == 10


def test_images_under_a_folder_that_is_no_class(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    add(source, "Tuberculosis/images/TB-1.png", valid_png())
    summary = ingest(source, tmp_path / "out")
    skip = skipped_by_path(summary)["Tuberculosis/images/TB-1.png"]
    assert skip["reason"] == "unknown_class" and "'Tuberculosis'" in skip["detail"]


def test_decode_failures_after_the_header_pass_are_dropped_from_the_pixels(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    add(source, "COVID/images/COVID-0.png", png_with_bad_idat_crc())  # sorts before the good ones
    summary = ingest(source, tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")
    assert summary["images"] == dataset.pixels.shape[0] == 11
    for row, item in dataset.index.iterrows():
        assert np.array_equal(dataset.pixels[row], np.asarray(Image.open(source / item["id"])))


def test_many_skipped_files_print_a_summary_line_and_the_first_twenty(kaggle_folder, tmp_path, capsys):
    source = kaggle_folder(extras=False)
    for i in range(25):
        add(source, f"Normal/images/empty-{i:02d}.png", b"")
    summary = ingest(source, tmp_path / "out")
    assert len(summary["skipped"]) == 25
    err = capsys.readouterr().err
    assert "skipped 25 files (empty 25):" in err
    assert "empty-19.png" in err and "empty-20.png" not in err
    assert "… and 5 more, all listed in summary.json" in err


# --------------------------------------------------------------------------------------------
# Accepted encodings: all become 8-bit grayscale
# --------------------------------------------------------------------------------------------


def gray_palette_image(pixels: np.ndarray) -> Image.Image:
    im = Image.frombytes("P", pixels.shape[::-1], pixels.tobytes())
    im.putpalette([v for v in range(256) for _ in range(3)])
    return im


SIXTEEN = np.array(
    [[0, 1, 128, 129], [257, 32767, 32768, 32896], [40000, 65000, 65407, 65535], [65534, 300, 1000, 20000]],
    dtype=np.uint16,
)
ALPHA = RNG.integers(0, 256, GRAY.shape, dtype=np.uint8)


def encodings() -> list:
    rgb = np.stack([GRAY] * 3, axis=-1)
    bits = GRAY > 127
    return [
        ("L", "x.png", valid_png(), GRAY, "L", "PNG"),
        ("RGB", "x.png", png_bytes(Image.fromarray(rgb)), GRAY, "RGB", "PNG"),
        ("RGBA", "x.png", png_bytes(Image.fromarray(np.dstack([rgb, ALPHA]))), GRAY, "RGBA", "PNG"),
        (
            "LA",
            "x.png",
            png_bytes(Image.merge("LA", [Image.fromarray(GRAY), Image.fromarray(ALPHA)])),
            GRAY,
            "LA",
            "PNG",
        ),
        (
            "16-bit",
            "x.png",
            png_bytes(Image.fromarray(SIXTEEN)),
            np.round(SIXTEEN.astype(float) * 255 / 65535).astype(np.uint8),
            "I;16",
            "PNG",
        ),
        ("palette", "x.png", png_bytes(gray_palette_image(GRAY)), GRAY, "P", "PNG"),
        (
            "palette+transparency",
            "x.png",
            png_bytes(gray_palette_image(GRAY), transparency=0),
            GRAY,
            "P",
            "PNG",
        ),
        ("1-bit", "x.png", png_bytes(Image.fromarray(bits)), bits.astype(np.uint8) * 255, "1", "PNG"),
        ("JPEG named .png", "x.png", jpeg_bytes(GRAY), None, "L", "JPEG"),
        ("upper-case .PNG", "X.PNG", valid_png(), GRAY, "L", "PNG"),
    ]


@pytest.mark.parametrize(
    "label, name, data, expected, mode, fmt", encodings(), ids=[e[0] for e in encodings()]
)
def test_every_encoding_becomes_8_bit_gray(tmp_path, label, name, data, expected, mode, fmt):
    path = add(tmp_path / "src", f"Normal/images/{name}", data)
    summary = ingest(tmp_path / "src", tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")
    if expected is None:  # JPEG: whatever Pillow decodes, found by content despite the name
        expected = np.asarray(Image.open(path).convert("L"))
    assert summary["images"] == 1 and summary["skipped"] == []
    item = dataset.index.iloc[0]
    assert item["id"] == f"Normal/images/{name}"
    # str(): open_dataset reads the "1" mode back as a number (reported to the lead).
    assert (str(item["mode"]), item["format"]) == (mode, fmt)
    assert summary["color_modes"] == {mode: 1} and summary["formats"] == {fmt: 1}
    assert np.array_equal(dataset.pixels[0], expected)


def test_sixteen_bit_spans_the_whole_8_bit_range():
    gray = images.to_gray8(Image.fromarray(SIXTEEN))
    assert gray[0, 0] == 0 and gray[2, 3] == 255 and gray[1, 2] == 128
    order = np.argsort(SIXTEEN.ravel(), kind="stable")
    assert (np.diff(gray.ravel()[order].astype(int)) >= 0).all()


# --------------------------------------------------------------------------------------------
# Layout, duplicates, sizes
# --------------------------------------------------------------------------------------------


def test_masks_metadata_and_os_junk_are_ignored_and_counted(kaggle_folder, tmp_path):
    source = kaggle_folder()
    for rel in (
        "COVID/images/.DS_Store",
        "COVID/images/._COVID-1.png",
        "Normal/images/Thumbs.db",
        "Normal/desktop.ini",
        "__MACOSX/COVID/images/COVID-1.png",
        "COVID/notes.docx",
        "Normal/Normal-99.png",
        "metadata.csv",
    ):
        add(source, rel, b"junk")
    summary = ingest(source, tmp_path / "out")
    assert summary["images"] == 11 and summary["skipped"] == []
    assert summary["ignored"] == {"masks": 11, "metadata": 5, "readme": 1, "os_junk": 5, "other": 2}


def test_duplicates_within_and_across_classes(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    covid_1 = (source / "COVID/images/COVID-1.png").read_bytes()
    add(source, "COVID/images/COVID-9.png", covid_1)  # same class, same bytes
    add(source, "Normal/images/Normal-9.png", covid_1)  # other class
    rgb_copy = png_bytes(Image.open(source / "Lung_Opacity/images/Lung_Opacity-1.png").convert("RGB"))
    add(source, "Viral Pneumonia/images/Viral Pneumonia-9.png", rgb_copy)  # same pixels, other bytes
    summary = ingest(source, tmp_path / "out")
    index = open_dataset(tmp_path / "out").index.set_index("id")

    assert summary["duplicate_groups"] == 2 and summary["cross_class_duplicate_groups"] == 2
    assert summary["duplicates"] == [
        ["COVID/images/COVID-1.png", "COVID/images/COVID-9.png", "Normal/images/Normal-9.png"],
        ["Lung_Opacity/images/Lung_Opacity-1.png", "Viral Pneumonia/images/Viral Pneumonia-9.png"],
    ]
    assert index.loc["COVID/images/COVID-9.png", "duplicate_group"] == 0
    assert index.loc["Viral Pneumonia/images/Viral Pneumonia-9.png", "duplicate_group"] == 1
    assert (index["duplicate_group"] >= 0).sum() == 5
    assert index.loc["COVID/images/COVID-2.png", "duplicate_group"] == -1


def test_stored_size_is_the_most_common_side_and_others_are_resized(kaggle_folder, tmp_path):
    source = kaggle_folder(extras=False)
    wide = RNG.integers(0, 256, (10, 20), dtype=np.uint8)
    add(source, "Normal/images/wide.png", png_bytes(Image.fromarray(wide)))
    summary = ingest(source, tmp_path / "out")
    dataset = open_dataset(tmp_path / "out")
    row = dataset.index.index[dataset.index["id"] == "Normal/images/wide.png"][0]
    assert summary["stored_size"] == 16 and summary["resized"] == 1
    assert (dataset.index.loc[row, "width"], dataset.index.loc[row, "height"]) == (20, 10)
    expected = np.asarray(Image.fromarray(wide).resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(dataset.pixels[row], expected)

    summary = ingest(source, tmp_path / "small", stored_size=8)
    small = open_dataset(tmp_path / "small")
    assert small.pixels.shape == (12, 8, 8) and summary["resized"] == 12
    # Original sizes and hashes do not depend on the stored size.
    pd.testing.assert_frame_equal(small.index, dataset.index)


# --------------------------------------------------------------------------------------------
# Errors a user can fix
# --------------------------------------------------------------------------------------------


def test_clear_errors(kaggle_folder, tmp_path):
    with pytest.raises(CxrError, match="no such file or folder"):
        ingest(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CxrError, match="not a folder or .zip"):
        ingest(tmp_path / "notes.txt", tmp_path / "out")
    flat = tmp_path / "flat"
    add(flat, "COVID/COVID-1.png", valid_png())  # no images/ folder
    with pytest.raises(CxrError, match=r"no usable image.*CLASS/images/\*\.png.*other 1") as err:
        ingest(flat, tmp_path / "out")
    assert str(flat) in str(err.value) and "\n" not in str(err.value)
    only_bad = tmp_path / "bad"
    add(only_bad, "COVID/images/a.png", b"")
    with pytest.raises(CxrError, match="no usable image"):
        ingest(only_bad, tmp_path / "out")
    decode_fails = tmp_path / "decode-fails"
    add(decode_fails, "COVID/images/a.png", png_with_bad_idat_crc())
    with pytest.raises(CxrError, match=f"--source {decode_fails}: no usable image.*skipped: 1"):
        ingest(decode_fails, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    kaggle_folder("two/A")
    kaggle_folder("two/B")
    with pytest.raises(CxrError, match="2 different folders.*point --source at one"):
        ingest(tmp_path / "two", tmp_path / "out")
    with pytest.raises(CxrError, match="--stored-size"):
        ingest(kaggle_folder(), tmp_path / "out", stored_size=0)
    with pytest.raises(CxrError, match="is a file"):
        ingest(kaggle_folder(), tmp_path / "notes.txt")
    assert not (tmp_path / "out").exists()


def test_linked_class_folders_outside_are_followed_when_asked_and_a_link_loop_is_walked_once(tmp_path):
    from tests.conftest import write_kaggle_folder

    data = tmp_path / "data"
    elsewhere = write_kaggle_folder(tmp_path / "elsewhere", {"COVID": 2, "Normal": 3})
    data.mkdir()
    (data / "COVID").symlink_to(elsewhere / "COVID", target_is_directory=True)
    (data / "Normal").symlink_to(elsewhere / "Normal", target_is_directory=True)
    (data / "Normal" / "images" / "loop").symlink_to(data, target_is_directory=True)
    summary = ingest(str(data), tmp_path / "out", follow_links=True)
    assert summary["per_class"]["COVID"] == 2 and summary["per_class"]["Normal"] == 3


def test_links_leaving_the_source_are_skipped_and_listed_not_followed(tmp_path, capsys):
    from tests.conftest import write_kaggle_folder

    data = write_kaggle_folder(tmp_path / "data", {"COVID": 2, "Normal": 3})
    secret = tmp_path / "private" / "id_rsa.png"
    secret.parent.mkdir()
    secret.write_bytes((data / "COVID/images/COVID-1.png").read_bytes())
    (data / "Normal/images/Normal-9.png").symlink_to(secret)
    (data / "Normal/images/home").symlink_to(tmp_path / "private", target_is_directory=True)
    (data / "Normal/images/Normal-1-again.png").symlink_to(data / "Normal/images/Normal-1.png")
    summary = ingest(str(data), tmp_path / "out")
    assert summary["per_class"] == {"COVID": 2, "Lung_Opacity": 0, "Normal": 4, "Viral Pneumonia": 0}
    refused = {s["path"]: s for s in summary["skipped"] if s["reason"] == "link_outside_source"}
    assert set(refused) == {"Normal/images/Normal-9.png", "Normal/images/home"}
    assert str(secret) in refused["Normal/images/Normal-9.png"]["detail"]
    assert "--follow-links" in refused["Normal/images/home"]["detail"]
    assert "link_outside_source 2" in capsys.readouterr().err


# --- hostile and broken input: a clear error or a listed skip, never a traceback ----------------------


def test_zip_members_that_collide_after_normalisation_are_refused(tmp_path):
    data = png_bytes(Image.fromarray(GRAY))
    archive = tmp_path / "collide.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("COVID/images/a.png", data)
        zf.writestr("COVID\\images\\a.png", data)
    with pytest.raises(
        CxrError, match=r"members 'COVID/images/a.png' and 'COVID\\\\images\\\\a.png' both name"
    ):
        ingest(archive, tmp_path / "out")


def test_a_member_expanding_like_a_zip_bomb_is_skipped_and_listed(kaggle_folder, tmp_path):
    archive = zip_folder(kaggle_folder(), tmp_path / "bomb.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("COVID/images/bomb.png", b"\0" * (8 << 20))  # 8 MiB of zeros: about 1000:1
    summary = ingest(archive, tmp_path / "out")
    bomb = skipped_by_path(summary)["COVID/images/bomb.png"]
    assert bomb["reason"] == images.SUSPICIOUS_ARCHIVE_MEMBER and "over the 50:1" in bomb["detail"]


def test_data_after_the_png_end_is_a_listed_skip(kaggle_folder, tmp_path):
    source = kaggle_folder()
    add(source, "Normal/images/tail.png", png_bytes(Image.fromarray(GRAY)) + b"#!/bin/sh\necho hidden\n")
    tail = skipped_by_path(ingest(source, tmp_path / "out"))["Normal/images/tail.png"]
    assert tail["reason"] == images.TRAILING_DATA and tail["detail"] == "22 bytes after the PNG IEND chunk"


def test_names_that_cannot_round_trip_are_listed_skips_and_the_outputs_stay_valid(kaggle_folder, tmp_path):
    import os

    source = kaggle_folder()
    data = png_bytes(Image.fromarray(GRAY))
    add(source, "Normal/images/two\nlines.png", data)
    (source / "Normal" / "images").joinpath(os.fsdecode(b"latin1-\xe9.png")).write_bytes(data)
    summary = ingest(source, tmp_path / "out")
    bad = {s["path"]: s["reason"] for s in summary["skipped"] if s["reason"] == images.BAD_NAME}
    assert bad == {
        "Normal/images/two\\nlines.png": "bad_name",
        "Normal/images/latin1-\\xe9.png": "bad_name",
    }
    json.loads((tmp_path / "out" / SUMMARY_FILE).read_text(encoding="utf-8"))  # strict UTF-8 JSON
    assert len(open_dataset(tmp_path / "out").index) == summary["images"]


def test_a_missing_class_is_warned_about_and_split_refuses_it(kaggle_folder, tmp_path, capsys):
    from components.split import split

    source = kaggle_folder(per_class={"COVID": 4, "Lung_Opacity": 4, "Normal": 4})
    ingest(source, tmp_path / "out")
    assert "warning: no images of class Viral Pneumonia" in capsys.readouterr().err
    with pytest.raises(CxrError, match="class Viral Pneumonia has no images; the study compares all four"):
        split(tmp_path / "out", tmp_path / "split")
