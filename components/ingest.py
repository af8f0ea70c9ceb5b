"""Ingest: find, validate and decode every image once into the dataset artifact.

Consumes a source in the Kaggle layout (components/core/sources.py): a folder, a .zip of it, objects
under a gs:// prefix (or one gs:// .zip object), which is the dataset folder itself or anything that
contains it, or `demo:N`. Produces a dataset folder (components/artifacts/dataset.py): summary.json,
index.csv and pixels.npy.

- Samples are exactly the files whose parent folder is named `images` (any case); the class is the
  folder above it (core/classes.py). Everything else is ignored and counted by kind: masks,
  metadata (.xlsx/.xls/.csv), readme, os_junk (.DS_Store, Thumbs.db, desktop.ini, `._*`,
  __MACOSX/) and other.
- A sample that cannot be used is skipped with a reason code (core/images.py SKIP_REASONS), listed
  in summary["skipped"] and printed.
- Pass 1 reads only headers (size, mode, format), so an oversized image is refused before any
  decoding and the stored size is known: by default the most common max(width, height) of the
  images (299 for the real set). Pass 2 decodes each image once to 8-bit grayscale, hashes it,
  resizes it to stored_size × stored_size when it differs (Pillow BILINEAR, aspect ratio not kept)
  and writes it straight into the memory-mapped pixels.npy, in a fixed order: by class
  (CLASS_NAMES order), then id.
- Exact duplicates (same size and decoded pixels, core/images.py pixel_sha256), across classes
  too, share a duplicate_group id; summary["fingerprint"] = sha256 over the sorted (id, file
  sha256) pairs, the same whichever way the data arrived (folder, zip, gs://).
- The index records where each file was read (a path, a zip member or a gs:// URI).
- Outputs are written under temporary names and renamed, the manifest last, so an interrupted run
  never leaves a folder that `open_dataset` accepts with mixed contents.
"""

import contextlib
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.artifacts.dataset import INDEX_COLUMNS, PIXELS_FILE, DatasetSummary, publish_dataset
from components.artifacts.dataset import KIND as DATASET_KIND
from components.core import images
from components.core.checks import MAX_STORED_SIZE, check_whole_number
from components.core.classes import CLASS_NAMES, class_for_folder, class_index
from components.core.duplicates import (
    NEAR_DUPLICATE_DISTANCE,
    group_ids,
    near_duplicate_groups,
    perceptual_hash,
)
from components.core.errors import CxrError
from components.core.files import temp_path
from components.core.images import ImageSkip
from components.core.progress import Progress, log
from components.core.sources import Source, local_path, open_source
from components.demo.kaggle_layout import README_MARKER, README_NAME

# A file (or zip member, by its uncompressed size) over this is refused unread: the zip-bomb guard.
MAX_FILE_BYTES = 512 * 1024 * 1024
HEADER_READERS_PER_WORKER = 4  # the header pass reads with this many threads per --workers
IGNORED_KINDS = ("masks", "metadata", "readme", "os_junk", "other")
JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
METADATA_SUFFIXES = (".xlsx", ".xls", ".csv")
SHOW_SKIPPED = 20
EXPECTED_LAYOUT = "CLASS/images/*.png, CLASS one of " + ", ".join(CLASS_NAMES)
_COPY_ROWS = 256


@dataclass(frozen=True)
class _Candidate:
    rel: str  # path relative to the source
    id: str  # path relative to the dataset folder: CLASS_FOLDER/images/NAME
    class_name: str
    header: images.Header | None = None


@DATASET_KIND.cleans_up
def ingest(
    source: str | os.PathLike,
    out_dir: Path,
    *,
    stored_size: int | None = None,
    max_pixels: int = 50_000_000,
    workers: int = 8,
    max_file_bytes: int = MAX_FILE_BYTES,
    follow_links: bool = False,
) -> dict:
    """Decodes and validates every image of a Kaggle-layout source into a dataset folder.

    Args:
        source: a dataset folder, a .zip of it, gs://BUCKET/PREFIX or gs://BUCKET/OBJECT.zip; it may
            also be any folder or archive that contains the dataset folder. `demo:N` ingests N
            synthetic demo images made on the spot.
        out_dir: the dataset folder to write (summary.json, index.csv, pixels.npy are replaced).
        stored_size: side of the stored square pixels; default the most common max(width, height).
        max_pixels: images with width × height over this are skipped as too_large.
        workers: threads for downloading and decoding (headers: HEADER_READERS_PER_WORKER × as many).
        max_file_bytes: files (zip members: uncompressed) over this are skipped as too_large unread.
        follow_links: follow a folder source's links to files and folders outside it (by default they
            are skipped as link_outside_source).

    Returns:
        The summary written to out_dir/summary.json.

    Raises:
        CxrError: the source does not exist or is no folder, .zip or gs:// URI; it holds no usable
            image; or a parameter is out of range.
    """
    _check_parameters(stored_size, max_pixels, workers, max_file_bytes)
    source_text = os.fspath(source)
    if not source_text.strip():
        raise CxrError("--source is empty: give a dataset folder, a .zip, gs://BUCKET/PREFIX or demo:N")
    local = local_path(source_text)
    out_dir = DATASET_KIND.prepare_output(out_dir, inputs=[("--source", local)] if local else [])
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source_text, workers, follow_links))
        entries = src.entries()
        candidates, skipped, ignored = _classify(entries, max_file_bytes)
        skipped += [_skip(*refused) for refused in src.refused]
        synthetic = _is_synthetic(src, entries, candidates)
        src.prepare([c.rel for c in candidates], workers)
        candidates = _read_headers(src, candidates, skipped, max_pixels, workers)
        size = stored_size or _most_common_side(candidates)
        records = []
        if candidates:
            records = _decode_all(src, candidates, skipped, out_dir, size, max_pixels, workers)
    if not records:
        _report_skipped(skipped)
        raise CxrError(
            f"--source {source_text}: no usable image found; expected the layout "
            f"{EXPECTED_LAYOUT} (ignored: {_ignored_text(ignored)}; skipped: {len(skipped)})"
        )
    index = _index(records)
    summary = _summary(source_text, index, skipped, ignored, size, synthetic)
    _report(summary)
    publish_dataset(out_dir, index, summary, temp_path(out_dir / PIXELS_FILE))
    return summary


def _check_parameters(stored_size, max_pixels, workers, max_file_bytes) -> None:
    if stored_size is not None:
        check_whole_number(stored_size, "--stored-size", 1, MAX_STORED_SIZE, "299")
    if max_pixels < 1:
        raise CxrError(f"--max-pixels {max_pixels}: must be positive (default 50000000)")
    if workers < 1:
        raise CxrError(f"--workers {workers}: must be at least 1 (default 8)")
    if max_file_bytes < 1:
        raise CxrError(f"max_file_bytes {max_file_bytes}: must be positive (default {MAX_FILE_BYTES})")


# ---------------------------------------------------------------------------------------------
# Sources: a folder, a zip archive, a gs:// prefix
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Which files are samples
# ---------------------------------------------------------------------------------------------


def _classify(
    entries: list[tuple[str, int]], max_file_bytes: int
) -> tuple[list[_Candidate], list[dict], Counter]:
    """Sorts files into sample candidates, skipped samples and ignored files (counted by kind)."""
    candidates, skipped, ignored = [], [], Counter({kind: 0 for kind in IGNORED_KINDS})
    roots: dict[tuple[str, ...], str] = {}
    for rel, size in entries:
        parts = rel.split("/")
        name, folders = parts[-1], [p.lower() for p in parts[:-1]]
        if name.lower() in JUNK_NAMES or name.startswith("._") or "__macosx" in folders:
            ignored["os_junk"] += 1
        elif folders and folders[-1] == "images" and not _name_round_trips(rel):
            skipped.append(
                _skip(
                    _printable(rel),
                    images.BAD_NAME,
                    "the path is not valid UTF-8 or holds control characters; rename the file",
                )
            )
        elif folders and folders[-1] == "images":
            class_name = class_for_folder(parts[-3]) if len(parts) >= 3 else None
            if class_name is None:
                above = f"folder {parts[-3]!r}" if len(parts) >= 3 else "no folder"
                skipped.append(
                    _skip(
                        rel,
                        images.UNKNOWN_CLASS,
                        f"{above} above images/ names no class ({', '.join(CLASS_NAMES)})",
                    )
                )
            elif size == 0:
                skipped.append(_skip(rel, images.EMPTY, "the file has 0 bytes"))
            elif size > max_file_bytes:
                skipped.append(
                    _skip(rel, images.TOO_LARGE, f"{size:,} bytes is over the limit of {max_file_bytes:,}")
                )
            else:
                roots.setdefault(tuple(parts[:-3]), rel)
                candidates.append(_Candidate(rel, "/".join(parts[-3:]), class_name))
        elif "masks" in folders:
            ignored["masks"] += 1
        elif name.lower().endswith(METADATA_SUFFIXES):
            ignored["metadata"] += 1
        elif name.lower().startswith("readme"):
            ignored["readme"] += 1
        else:
            ignored["other"] += 1
    if len(roots) > 1:
        shown = ", ".join(repr("/".join(root) or ".") for root in sorted(roots)[:3])
        raise CxrError(
            f"the source holds class folders under {len(roots)} different folders ({shown}); "
            "point --source at one dataset folder"
        )
    return candidates, skipped, ignored


def _name_round_trips(rel: str) -> bool:
    """True when a path survives our UTF-8 CSV and JSON files as it is (no undecodable bytes, no controls)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # os.walk's surrogate escapes of bytes that are not UTF-8
        return False
    return not any(ord(c) < 32 or ord(c) == 127 for c in rel)


def _printable(rel: str) -> str:
    """A path as text that round-trips: bytes that are not UTF-8 shown as hex escapes, controls escaped."""
    text = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if 32 <= ord(c) != 127 else c.encode("unicode_escape").decode("ascii") for c in text)


def _is_synthetic(src: Source, entries: list[tuple[str, int]], candidates: list[_Candidate]) -> bool:
    """True for a demo dataset: its readme (beside the class folders) says it is synthetic."""
    if not candidates:
        return False
    root = candidates[0].rel[: -len(candidates[0].id)]
    readme = f"{root}{README_NAME}"
    if not any(rel == readme and size < 1 << 16 for rel, size in entries):
        return False
    return src.read(readme).decode("utf-8", errors="replace").startswith(README_MARKER)


def _skip(path: str, reason: str, detail: str) -> dict:
    return {"path": path, "reason": reason, "detail": detail}


# ---------------------------------------------------------------------------------------------
# Pass 1: headers; pass 2: decode into pixels.npy
# ---------------------------------------------------------------------------------------------


def _run(items: list, work: Callable, workers: int, label: str) -> list:
    progress = Progress(label, len(items))
    results = []
    with ThreadPoolExecutor(workers) as pool:
        for result in pool.map(work, items):
            results.append(result)
            progress.advance()
    return results


def _read_headers(
    src: Source, candidates: list[_Candidate], skipped: list[dict], max_pixels: int, workers: int
) -> list[_Candidate]:
    """Pass 1: the header of each candidate; returns those readable, in row order."""

    def work(c: _Candidate) -> _Candidate | dict:
        try:
            with src.open(c.rel) as f:
                return _Candidate(c.rel, c.id, c.class_name, images.read_header(f, max_pixels=max_pixels))
        except ImageSkip as skip:
            return _skip(c.rel, skip.reason, skip.detail)
        except OSError as exc:
            return _skip(c.rel, images.TRUNCATED, f"cannot read the file ({exc.strerror or exc})")

    kept = []
    # A header is a few bytes: this pass waits on the disk (cold files: seconds per thousand), not the CPU.
    for result in _run(candidates, work, workers * HEADER_READERS_PER_WORKER, "ingest: headers"):
        (skipped.append if isinstance(result, dict) else kept.append)(result)
    return sorted(kept, key=lambda c: (class_index(c.class_name), c.id))


def _most_common_side(candidates: list[_Candidate]) -> int:
    if not candidates:
        return 0
    sides = Counter(max(c.header.width, c.header.height) for c in candidates)
    return max(sides.items(), key=lambda item: (item[1], item[0]))[0]


def _decode_all(
    src: Source,
    candidates: list[_Candidate],
    skipped: list[dict],
    out_dir: Path,
    size: int,
    max_pixels: int,
    workers: int,
) -> list[dict]:
    """Pass 2: decodes each image once into a temporary pixels file in out_dir; returns the index rows.

    No rows, and no pixels file, when every image fails.
    """
    partial = temp_path(out_dir / PIXELS_FILE)
    pixels = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.uint8, shape=(len(candidates), size, size)
    )

    def work(row: int) -> dict:
        c = candidates[row]
        try:
            data = src.read(c.rel)
            decoded = images.decode_gray(data, max_pixels=max_pixels)
        except ImageSkip as skip:
            return _skip(c.rel, skip.reason, skip.detail)
        except OSError as exc:
            return _skip(c.rel, images.TRUNCATED, f"cannot read the file ({exc.strerror or exc})")
        pixels[row] = images.resize_square(decoded.pixels, size)
        header = decoded.header
        return {
            "row": row,
            "id": c.id,
            "class_name": c.class_name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "pixel_sha256": images.pixel_sha256(decoded.pixels),
            "phash": perceptual_hash(decoded.pixels),
            "source_path": src.location(c.rel),
            "width": header.width,
            "height": header.height,
            "mode": header.mode,
            "format": header.format,
        }

    records, failed = [], []
    try:
        for result in _run(list(range(len(candidates))), work, workers, "ingest: decode"):
            (failed if "reason" in result else records).append(result)
        pixels.flush()
        pixels = None  # closes the memory map
        if records and failed:
            _drop_rows(partial, [r["row"] for r in records])
    except BaseException:
        pixels = None
        partial.unlink(missing_ok=True)
        raise
    skipped.extend(failed)
    if not records:
        partial.unlink()
    return records


def _drop_rows(path: Path, keep: list[int]) -> None:
    """Rewrites a (N, S, S) .npy keeping only the given rows, in order."""
    old = np.load(path, mmap_mode="r")
    tmp = temp_path(path.with_name(path.name + ".compact"))
    new = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(keep),) + old.shape[1:])
    for start in range(0, len(keep), _COPY_ROWS):
        new[start : start + _COPY_ROWS] = old[keep[start : start + _COPY_ROWS]]
    new.flush()
    del new, old
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# Index, duplicates, summary, publication
# ---------------------------------------------------------------------------------------------


def _index(records: list[dict]) -> pd.DataFrame:
    index = pd.DataFrame(records).drop(columns="row").reset_index(drop=True)
    index["duplicate_group"] = group_ids(index["pixel_sha256"].tolist())
    index["near_duplicate_group"] = near_duplicate_groups(
        index["phash"].tolist(), index["duplicate_group"].to_numpy()
    )
    return index[list(INDEX_COLUMNS)]


def fingerprint(pairs: list[tuple[str, str]]) -> str:
    """Content fingerprint of a dataset: sha256 over its sorted (id, file sha256) pairs."""
    digest = hashlib.sha256()
    for image_id, sha in sorted(pairs):
        digest.update(f"{image_id}\t{sha}\n".encode())
    return digest.hexdigest()


def _summary(
    source: str, index: pd.DataFrame, skipped: list[dict], ignored: Counter, size: int, synthetic: bool
) -> DatasetSummary:
    dup = index[index["duplicate_group"] >= 0]
    groups = [list(ids) for _, ids in dup.groupby("duplicate_group")["id"]]
    cross = [
        {"ids": list(g["id"]), "classes": list(g["class_name"])}
        for _, g in dup.groupby("duplicate_group")
        if g["class_name"].nunique() > 1
    ]
    near = index[index["near_duplicate_group"] >= 0]
    near_groups = [
        list(g["id"])
        for _, g in near.groupby("near_duplicate_group")
        if g["duplicate_group"].nunique() > 1 or (g["duplicate_group"] < 0).any()
    ]
    counts = index["class_name"].value_counts()
    resized = int(((index["width"] != size) | (index["height"] != size)).sum())
    return {
        "images": len(index),
        "per_class": {c: int(counts.get(c, 0)) for c in CLASS_NAMES},
        "skipped": sorted(skipped, key=lambda s: s["path"]),
        "duplicate_groups": len(groups),
        "cross_class_duplicate_groups": len(cross),
        "cross_class_duplicates": cross,
        "duplicates": groups,
        "near_duplicate_groups": len(near_groups),
        "near_duplicates": near_groups,
        "near_duplicate_distance": NEAR_DUPLICATE_DISTANCE,
        "synthetic": synthetic,
        "stored_size": size,
        "resized": resized,
        "color_modes": dict(sorted(Counter(index["mode"]).items())),
        "formats": dict(sorted(Counter(index["format"]).items())),
        "ignored": {kind: int(ignored[kind]) for kind in IGNORED_KINDS},
        "source": source,
        "fingerprint": fingerprint(list(zip(index["id"], index["sha256"], strict=True))),
    }


def _ignored_text(ignored: Counter) -> str:
    return ", ".join(f"{kind} {ignored[kind]}" for kind in IGNORED_KINDS if ignored[kind]) or "nothing"


def _report_skipped(skipped: list[dict]) -> None:
    if not skipped:
        return
    ordered = sorted(skipped, key=lambda s: s["path"])
    reasons = Counter(s["reason"] for s in ordered)
    log(f"skipped {len(ordered)} files (" + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) + "):")
    for s in ordered[:SHOW_SKIPPED]:
        log(f"  {s['path']}: {s['reason']} ({s['detail']})")
    if len(ordered) > SHOW_SKIPPED:
        log(f"  … and {len(ordered) - SHOW_SKIPPED} more, all listed in summary.json")


def _report(summary: dict) -> None:
    log(
        f"ingested {summary['images']} images at {summary['stored_size']}x{summary['stored_size']} "
        f"({summary['resized']} resized): " + ", ".join(f"{c} {n}" for c, n in summary["per_class"].items())
    )
    log(
        "colour modes: "
        + ", ".join(f"{m} {n}" for m, n in summary["color_modes"].items())
        + "; formats: "
        + ", ".join(f"{f} {n}" for f, n in summary["formats"].items())
    )
    log(
        f"duplicate groups: {summary['duplicate_groups']} "
        f"({summary['cross_class_duplicate_groups']} across classes), near-duplicate groups: "
        f"{summary['near_duplicate_groups']}; ignored: {_ignored_text(Counter(summary['ignored']))}"
    )
    for class_name, count in summary["per_class"].items():
        if not count:
            log(
                f"warning: no images of class {class_name} (no {class_name}/images/ folder with usable "
                "images); split refuses a dataset without all four classes"
            )
    if summary["synthetic"]:
        log("synthetic demo data (its readme says so): results will say nothing about chest X-rays")
    _report_skipped(summary["skipped"])
