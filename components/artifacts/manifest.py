"""artifact.json: what an artifact folder is, written last by its writer and checked by every reader.

    {"kind": "split", "schema_version": 1, "made_by": "cxr split", "files": ["summary.json", ...]}

A folder without it is not (or not yet wholly) an artifact; one of another kind or schema version is
refused with a line that names the folder, what it holds and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.core.errors import CxrError
from components.core.files import read_json, write_json

MANIFEST_FILE = "artifact.json"


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

    def write_manifest(self, folder: Path) -> None:
        """Closes an artifact folder: call after every file of it is in place."""
        write_json(
            Path(folder) / MANIFEST_FILE,
            {
                "kind": self.name,
                "schema_version": self.schema_version,
                "made_by": f"cxr {self.command}",
                "files": list(self.files),
            },
        )

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
        return folder
