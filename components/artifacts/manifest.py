"""artifact.json: what an artifact folder is, written last by its writer and checked by every reader.

    {"kind": "split", "schema_version": 1, "made_by": "cxr split", "files": ["summary.json", ...],
     "digests": {"summary.json": {"bytes": 1234, "sha256": "…"}, "pixels.npy": {"bytes": …, "sha256": null}}}

A writer first prepares its folder (ArtifactKind.prepare_output, before any work): the folder must be
new, empty, or one this kind of artifact was (being) written to, and must not overlap the step's
inputs; preparing removes the old manifest and only cxr-kfp's own files, and leaves .cxr-writing
naming the kind until the manifest closes the folder. A folder without the manifest is not (or not
yet wholly) an artifact; one of another kind or schema version, or whose files differ from the sizes
and hashes the manifest recorded (files over HASHED_BYTES: their size only), is refused with a line
that names the folder, what it holds and what was expected.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from components.core.errors import CxrError
from components.core.files import is_temp_name, read_json, write_json

MANIFEST_FILE = "artifact.json"
WRITING_MARKER = ".cxr-writing"  # present while a writer fills the folder
HASHED_BYTES = 256 * 2**20  # files up to this size are hashed; larger ones (pixels, features) sized


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of artifact folder.

    Attributes:
        name: the kind, as written in artifact.json ("dataset", "split", ...).
        schema_version: bumped whenever a file of the artifact changes incompatibly.
        command: the cxr command that writes it ("ingest"), named in error messages.
        files: the files every folder of this kind holds.
    """

    name: str
    schema_version: int
    command: str
    files: tuple[str, ...]

    def prepare_output(
        self, folder: Path, what: str = "--out", inputs: Iterable[tuple[str, Path | None]] = ()
    ) -> Path:
        """Makes `folder` ready to receive this artifact; call before any work, so a bad --out costs nothing.

        Args:
            folder: the output folder.
            what: how the caller's user named it, for the message.
            inputs: (name, path) of every folder or file the step reads (None: not given); the output
                may not overlap them.

        Returns:
            The folder, created, holding only the writing marker and files that are not cxr-kfp's.
        """
        folder = Path(folder)
        named = f"{what} {folder}"
        if folder.exists() and not folder.is_dir():
            raise CxrError(f"{named} is a file; give a folder for the {self.name}")
        for input_name, path in inputs:
            if path is not None and _overlap(folder, Path(path)):
                raise CxrError(
                    f"{named} overlaps {input_name} {path}: write the {self.name} to a folder of its "
                    "own, outside the step's inputs"
                )
        if folder.is_dir() and any(folder.iterdir()):
            owner = folder_kind(folder)
            if owner != self.name:
                held = f"holds a {owner} artifact" if owner else "is not empty and was not written by cxr-kfp"
                raise CxrError(
                    f"{named} {held}; give a new or empty folder for the {self.name} "
                    f"(nothing in it was changed)"
                )
            self._remove_own_files(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / WRITING_MARKER, {"kind": self.name, "made_by": f"cxr {self.command}"})
        return folder

    def ensure_prepared(self, folder: Path) -> Path:
        """For writers: the folder as its step prepared it, or prepared now (for tests and tools)."""
        folder = Path(folder)
        if folder_kind(folder) == self.name and (folder / WRITING_MARKER).is_file():
            return folder
        return self.prepare_output(folder)

    def abandon(self, folder: Path, created: bool = False) -> None:
        """After its step failed: a folder holding nothing but the marker and temporaries is cleared.

        The marker stays whenever anything else is in the folder (files of the step, or of the user),
        so the next run still knows the folder as its own. `created`: the step made the folder, which
        is then removed when empty.
        """
        folder = Path(folder)
        if folder_kind(folder) != self.name or (folder / MANIFEST_FILE).exists():
            return
        temporaries = [p for p in folder.iterdir() if is_temp_name(p.name) and p.is_file()]
        for path in temporaries:
            path.unlink()
        if {p.name for p in folder.iterdir()} <= {WRITING_MARKER}:
            (folder / WRITING_MARKER).unlink(missing_ok=True)
            if created:
                folder.rmdir()

    def cleans_up(self, step: Callable) -> Callable:
        """Decorates a step whose `out_dir` this kind is: on any failure, abandon() the folder."""
        signature = inspect.signature(step)

        @functools.wraps(step)
        def run(*args, **kwargs):
            out_dir = Path(signature.bind(*args, **kwargs).arguments["out_dir"])
            existed = out_dir.exists()
            try:
                return step(*args, **kwargs)
            except BaseException:
                self.abandon(out_dir, created=not existed)
                raise

        return run

    def _remove_own_files(self, folder: Path) -> None:
        manifest = _read_manifest(folder)
        own = {*self.files, *(manifest.get("files", []) if manifest else []), MANIFEST_FILE}
        (folder / MANIFEST_FILE).unlink(missing_ok=True)  # first: a folder being replaced is no artifact
        for path in folder.iterdir():
            if (path.name in own or is_temp_name(path.name)) and path.is_file():
                path.unlink()

    def write_manifest(self, folder: Path) -> None:
        """Closes an artifact folder: call after every file of it is in place."""
        folder = Path(folder)
        write_json(
            folder / MANIFEST_FILE,
            {
                "kind": self.name,
                "schema_version": self.schema_version,
                "made_by": f"cxr {self.command}",
                "files": list(self.files),
                "digests": {name: _digest(folder / name) for name in self.files},
            },
        )
        (folder / WRITING_MARKER).unlink(missing_ok=True)

    def check(self, folder: Path, what: str = "") -> Path:
        """Returns `folder` when it is a whole artifact of this kind and version; a CxrError otherwise.

        Args:
            folder: the artifact folder.
            what: how the caller's user named it (e.g. "--split"), for the message.
        """
        folder = Path(folder)
        named = f"{what} {folder}" if what else str(folder)
        run = f"run `cxr {self.command} --out {folder}`"
        if not folder.is_dir():
            raise CxrError(f"{named}: no such folder; {run} first")
        if not (folder / MANIFEST_FILE).is_file():
            if (folder / WRITING_MARKER).is_file():
                raise CxrError(
                    f"{named}: `cxr {self.command}` stopped while writing it, so it is not whole; {run} again"
                )
            raise CxrError(f"{named} is not a {self.name} artifact (no {MANIFEST_FILE}); {run} first")
        manifest = read_json(folder / MANIFEST_FILE, self.command)
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        if kind != self.name:
            raise CxrError(
                f"{named} holds a {kind} artifact, expected a {self.name} artifact "
                f"(made by `cxr {self.command}`)"
            )
        version = manifest.get("schema_version")
        if version != self.schema_version:
            raise CxrError(
                f"{named}: {self.name} artifact of schema version {version}, this cxr-kfp reads "
                f"version {self.schema_version}; {run} again"
            )
        missing = [name for name in self.files if not (folder / name).is_file()]
        if missing:
            raise CxrError(f"{named}: {self.name} artifact lacks {missing[0]}; {run} again")
        digests = manifest.get("digests")
        if not isinstance(digests, dict):
            raise CxrError(f"{named}/{MANIFEST_FILE} records no file digests (an older cxr-kfp); {run} again")
        for name in self.files:
            recorded, path = digests.get(name) or {}, folder / name
            if recorded.get("bytes") != path.stat().st_size or (
                recorded.get("sha256") and recorded["sha256"] != _sha256(path)
            ):
                raise CxrError(
                    f"{named}: {name} is not the file `cxr {self.command}` wrote (its size or sha256 "
                    f"differs from {MANIFEST_FILE}); {run} again"
                )
        return folder


def folder_kind(folder: Path) -> str | None:
    """The artifact kind a folder holds or was being written with; None when cxr-kfp did not write it."""
    manifest = _read_manifest(folder)
    if manifest is None:
        try:
            manifest = json.loads((Path(folder) / WRITING_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    return kind if isinstance(kind, str) else None


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digest(path: Path) -> dict:
    size = path.stat().st_size
    return {"bytes": size, "sha256": _sha256(path) if size <= HASHED_BYTES else None}
