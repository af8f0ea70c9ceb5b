"""Where ingest reads a dataset from: a folder, a .zip of it, objects under a gs:// prefix, or demo:N.

Every source lists its files by their path relative to the source root ("a/b/c.png") with their
sizes, and reads them by that path; which of them are samples is ingest's business. A zip is read in
place (never extracted), each thread with its own handle; gs:// objects are downloaded (in parallel,
checksum-verified) into a temporary folder that is removed afterwards; `demo:N` writes N synthetic
images into a temporary folder first.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import os
import tempfile
import threading
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from components.core import images, storage
from components.core.errors import CxrError
from components.core.images import ImageSkip

# `demo:N`: the ingest task makes N synthetic images itself (kind and cluster smoke runs need no data).
DEMO_SOURCE_PREFIX = "demo:"
MAX_ARCHIVE_MEMBERS = 500_000
MAX_ARCHIVE_BYTES = 64 * 2**30  # what the members of one archive may expand to in all
MAX_COMPRESSION_RATIO = 50  # PNG and JPEG data is compressed already: zip gains little on it
RATIO_CHECK_BYTES = 1 << 20  # tiny members (empty images, text) compress well and are harmless


class Source(abc.ABC):
    """Files addressed by their path relative to the source root ("a/b/c.png")."""

    refused: list[tuple[str, str, str]]  # (path, reason, detail) of what entries() left out, to list

    def __init__(self):
        self.refused = []

    @abc.abstractmethod
    def entries(self) -> list[tuple[str, int]]:
        """(relative path, size in bytes) of every file, sorted."""

    def prepare(self, rels: list[str], workers: int) -> None:  # noqa: B027 (optional hook)
        """Makes the given files readable (gs:// downloads them); a no-op for local sources."""

    @abc.abstractmethod
    def read(self, rel: str) -> bytes:
        """The file's bytes."""

    @abc.abstractmethod
    def open(self, rel: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The file opened for binary reading."""

    @abc.abstractmethod
    def location(self, rel: str) -> str:
        """Where the file was read, for index.csv's source_path."""

    def checksum(self, rel: str) -> str:
        """A checksum of the file's bytes that the source has without a download (its sha256 by default)."""
        return hashlib.sha256(self.read(rel)).hexdigest()

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Releases what the source holds open (a zip archive); a no-op for folders."""


class _DirSource(Source):
    """A folder; links inside it followed, each real folder walked once.

    A link to a file or folder outside the folder is left out and listed (link_outside_source) unless
    `follow_links`: a dataset that arrives with links to elsewhere can point at any file of the machine.
    """

    def __init__(self, root: Path, follow_links: bool = False):
        super().__init__()
        self.root = root.resolve()
        self.follow_links = follow_links

    def _leaves(self, path: Path) -> str | None:
        """The real path of a link that leads outside the root (None: not a link, or inside)."""
        if self.follow_links or not path.is_symlink():
            return None
        real = path.resolve()
        return None if real.is_relative_to(self.root) else str(real)

    def _refuse(self, path: Path, target: str, what: str) -> None:
        detail = f"a link to {what} outside --source ({target}); copy it in (cp -L) or pass --follow-links"
        self.refused.append((path.relative_to(self.root).as_posix(), images.LINK_OUTSIDE_SOURCE, detail))

    def entries(self) -> list[tuple[str, int]]:
        def fail(exc: OSError) -> None:
            raise CxrError(f"cannot list {exc.filename}: {exc.strerror}; check its permissions") from exc

        found = []
        seen: set[Path] = set()  # real paths of the folders walked, so a link loop is walked once
        for folder, subfolders, files in os.walk(self.root, onerror=fail, followlinks=True):
            base = Path(folder)
            real = base.resolve()
            if real in seen:
                subfolders[:] = []
                continue
            seen.add(real)
            for sub in list(subfolders):
                if target := self._leaves(base / sub):
                    subfolders.remove(sub)
                    self._refuse(base / sub, target, "a folder, not walked")
            for name in files:
                path = base / name
                if target := self._leaves(path):
                    self._refuse(path, target, "a file")
                    continue
                try:
                    size = path.stat().st_size
                except OSError:  # a dangling link: let the read report it
                    size = -1
                found.append((path.relative_to(self.root).as_posix(), size))
        return sorted(found)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def open(self, rel: str):
        return open(self.root / rel, "rb")

    def location(self, rel: str) -> str:
        return str(self.root / rel)


class _ZipSource(Source):
    """Reads members in place; each thread has its own handle on the archive."""

    def __init__(self, path: Path, location: str):
        super().__init__()
        self.path = path
        self.prefix = location
        self._local = threading.local()
        self._handles: list[zipfile.ZipFile] = []
        self._lock = threading.Lock()
        try:
            infos = self._zip().infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CxrError(f"--source {location}: not a readable .zip archive ({exc})") from exc
        files = [info for info in infos if not info.is_dir()]
        if len(files) > MAX_ARCHIVE_MEMBERS:
            raise CxrError(
                f"--source {location}: {len(files):,} members, over the limit of {MAX_ARCHIVE_MEMBERS:,} "
                "(the real dataset has about 42,000); unpack it and pass the folder"
            )
        declared = sum(info.file_size for info in files)
        if declared > MAX_ARCHIVE_BYTES:
            raise CxrError(
                f"--source {location}: its members expand to {declared / 2**30:.0f} GiB, over the limit of "
                f"{MAX_ARCHIVE_BYTES / 2**30:.0f} GiB; unpack it yourself and pass the folder"
            )
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in files:
            rel = member_name(info.filename)
            if rel in self.members:
                raise CxrError(
                    f"--source {location}: members {self.members[rel].filename!r} and {info.filename!r} "
                    f"both name {rel!r}; repack the archive without one of them"
                )
            self.members[rel] = info

    def _zip(self) -> zipfile.ZipFile:
        handle = getattr(self._local, "zip", None)
        if handle is None:
            handle = zipfile.ZipFile(self.path)
            self._local.zip = handle
            with self._lock:
                self._handles.append(handle)
        return handle

    def entries(self) -> list[tuple[str, int]]:
        return sorted((rel, info.file_size) for rel, info in self.members.items())

    def read(self, rel: str) -> bytes:
        self._check_ratio(self.members[rel])
        with self._member_errors():
            return self._zip().read(self.members[rel])

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO]:
        self._check_ratio(self.members[rel])
        with self._member_errors(), self._zip().open(self.members[rel]) as f:
            yield f

    @staticmethod
    def _check_ratio(info: zipfile.ZipInfo) -> None:
        # zipfile never inflates past the declared size (then the CRC fails), so the declared size,
        # capped per file by ingest, bounds memory; a ratio no image reaches marks a crafted member.
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ImageSkip(
                images.SUSPICIOUS_ARCHIVE_MEMBER,
                f"expands {ratio:,.0f}:1 ({info.compress_size:,} → {info.file_size:,} bytes), over the "
                f"{MAX_COMPRESSION_RATIO}:1 no image file reaches",
            )

    @staticmethod
    @contextlib.contextmanager
    def _member_errors() -> Iterator[None]:
        try:
            yield
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ImageSkip(images.TRUNCATED, f"corrupt zip member ({exc})") from exc
        except (RuntimeError, NotImplementedError) as exc:
            raise ImageSkip(images.NOT_AN_IMAGE, f"zip member cannot be read ({exc})") from exc

    def checksum(self, rel: str) -> str:
        """The member's CRC-32 from the archive's directory."""
        return f"crc32:{self.members[rel].CRC:08x}"

    def location(self, rel: str) -> str:
        return f"{self.prefix}!/{self.members[rel].filename}"

    def close(self) -> None:
        for handle in self._handles:
            handle.close()


class _GcsSource(Source):
    """Objects under a prefix; prepare() downloads (verified) the files ingest will read."""

    def __init__(self, objects: list[storage.GcsObject], tmp: Path):
        super().__init__()
        self.objects = {o.relative: o for o in objects}
        self.tmp = tmp
        self.local: dict[str, Path] = {}

    def entries(self) -> list[tuple[str, int]]:
        return sorted((rel, o.size) for rel, o in self.objects.items())

    def prepare(self, rels: list[str], workers: int) -> None:
        # Local names are numbers: object names may hold characters or '..' a file system refuses.
        wanted = {
            rel: self.tmp / f"{len(self.local) + i:07d}"
            for i, rel in enumerate(r for r in rels if r not in self.local)
        }
        storage.download_objects(
            [self.objects[r] for r in wanted],
            list(wanted.values()),
            workers=workers,
            label="ingest: download",
        )
        self.local |= wanted

    def read(self, rel: str) -> bytes:
        if rel not in self.local:  # a file ingest reads besides the images (the readme)
            self.prepare([rel], workers=1)
        return self.local[rel].read_bytes()

    def open(self, rel: str):
        return open(self.local[rel], "rb")

    def checksum(self, rel: str) -> str:
        """The object's CRC32C (or MD5) from its metadata: listing, no download."""
        obj = self.objects[rel]
        return f"crc32c:{obj.crc32c}" if obj.crc32c else f"md5:{obj.md5_hash}:{obj.generation}"

    def location(self, rel: str) -> str:
        return self.objects[rel].uri


def _make_demo_source(source: str, folder: Path) -> Path:
    """Writes the demo dataset that a `demo:N` source names (N images, seed 0) into `folder`."""
    from components.demo.kaggle_layout import make_demo_dataset

    count = source[len(DEMO_SOURCE_PREFIX) :]
    if not count.isdigit():
        raise CxrError(
            f"--source {source}: a demo source is demo:N with N the number of images, e.g. demo:240"
        )
    make_demo_dataset(folder / "demo-data", total=int(count), seed=0)
    return folder / "demo-data"


def member_name(filename: str) -> str:
    """The "/" form of a zip member's name (zips made on Windows use backslashes), NFC-normalised."""
    parts = [
        p for p in unicodedata.normalize("NFC", filename.replace("\\", "/")).split("/") if p not in ("", ".")
    ]
    return "/".join(parts)


def local_path(source: str) -> Path | None:
    """The local folder or .zip a --source value names; None for gs:// and demo:N sources."""
    return None if storage.is_gcs_uri(source) or source.startswith(DEMO_SOURCE_PREFIX) else Path(source)


@contextlib.contextmanager
def open_source(source: str, workers: int, follow_links: bool = False) -> Iterator[Source]:
    """The source a --source value names, opened for reading (closed, and temporary files removed, on exit).

    Args:
        source: a folder, a .zip, gs://BUCKET/PREFIX, gs://BUCKET/OBJECT.zip or demo:N.
        workers: threads for gs:// downloads.
        follow_links: a folder's links to files and folders outside it are followed (else listed).
    """
    with contextlib.ExitStack() as stack:
        if storage.is_gcs_uri(source):
            objects = storage.list_objects(source)
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cxr-ingest-")))
            _, name = storage.split_gcs_uri(source)
            if len(objects) == 1 and objects[0].name == name and name.lower().endswith(".zip"):
                local_zip = tmp / "source.zip"
                storage.download_objects(objects, [local_zip], workers=1, label="ingest: download")
                src: Source = _ZipSource(local_zip, source)
            else:
                src = _GcsSource(objects, tmp)
        elif source.startswith(DEMO_SOURCE_PREFIX):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cxr-demo-")))
            src = _DirSource(_make_demo_source(source, tmp))
        else:
            path = Path(source)
            if path.is_dir():
                src = _DirSource(path, follow_links)
            elif path.is_file() and zipfile.is_zipfile(path):
                src = _ZipSource(path, str(path.resolve()))
            elif path.exists():
                raise CxrError(
                    f"--source {source}: not a folder or .zip archive; give the dataset "
                    "folder, a .zip of it or gs://BUCKET/PREFIX"
                )
            else:
                raise CxrError(
                    f"--source {source}: no such file or folder; give the dataset folder, "
                    "a .zip of it or gs://BUCKET/PREFIX"
                )
        stack.callback(src.close)
        yield src


def listing_fingerprint(source: str) -> dict:
    """A cache key for a source's images without ingesting it.

    sha256 over the sorted (path, size, checksum) of every */images/* file: a gs:// source is only
    listed (object CRC32C), a .zip only read for its directory, a folder's files are hashed. It changes
    whenever an image is added, removed or altered.

    Returns:
        {"source", "fingerprint", "files"}.
    """
    with open_source(source, workers=8) as src:
        files = [(rel, size) for rel, size in src.entries() if "/images/" in f"/{rel.lower()}"]
        digest = hashlib.sha256()
        for rel, size in sorted(files):
            digest.update(f"{rel}\t{size}\t{src.checksum(rel)}\n".encode())
    if not files:
        raise CxrError(f"--source {source}: no */images/* files to fingerprint; check the path")
    return {"source": source, "fingerprint": f"listing:{digest.hexdigest()}", "files": len(files)}
