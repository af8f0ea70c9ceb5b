"""Small ingested-dataset folders written directly in the dataset artifact format, for step tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from components.artifacts.dataset import write_dataset as write_dataset_artifact
from components.core.classes import CLASS_NAMES


def write_dataset(
    path: Path,
    per_class: dict[str, int],
    *,
    size: int = 32,
    seed: int = 0,
    duplicates: list[list[int]] = (),
    near_duplicates: list[list[int]] = (),
) -> Path:
    """Writes a dataset folder whose classes differ in mean brightness (learnable at any size).

    `duplicates` lists groups of row numbers that get identical pixels (the first row's);
    `near_duplicates` groups of rows marked as near duplicates (exact groups are near groups too).
    """
    rng = np.random.default_rng(seed)
    classes = [c for c in CLASS_NAMES for _ in range(per_class.get(c, 0))]
    pixels = np.stack(
        [
            np.clip(rng.normal(40 + 55 * CLASS_NAMES.index(c), 12, (size, size)), 0, 255).astype(np.uint8)
            for c in classes
        ]
    )
    group = np.full(len(classes), -1)
    for g, rows in enumerate(duplicates):
        pixels[rows] = pixels[rows[0]]
        group[rows] = g
    ids = [f"{c}/images/{c}-{classes[:i].count(c) + 1}.png" for i, c in enumerate(classes)]
    near = group.copy()
    for g, rows in enumerate(near_duplicates, start=len(duplicates)):
        near[rows] = g
    index = pd.DataFrame(
        {
            "id": ids,
            "class_name": classes,
            "sha256": [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels],
            "pixel_sha256": [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels],
            "source_path": ids,
            "width": size,
            "height": size,
            "mode": "L",
            "format": "PNG",
            "duplicate_group": group,
            "phash": "",
            "near_duplicate_group": near,
        }
    )
    return write_dataset_artifact(
        path,
        index,
        {
            "images": len(classes),
            "per_class": {c: per_class.get(c, 0) for c in CLASS_NAMES},
            "skipped": [],
            "duplicate_groups": len(duplicates),
            "stored_size": size,
            "fingerprint": hashlib.sha256(
                "".join(f"{i} {h}\n" for i, h in zip(ids, index["sha256"], strict=True)).encode()
            ).hexdigest(),
        },
        pixels,
    )
