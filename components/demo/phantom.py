"""Synthetic chest-like phantoms: the images of the demo dataset, drawn from a seed.

Each image is a chest-like phantom (dark background, bright thorax, two darker lung fields, spine,
faint ribs) with per-image jitter and one pattern per class:

- Normal: clean lungs.
- COVID: bilateral, peripheral, patchy ground-glass blobs in the lower zones.
- Lung_Opacity: one dense, localised consolidation in one lung.
- Viral Pneumonia: a diffuse bilateral reticular (streaky) pattern on a smaller, paediatric thorax
  (like the real set, where every Viral Pneumonia image is paediatric).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError

# Image counts of the real download, in CLASS_NAMES order (21,165 images).
REAL_COUNTS: tuple[int, ...] = (3616, 6012, 10192, 1345)
MIN_PER_CLASS = 6
MAX_TOTAL = 100_000
MIN_SIZE, MAX_SIZE = 32, 1024
# The real images are 299 px and their masks 256 px; masks scale with the image size.
REAL_IMAGE_SIZE, REAL_MASK_SIZE = 299, 256


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
    check_total(total)
    real = np.array(REAL_COUNTS, dtype=np.int64)
    scaled = total * real
    counts = scaled // real.sum()
    by_remainder = np.argsort(-(scaled % real.sum()), kind="stable")
    counts[by_remainder[: total - counts.sum()]] += 1
    while counts.min() < MIN_PER_CLASS:
        counts[counts.argmin()] += 1
        counts[counts.argmax()] -= 1
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True)}


def check_total(total: int) -> None:
    """A demo set's image count: 4 × MIN_PER_CLASS to MAX_TOTAL."""
    if not isinstance(total, int | np.integer) or not 4 * MIN_PER_CLASS <= total <= MAX_TOTAL:
        raise CxrError(
            f"--total must be an integer from {4 * MIN_PER_CLASS} "
            f"({MIN_PER_CLASS} images per class) to {MAX_TOTAL}, got {total!r}"
        )


def check_size(size: int, what: str = "--size") -> None:
    """An image side in pixels: MIN_SIZE to MAX_SIZE."""
    if not isinstance(size, int | np.integer) or not MIN_SIZE <= size <= MAX_SIZE:
        raise CxrError(f"{what} must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")


def check_seed(seed: int) -> None:
    """A non-negative integer seed."""
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
        "label": label,
        "s": s,
        "cx": cx,
        "cy": cy,
        "lung_dx": rng.uniform(0.36, 0.41) * s,
        "lung_ax": rng.uniform(0.27, 0.31) * s,
        "lung_ay": rng.uniform(0.56, 0.64) * s,
        "lung_tilt": rng.uniform(0.05, 0.15),
        "heart_dx": rng.uniform(0.04, 0.10) * s,
        "heart_ax": rng.uniform(0.22, 0.28) * s,
        "background": rng.uniform(0.02, 0.10),
        "tissue": rng.uniform(0.52, 0.66),
        "lung_dark": rng.uniform(0.28, 0.38),
        "spine": rng.uniform(0.06, 0.14),
        "rib_amp": rng.uniform(0.05, 0.10),
        "rib_period": rng.uniform(0.15, 0.19) * s,
        "rib_phase": rng.uniform(0, 2 * np.pi),
        "shading": [
            (
                rng.uniform(-1.5, 1.5),
                rng.uniform(-1.5, 1.5),
                rng.uniform(0, 2 * np.pi),
                rng.uniform(0.01, 0.025),
            )
            for _ in range(2)
        ],
        "gamma": rng.uniform(0.9, 1.12),
        "contrast": rng.uniform(0.9, 1.1),
        "brightness": rng.uniform(-0.05, 0.05),
        "noise": rng.uniform(0.01, 0.03),
        # A small bright spot (nipple shadow, ECG lead) in any class, so no pattern is "any blob".
        "spot": (rng.uniform(-1, 1), rng.uniform(-0.2, 0.6), rng.uniform(0.02, 0.035))
        if rng.random() < 0.3
        else None,
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
        p["consolidation"] = (
            rng.choice([-1, 1]),
            rng.uniform(-0.45, 0.45),
            rng.uniform(-0.5, 0.6),
            rng.uniform(0.16, 0.24) * s,
            rng.uniform(0.20, 0.32) * s,
            rng.uniform(0, np.pi),
            rng.uniform(0.30, 0.42),
        )
    elif name == "Viral Pneumonia":
        p["streaks"] = [
            (rng.uniform(0, np.pi), rng.uniform(0.15, 0.22) * s, rng.uniform(0, 2 * np.pi)) for _ in range(3)
        ]
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


def render(p: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit grayscale image (size, size) of one phantom."""
    u, v = _grid(size)
    s, cx, cy = p["s"], p["cx"], p["cy"]
    thorax, lungs, heart = _lung_fields(p, u, v)
    spine = _ramp(0.055 * s - np.abs(u - cx), 0.05) * thorax
    ribs = 0.5 + 0.5 * np.cos(
        2 * np.pi * ((v - cy) + 0.35 * (u - cx) ** 2 / s) / p["rib_period"] + p["rib_phase"]
    )
    ribs *= ribs * ribs
    ribs *= ribs * thorax
    img = (
        p["background"]
        + p["tissue"] * thorax
        + p["spine"] * spine
        + 0.04 * heart
        + p["rib_amp"] * ribs * (0.4 + 0.6 * lungs)
        - (p["lung_dark"] - _pathology(p, u, v)) * lungs
    )
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


def render_mask(p: dict, size: int) -> np.ndarray:
    """The binary lung mask (0 or 255) of one phantom at `size` pixels."""
    u, v = _grid(size)
    _, lungs, _ = _lung_fields(p, u, v)
    return np.where(lungs > 0.5, 255, 0).astype(np.uint8)


def phantoms(total: int, seed: int) -> Iterator[tuple[int, int, dict, np.random.Generator]]:
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
    check_total(total)
    check_size(size)
    check_seed(seed)
    images = np.empty((total, size, size), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    for i, (label, _, phantom, rng) in enumerate(phantoms(total, seed)):
        images[i] = render(phantom, size, rng)
        labels[i] = label
    return images, labels
