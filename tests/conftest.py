"""Shared fixtures: tiny image folders in the Kaggle layout, written with Pillow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.core.classes import CLASS_NAMES

DEFAULT_PER_CLASS = {"COVID": 3, "Lung_Opacity": 2, "Normal": 4, "Viral Pneumonia": 2}


def write_kaggle_folder(
    root: Path, per_class: dict[str, int] | None = None, *, size: int = 16, seed: int = 0, extras: bool = True
) -> Path:
    """Writes a small dataset folder in the Kaggle layout: CLASS/images/CLASS-i.png (8-bit gray,
    distinct random pixels), plus CLASS/masks/, CLASS.metadata.xlsx and README.md.txt when `extras`.

    Returns:
        `root`, the dataset folder (the folder that holds the class folders).
    """
    per_class = DEFAULT_PER_CLASS if per_class is None else per_class
    rng = np.random.default_rng(seed)
    for class_name in CLASS_NAMES:
        count = per_class.get(class_name, 0)
        if not count:
            continue
        (root / class_name / "images").mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / class_name / "images" / f"{class_name}-{i}.png")
            if extras:
                (root / class_name / "masks").mkdir(exist_ok=True)
                Image.fromarray(pixels > 127).save(root / class_name / "masks" / f"{class_name}-{i}.png")
        if extras:
            (root / f"{class_name}.metadata.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    if extras:
        (root / "README.md.txt").write_text("COVID-19 Radiography Database (test copy)\n")
    return root


@pytest.fixture
def kaggle_folder(tmp_path: Path) -> Callable[..., Path]:
    """A factory: kaggle_folder(relative_root="COVID-19_Radiography_Dataset", **write_kaggle_folder kwargs)
    writes a Kaggle-layout dataset folder under tmp_path and returns its path.
    """

    def make(relative_root: str = "COVID-19_Radiography_Dataset", **kwargs) -> Path:
        return write_kaggle_folder(tmp_path / relative_root, **kwargs)

    return make
