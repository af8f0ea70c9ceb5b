"""The four classes of the COVID-19 Radiography Database and how folder names map to them."""

from __future__ import annotations

import re

CLASS_NAMES: tuple[str, ...] = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")

# Kaggle's folder names are the class names; other copies of the set spell them differently
# ("Viral_Pneumonia", "lung opacity", "COVID-19"), so folder names are compared in a normal form.
_ALIASES = {"covid19": "COVID"}


def _normal_form(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NORMAL_FORM = {_normal_form(c): c for c in CLASS_NAMES} | _ALIASES


def class_for_folder(folder_name: str) -> str | None:
    """The class name a dataset folder stands for, or None when it names no known class."""
    return _BY_NORMAL_FORM.get(_normal_form(folder_name))


def class_index(class_name: str) -> int:
    """Position of a class name in CLASS_NAMES (the label used for training)."""
    return CLASS_NAMES.index(class_name)
