"""Offline stand-ins for what cannot be downloaded here: the Kaggle dataset and ImageNet weights.

`make_demo_dataset` writes a synthetic, learnable, class-imbalanced dataset in the exact layout of
the COVID-19 Radiography Database (folders, file names with their spaces, masks, metadata files),
so every step and the whole pipeline run end to end on it. Each image is a chest-like phantom
(dark background, bright thorax, two darker lung fields, spine, faint ribs) with per-image jitter
and one pattern per class:

- Normal: clean lungs.
- COVID: bilateral, peripheral, patchy ground-glass blobs in the lower zones.
- Lung_Opacity: one dense, localised consolidation in one lung.
- Viral Pneumonia: a diffuse bilateral reticular (streaky) pattern on a smaller, paediatric thorax
  (like the real set, where every Viral Pneumonia image is paediatric).

`make_demo_weights` pretrains a no-top MobileNetV2 on a separate synthetic pretext set, because a
frozen, randomly initialised backbone gives useless features and ImageNet weights cannot be
fetched offline. The file loads with
`keras.applications.MobileNetV2(include_top=False, weights=PATH, input_shape=(S, S, 3))`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.progress import Progress, log
from components.core.storage import cache_dir

# Image counts of the real download, in CLASS_NAMES order (21,165 images).
REAL_COUNTS: tuple[int, ...] = (3616, 6012, 10192, 1345)
MIN_PER_CLASS = 6
MAX_TOTAL = 100_000
MIN_SIZE, MAX_SIZE = 32, 1024
# The real images are 299 px and their masks 256 px; masks scale with the image size.
REAL_IMAGE_SIZE, REAL_MASK_SIZE = 299, 256
RGB_FRACTION = 0.05

README_NAME = "README.md.txt"
README_MARKER = "Synthetic demo data from cxr-kfp"

# Bump when the phantom or the pretraining recipe changes, so cached weights are rebuilt.
DEMO_WEIGHTS_VERSION = 2
PRETEXT_SEED_OFFSET = 10_000
# 1440 images × 3 epochs (135 steps) rather than 480 × 8 (120 steps): about the same compute, but
# 480 images are memorised rather than learned from. Measured at 64 px, a linear probe on the frozen
# pooled features of another demo set reached 0.92 instead of 0.68 (0.84 at 96 px; 0.48, the
# majority class, with random weights).
PRETEXT_IMAGES = 1440
PRETEXT_EPOCHS = 3
PRETEXT_CHECK_IMAGES = 120
PRETEXT_BATCH_SIZE = 32
PRETEXT_LEARNING_RATE = 1e-3
PRETEXT_BN_MOMENTUM = 0.9
WEIGHTS_SUFFIX = ".weights.h5"


# ---------------------------------------------------------------------------------------------
# Synthetic images
# ---------------------------------------------------------------------------------------------

def class_counts(total: int) -> dict[str, int]:
    """Images per class for a demo set of `total` images, in the real set's proportions.

    Largest-remainder rounding of total × 3616 / 6012 / 10192 / 1345 ÷ 21165, then every class is
    raised to at least MIN_PER_CLASS images (taken from the largest class) so tiny sets can still
    be split three ways.

    Args:
        total: Number of images, at least 4 × MIN_PER_CLASS.

    Returns:
        Class name → image count, in CLASS_NAMES order; the counts sum to `total`.
    """
    _check_total(total)
    real = np.array(REAL_COUNTS, dtype=np.int64)
    scaled = total * real
    counts = scaled // real.sum()
    by_remainder = np.argsort(-(scaled % real.sum()), kind="stable")
    counts[by_remainder[: total - counts.sum()]] += 1
    while counts.min() < MIN_PER_CLASS:
        counts[counts.argmin()] += 1
        counts[counts.argmax()] -= 1
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True)}


def _check_total(total: int) -> None:
    if not isinstance(total, int | np.integer) or not 4 * MIN_PER_CLASS <= total <= MAX_TOTAL:
        raise CxrError(f"--total must be an integer from {4 * MIN_PER_CLASS} "
                       f"({MIN_PER_CLASS} images per class) to {MAX_TOTAL}, got {total!r}")


def _check_size(size: int, what: str = "--size") -> None:
    if not isinstance(size, int | np.integer) or not MIN_SIZE <= size <= MAX_SIZE:
        raise CxrError(f"{what} must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise CxrError(f"--seed must be a non-negative integer, got {seed!r}")


def mask_size(size: int) -> int:
    """Side of the lung masks that go with `size`-pixel images (256 for the real 299)."""
    return round(size * REAL_MASK_SIZE / REAL_IMAGE_SIZE)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Pixel centres in [-1, 1]; u grows to the image's right, v downwards.
    axis = ((np.arange(n, dtype=np.float32) + 0.5) / n) * 2.0 - 1.0
    return np.meshgrid(axis, axis)


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    """0 below -width/2, 1 above width/2, linear in between: a cheap soft edge."""
    return np.clip(x * (1.0 / width) + 0.5, 0.0, 1.0)


def _ellipse(u, v, cx, cy, ax, ay, edge=0.04, angle=0.0) -> np.ndarray:
    """Soft membership (0..1) of an ellipse; `edge` is the blur width in radius units."""
    du, dv = u - cx, v - cy
    if angle:
        c, s = float(np.cos(angle)), float(np.sin(angle))
        du, dv = c * du + s * dv, -s * du + c * dv
    du *= 1.0 / ax
    dv *= 1.0 / ay
    return _ramp(1.0 - np.sqrt(du * du + dv * dv), 4 * edge)


def _draw_phantom(rng: np.random.Generator, label: int) -> dict:
    """All random choices of one image, independent of its pixel size (so masks match images)."""
    paediatric = CLASS_NAMES[label] == "Viral Pneumonia"
    s = rng.uniform(0.74, 0.86) if paediatric else rng.uniform(0.90, 1.04)
    cx, cy = rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05)
    p = {
        "label": label, "s": s, "cx": cx, "cy": cy,
        "lung_dx": rng.uniform(0.36, 0.41) * s, "lung_ax": rng.uniform(0.27, 0.31) * s,
        "lung_ay": rng.uniform(0.56, 0.64) * s, "lung_tilt": rng.uniform(0.05, 0.15),
        "heart_dx": rng.uniform(0.04, 0.10) * s, "heart_ax": rng.uniform(0.22, 0.28) * s,
        "background": rng.uniform(0.02, 0.10), "tissue": rng.uniform(0.52, 0.66),
        "lung_dark": rng.uniform(0.28, 0.38), "spine": rng.uniform(0.06, 0.14),
        "rib_amp": rng.uniform(0.05, 0.10), "rib_period": rng.uniform(0.15, 0.19) * s,
        "rib_phase": rng.uniform(0, 2 * np.pi),
        "shading": [(rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(0, 2 * np.pi),
                     rng.uniform(0.01, 0.025)) for _ in range(2)],
        "gamma": rng.uniform(0.9, 1.12), "contrast": rng.uniform(0.9, 1.1),
        "brightness": rng.uniform(-0.05, 0.05), "noise": rng.uniform(0.01, 0.03),
        # A small bright spot (nipple shadow, ECG lead) in any class, so no pattern is "any blob".
        "spot": (rng.uniform(-1, 1), rng.uniform(-0.2, 0.6), rng.uniform(0.02, 0.035))
        if rng.random() < 0.3 else None,
    }
    name = CLASS_NAMES[label]
    if name == "COVID":
        blobs = []
        for side in (-1, 1):  # bilateral
            for _ in range(rng.integers(3, 6)):
                du = side * rng.uniform(0.3, 0.9)  # towards the lateral (peripheral) edge
                dv = rng.uniform(0.1, 0.85)  # lower zones
                blobs.append((side, du, dv, rng.uniform(0.08, 0.13) * s, rng.uniform(0.15, 0.30)))
        p["blobs"] = blobs
        p["glass_max"] = rng.uniform(0.22, 0.34)
    elif name == "Lung_Opacity":
        p["consolidation"] = (rng.choice([-1, 1]), rng.uniform(-0.45, 0.45), rng.uniform(-0.5, 0.6),
                              rng.uniform(0.16, 0.24) * s, rng.uniform(0.20, 0.32) * s,
                              rng.uniform(0, np.pi), rng.uniform(0.30, 0.42))
    elif name == "Viral Pneumonia":
        p["streaks"] = [(rng.uniform(0, np.pi), rng.uniform(0.15, 0.22) * s, rng.uniform(0, 2 * np.pi))
                        for _ in range(3)]
        p["streak_amp"] = rng.uniform(0.09, 0.16)
        p["haze"] = rng.uniform(0.03, 0.07)
    return p


def _lung_fields(p: dict, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thorax, lungs, heart) soft masks of one phantom on a grid."""
    s, cx, cy = p["s"], p["cx"], p["cy"]
    thorax = _ellipse(u, v, cx, cy + 0.05 * s, 0.84 * s, 0.90 * s, edge=0.03)
    lung_cy = cy - 0.02 * s
    right = _ellipse(u, v, cx - p["lung_dx"], lung_cy, p["lung_ax"], p["lung_ay"], angle=p["lung_tilt"])
    left = _ellipse(u, v, cx + p["lung_dx"], lung_cy, p["lung_ax"], p["lung_ay"], angle=-p["lung_tilt"])
    heart = _ellipse(u, v, cx + p["heart_dx"], cy + 0.36 * s, p["heart_ax"], 0.20 * s, edge=0.06)
    lungs = np.maximum(right, left) * (1.0 - heart)
    return thorax, lungs, heart


def _pathology(p: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Extra opacity (0..~0.4) of the class pattern, before it is confined to the lungs."""
    s, cx, lung_cy = p["s"], p["cx"], p["cy"] - 0.02 * p["s"]
    if "blobs" in p:
        glass = np.zeros_like(u)
        for side, du, dv, sigma, amp in p["blobs"]:
            bx = cx + side * p["lung_dx"] + du * p["lung_ax"]
            by = lung_cy + dv * p["lung_ay"]
            glass += amp * np.exp(((u - bx) ** 2 + (v - by) ** 2) * (-0.5 / sigma**2))
        return p["glass_max"] * (1.0 - np.exp(-glass / p["glass_max"]))
    if "consolidation" in p:
        side, du, dv, ax, ay, angle, amp = p["consolidation"]
        bx = cx + side * p["lung_dx"] + du * p["lung_ax"]
        by = lung_cy + dv * p["lung_ay"]
        return amp * _ellipse(u, v, bx, by, ax, ay, edge=0.12, angle=angle)
    if "streaks" in p:
        lines = np.zeros_like(u)
        for angle, period, phase in p["streaks"]:
            k = 2 * np.pi / period
            wave = 0.5 + 0.5 * np.cos(u * (k * np.cos(angle)) + v * (k * np.sin(angle)) + phase)
            wave *= wave
            lines += wave * wave
        # Interstitial markings are strongest near the hila and fade towards the periphery.
        hila = np.exp(-(((np.abs(u - cx) - 0.18 * s) / (0.35 * s)) ** 2 + ((v - lung_cy) / (0.6 * s)) ** 2))
        return p["haze"] + p["streak_amp"] * lines / 1.5 * (0.5 + 0.5 * hila)
    return np.zeros_like(u)


def _render(p: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit grayscale image (size, size) of one phantom."""
    u, v = _grid(size)
    s, cx, cy = p["s"], p["cx"], p["cy"]
    thorax, lungs, heart = _lung_fields(p, u, v)
    spine = _ramp(0.055 * s - np.abs(u - cx), 0.05) * thorax
    ribs = 0.5 + 0.5 * np.cos(2 * np.pi * ((v - cy) + 0.35 * (u - cx) ** 2 / s) / p["rib_period"]
                              + p["rib_phase"])
    ribs *= ribs * ribs
    ribs *= ribs * thorax
    img = (p["background"] + p["tissue"] * thorax + p["spine"] * spine + 0.04 * heart
           + p["rib_amp"] * ribs * (0.4 + 0.6 * lungs)
           - (p["lung_dark"] - _pathology(p, u, v)) * lungs)
    if p["spot"] is not None:
        sx, sy, radius = p["spot"]
        img += 0.25 * _ellipse(u, v, cx + sx * 0.6 * s, cy + sy * s, radius, radius, edge=0.15)
    for ku, kv, phase, amp in p["shading"]:
        img += amp * np.cos(np.pi * (ku * u + kv * v) + phase)
    # Gamma, contrast and brightness through a lookup table (a per-pixel power is slow).
    levels = np.linspace(0.0, 1.0, 1024, dtype=np.float32) ** p["gamma"]
    levels = (levels - 0.5) * p["contrast"] + 0.5 + p["brightness"]
    img = levels[(np.clip(img, 0.0, 1.0) * 1023.0 + 0.5).astype(np.intp)]
    img += rng.normal(0.0, p["noise"], img.shape).astype(np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _render_mask(p: dict, size: int) -> np.ndarray:
    """The binary lung mask (0 or 255) of one phantom at `size` pixels."""
    u, v = _grid(size)
    _, lungs, _ = _lung_fields(p, u, v)
    return np.where(lungs > 0.5, 255, 0).astype(np.uint8)


def _phantoms(total: int, seed: int) -> Iterator[tuple[int, int, dict, np.random.Generator]]:
    """(label, number from 1, drawn phantom, its pixel-noise generator) for each image in class order.

    Every image has its own generator seeded by (seed, class, number), so an image does not
    depend on `total` or on the size it is drawn at (except for its pixel noise).
    """
    for label, count in enumerate(class_counts(total).values()):
        for number in range(1, count + 1):
            rng = np.random.default_rng([seed, label, number])
            yield label, number, _draw_phantom(rng, label), rng


def demo_arrays(total: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic images of a demo set as arrays, without writing any file.

    Args:
        total: Number of images (split over the classes as in `class_counts`).
        size: Image side in pixels.
        seed: Seed; the same arguments always give the same arrays.

    Returns:
        (images, labels): uint8 (total, size, size) grayscale images in class order, and int64
        labels (positions in CLASS_NAMES). They equal the pixels `make_demo_dataset` writes.
    """
    _check_total(total)
    _check_size(size)
    _check_seed(seed)
    images = np.empty((total, size, size), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    for i, (label, _, phantom, rng) in enumerate(_phantoms(total, seed)):
        images[i] = _render(phantom, size, rng)
        labels[i] = label
    return images, labels


# ---------------------------------------------------------------------------------------------
# The dataset folder
# ---------------------------------------------------------------------------------------------

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
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _DOC_TIME_RE.sub(rb"\g<1>" + _FIXED_DOC_TIME.encode() + rb"\g<3>", data)
            dst.writestr(zipfile.ZipInfo(info.filename, _FIXED_ZIP_TIME), data,
                         compress_type=zipfile.ZIP_DEFLATED)
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
    _check_total(total)
    _check_size(size)
    _check_seed(seed)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise CxrError(f"{out_dir} exists and is not a folder; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_demo_folder(out_dir):
        raise CxrError(f"{out_dir} is not empty and is not a demo dataset (no cxr-kfp {README_NAME}); "
                       "refusing to replace it: choose an empty or new folder")

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
        for i, (label, number, phantom, rng) in enumerate(_phantoms(total, seed)):
            name = CLASS_NAMES[label]
            file_name = f"{name}-{number}.png"
            pixels = _render(phantom, size, rng)
            if i in rgb:
                pixels = np.repeat(pixels[..., np.newaxis], 3, axis=2)
            _write_png(staging / name / "images" / file_name, pixels)
            _write_png(staging / name / "masks" / file_name, _render_mask(phantom, m))
            rows[name].append({"FILE NAME": f"{name}-{number}", "FORMAT": "PNG", "SIZE": f"{size}*{size}",
                               "URL": f"synthetic://cxr-kfp/demo-data?seed={seed}"})
            progress.advance()
        for name in CLASS_NAMES:
            _write_metadata(staging / f"{name}.metadata.xlsx", pd.DataFrame(rows[name]))
        summary = {"path": str(out_dir), "images": total, "per_class": counts, "size": size,
                   "mask_size": m, "seed": seed, "rgb_images": len(rgb)}
        (staging / README_NAME).write_text(_readme(summary))
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"demo-data: {total} synthetic images ({', '.join(f'{k} {v}' for k, v in counts.items())}) "
        f"in {out_dir} ({time.monotonic() - started:.1f} s)")
    return summary


def _replace_dir(new: Path, target: Path) -> None:
    """Puts folder `new` at `target`, replacing what is there with two renames."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The offline demo backbone
# ---------------------------------------------------------------------------------------------

def demo_weights_cache_path(image_size: int, seed: int) -> Path:
    """The cached demo backbone for (image_size, seed, DEMO_WEIGHTS_VERSION)."""
    return (cache_dir() / "demo-weights"
            / f"mobilenetv2-notop-demo-v{DEMO_WEIGHTS_VERSION}-{image_size}px-seed{seed}{WEIGHTS_SUFFIX}")


def make_demo_weights(out_file: Path, image_size: int = 64, seed: int = 0) -> Path:
    """Writes offline-pretrained MobileNetV2 backbone weights (no top) for demos and tests.

    A stand-in for ImageNet weights: MobileNetV2 (weights=None) is pretrained on a synthetic
    pretext set of PRETEXT_IMAGES demo images drawn with seed + PRETEXT_SEED_OFFSET (so it shares
    no image with demo sets made with small seeds), and only the backbone's weights are saved.
    Load them with `keras.applications.MobileNetV2(include_top=False, weights=out_file,
    input_shape=(S, S, 3))` at any S ≥ 32. The first call per (image_size, seed) trains (2 to 4
    minutes on 2 busy CPU cores) and caches the result under `cache_dir()/demo-weights/`; later
    calls copy the cached file.

    Args:
        out_file: Destination; its name must end in `.weights.h5` (Keras' weights-only format).
        image_size: Side of the pretraining images in pixels (use the training image size).
        seed: Seed of the pretext set and of training.

    Returns:
        out_file.

    Raises:
        CxrError: When out_file does not end in `.weights.h5`, or on a bad image size or seed.
    """
    out_file = Path(out_file).expanduser()
    if not out_file.name.endswith(WEIGHTS_SUFFIX) or out_file.name == WEIGHTS_SUFFIX:
        raise CxrError(f"{out_file}: the weights file name must end in {WEIGHTS_SUFFIX} "
                       f"(e.g. demo-backbone{WEIGHTS_SUFFIX}), which Keras requires to load it")
    _check_size(image_size, "--image-size")
    _check_seed(seed)
    if out_file.is_dir():
        raise CxrError(f"{out_file} is a folder; give the path of a {WEIGHTS_SUFFIX} file")
    cached = demo_weights_cache_path(image_size, seed)
    if cached.is_file():
        log(f"demo-weights: using cached {cached}")
    else:
        cached.parent.mkdir(parents=True, exist_ok=True)
        _pretrain(cached, image_size, seed)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp-{os.getpid()}")
    shutil.copyfile(cached, tmp)
    tmp.replace(out_file)
    log(f"demo-weights: wrote {out_file}")
    return out_file


def _pretrain(cached: Path, image_size: int, seed: int) -> None:
    """Pretrains the backbone on the pretext set and saves its weights to `cached` atomically."""
    import keras
    import tensorflow as tf

    started = time.monotonic()
    log(f"demo-weights: pretraining MobileNetV2 ({image_size} px, seed {seed}) on {PRETEXT_IMAGES} "
        f"synthetic images, {PRETEXT_EPOCHS} epochs; once, then cached in {cached.parent}")
    keras.utils.set_random_seed(seed)
    # Drawn at the real 299 px and area-resized, as the input pipeline does to stored pixels.
    def pixels(total: int, pretext_seed: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = demo_arrays(total, REAL_IMAGE_SIZE, pretext_seed)
        return tf.image.resize(images[..., np.newaxis].astype(np.float32), (image_size, image_size),
                               method="area").numpy(), labels

    x, labels = pixels(PRETEXT_IMAGES, seed + PRETEXT_SEED_OFFSET)

    inputs = keras.Input((image_size, image_size, 1))
    rgb = keras.layers.Concatenate()([inputs, inputs, inputs])
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(rgb)  # = mobilenet_v2.preprocess_input
    base = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=(image_size, image_size, 3))
    # At Keras' default momentum (0.999) the moving statistics barely leave their initial values
    # in ~120 steps, and the frozen backbone is useless in inference mode.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = PRETEXT_BN_MOMENTUM
    pooled = keras.layers.GlobalAveragePooling2D()(base(scaled))
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(PRETEXT_LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class _EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"demo-weights: epoch {epoch + 1}/{PRETEXT_EPOCHS} loss {logs.get('loss', np.nan):.3f} "
                f"accuracy {logs.get('accuracy', np.nan):.3f} ({time.monotonic() - started:.0f} s)")

    model.fit(x, labels, epochs=PRETEXT_EPOCHS, batch_size=PRETEXT_BATCH_SIZE, shuffle=True,
              verbose=0, callbacks=[_EpochLog()])
    # The backbone is used frozen, in inference mode: report how well it does in that mode on
    # images it has not seen.
    held_x, held_labels = pixels(PRETEXT_CHECK_IMAGES, seed + PRETEXT_SEED_OFFSET + 1)
    predicted = model.predict(held_x, batch_size=PRETEXT_CHECK_IMAGES, verbose=0).argmax(axis=1)
    log(f"demo-weights: accuracy on {PRETEXT_CHECK_IMAGES} unseen synthetic images in inference mode "
        f"{np.mean(predicted == held_labels):.3f} ({time.monotonic() - started:.0f} s)")

    tmp = cached.with_name(f".tmp-{os.getpid()}-{cached.name}")
    base.save_weights(tmp)
    tmp.replace(cached)
