"""Small file helpers every artifact uses: atomic text and JSON writes, and reading another step's JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from components.core.errors import CxrError

TEMP_MARK = ".cxr-tmp-"  # in every temporary name cxr-kfp writes; cleanups remove only these


def temp_path(path: Path) -> Path:
    """A hidden temporary name beside `path`, renamed onto it once whole."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def is_temp_name(name: str) -> bool:
    """True for a name temp_path() made (of any process): the only names cleanups remove."""
    return name.startswith(".") and TEMP_MARK in name


def write_text(path: Path, text: str) -> None:
    """Writes a text file atomically (a rerun or a crash never leaves half a file behind)."""
    path = Path(path)
    tmp = temp_path(path)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, obj) -> None:
    """Writes JSON atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path, made_by: str):
    """Reads a JSON file another step wrote; a missing or broken file names the command to (re)run.

    Args:
        path: the file.
        made_by: the cxr command that writes the file's folder, e.g. "train" or "evaluate".
    """
    path = Path(path)
    if not path.is_file():
        raise CxrError(
            f"{path} not found: {path.parent} is not a `cxr {made_by}` output folder; "
            f"run `cxr {made_by} --out {path.parent}` first"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CxrError(f"{path} is not valid JSON ({exc}); run `cxr {made_by}` again") from exc
