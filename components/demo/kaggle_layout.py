"""The demo dataset on disk: synthetic phantoms in the exact layout of the Kaggle download.

`make_demo_dataset` writes a learnable, class-imbalanced dataset laid out like the COVID-19
Radiography Database (folders, file names with their spaces, masks, metadata files, readme), so
every step and the whole pipeline run end to end offline.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.progress import Progress, log
from components.demo.phantom import (
    check_seed,
    check_size,
    check_total,
    class_counts,
    mask_size,
    phantoms,
    render,
    render_mask,
)

RGB_FRACTION = 0.05
README_NAME = "README.md.txt"
README_MARKER = "Synthetic demo data from cxr-kfp"


def _rgb_picks(total: int, seed: int) -> set[int]:
    """Positions (in class order) of the images stored as 3-channel PNGs, about RGB_FRACTION."""
    count = max(1, round(RGB_FRACTION * total))
    order = np.random.default_rng([seed, len(CLASS_NAMES), 0]).permutation(total)
    return {int(i) for i in order[:count]}


def _write_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG")


# An .xlsx is a zip whose entries carry the time of writing, and openpyxl stamps the document's
# created/modified dates: both are pinned so the same arguments give the same bytes.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FIXED_DOC_TIME = "2020-01-01T00:00:00Z"
_DOC_TIME_RE = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def _write_metadata(path: Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    table.to_excel(buffer, index=False, engine="openpyxl")
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _DOC_TIME_RE.sub(rb"\g<1>" + _FIXED_DOC_TIME.encode() + rb"\g<3>", data)
            dst.writestr(
                zipfile.ZipInfo(info.filename, _FIXED_ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
            )
    path.write_bytes(out.getvalue())


def _readme(summary: dict) -> str:
    counts = "\n".join(f"  {name}: {n} images" for name, n in summary["per_class"].items())
    return (
        f"{README_MARKER} - NOT real chest X-rays and not for any medical use.\n\n"
        "This folder mimics the layout of the Kaggle COVID-19 Radiography Database\n"
        "(<class>/images/<class>-N.png, <class>/masks/<class>-N.png, <class>.metadata.xlsx)\n"
        "so the cxr-kfp pipeline can run end to end offline. Every image is a synthetic\n"
        "chest-like phantom with a per-class pattern: Normal = clean lungs; COVID = bilateral\n"
        "peripheral ground-glass blobs in the lower zones; Lung_Opacity = one dense consolidation;\n"
        "Viral Pneumonia = diffuse reticular pattern on a smaller (paediatric) thorax.\n\n"
        f"Made by: cxr demo-data --total {summary['images']} --size {summary['size']} "
        f"--seed {summary['seed']}\n"
        f"seed: {summary['seed']}\n"
        f"image size: {summary['size']} x {summary['size']} px (8-bit grayscale; "
        f"{summary['rgb_images']} stored as 3-channel RGB)\n"
        f"mask size: {summary['mask_size']} x {summary['mask_size']} px\n"
        f"images: {summary['images']}\n{counts}\n"
    )


def _is_demo_folder(path: Path) -> bool:
    readme = path / README_NAME
    try:
        return readme.is_file() and readme.read_text(errors="replace").startswith(README_MARKER)
    except OSError:
        return False


def make_demo_dataset(out_dir: Path, total: int = 240, size: int = 299, seed: int = 0) -> dict:
    """Writes a synthetic dataset in the Kaggle layout of the COVID-19 Radiography Database.

    `out_dir` itself becomes the dataset folder: `COVID/images/COVID-1.png`,
    `COVID/masks/COVID-1.png`, … `Viral Pneumonia/images/Viral Pneumonia-1.png` (with the space),
    the four `<class>.metadata.xlsx` files and `README.md.txt`. Classes keep the real proportions
    (see `class_counts`). Images are `size`-pixel 8-bit grayscale PNGs, about 5 % of them stored
    as 3-channel RGB with equal channels like some real files; masks are binary 8-bit lung masks
    at `mask_size(size)` pixels. The same arguments give byte-identical files. A rerun replaces
    the folder's content; a folder that holds anything other than an earlier demo set is refused.

    Args:
        out_dir: The dataset folder to write (created, or replaced if it is an earlier demo set).
        total: Number of images (24 to 100,000).
        size: Image side in pixels (32 to 1024; the real set is 299).
        seed: Non-negative seed.

    Returns:
        Summary: path, images, per_class counts, size, mask_size, seed, rgb_images.

    Raises:
        CxrError: On a bad argument, or when `out_dir` is a file or a non-empty folder that is
            not a demo dataset.
    """
    check_total(total)
    check_size(size)
    check_seed(seed)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise CxrError(f"{out_dir} exists and is not a folder; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_demo_folder(out_dir):
        raise CxrError(
            f"{out_dir} is not empty and is not a demo dataset (no cxr-kfp {README_NAME}); "
            "refusing to replace it: choose an empty or new folder"
        )

    started = time.monotonic()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    counts = class_counts(total)
    for name in CLASS_NAMES:
        (staging / name / "images").mkdir(parents=True)
        (staging / name / "masks").mkdir(parents=True)

    m = mask_size(size)
    rgb = _rgb_picks(total, seed)
    rows: dict[str, list[dict]] = {name: [] for name in CLASS_NAMES}
    progress = Progress("demo-data", total)
    try:
        for i, (label, number, phantom, rng) in enumerate(phantoms(total, seed)):
            name = CLASS_NAMES[label]
            file_name = f"{name}-{number}.png"
            pixels = render(phantom, size, rng)
            if i in rgb:
                pixels = np.repeat(pixels[..., np.newaxis], 3, axis=2)
            _write_png(staging / name / "images" / file_name, pixels)
            _write_png(staging / name / "masks" / file_name, render_mask(phantom, m))
            rows[name].append(
                {
                    "FILE NAME": f"{name}-{number}",
                    "FORMAT": "PNG",
                    "SIZE": f"{size}*{size}",
                    "URL": f"synthetic://cxr-kfp/demo-data?seed={seed}",
                }
            )
            progress.advance()
        for name in CLASS_NAMES:
            _write_metadata(staging / f"{name}.metadata.xlsx", pd.DataFrame(rows[name]))
        summary = {
            "path": str(out_dir),
            "images": total,
            "per_class": counts,
            "size": size,
            "mask_size": m,
            "seed": seed,
            "rgb_images": len(rgb),
        }
        (staging / README_NAME).write_text(_readme(summary))
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(
        f"demo-data: {total} synthetic images ({', '.join(f'{k} {v}' for k, v in counts.items())}) "
        f"in {out_dir} ({time.monotonic() - started:.1f} s)"
    )
    return summary


def _replace_dir(new: Path, target: Path) -> None:
    """Puts folder `new` at `target`, replacing what is there with two renames."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
