"""Google Cloud Storage: list, download (checksum-verified) and upload `gs://` objects.

The client uses Application Default Credentials, or, when STORAGE_EMULATOR_HOST is set (a local
emulator such as `gcp-storage-emulator`), anonymous credentials and a placeholder project.
Every failure a user can fix (no credentials, no bucket, no object, a corrupted download) is a
one-line CxrError naming the URI.

Each download is checked against the object's own checksums (MD5 and/or CRC32C from its
metadata), computed here from the downloaded file rather than trusted to the transfer.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from components.core.errors import CxrError
from components.core.files import TEMP_MARK
from components.core.progress import Progress, log

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "cxr-local"
_CHUNK = 1 << 20
TIMEOUT_ENV = "CXR_GCS_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 60.0
CHECKSUM_ATTEMPTS = 3  # downloads whose bytes fail their checksum are fetched again, then refused


def cache_dir() -> Path:
    """Where cxr-kfp caches downloads and built artifacts: $CXR_CACHE_DIR, else ~/.cache/cxr-kfp."""
    return Path(os.environ.get("CXR_CACHE_DIR") or Path.home() / ".cache" / "cxr-kfp").expanduser()


@dataclass(frozen=True)
class GcsObject:
    """One object found under a prefix."""

    bucket: str
    name: str
    relative: str  # name relative to the listed prefix ("COVID/images/COVID-1.png")
    size: int
    generation: int | None
    md5_hash: str | None  # base64, as in the object's metadata
    crc32c: str | None  # base64 of the big-endian CRC32C, as in the object's metadata

    @property
    def uri(self) -> str:
        """gs://BUCKET/NAME."""
        return f"gs://{self.bucket}/{self.name}"


def is_gcs_uri(s: str | os.PathLike) -> bool:
    """True when `s` is a gs:// URI."""
    return isinstance(s, str) and s.startswith("gs://")


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """Splits gs://bucket/some/name into ("bucket", "some/name"); the name may be empty.

    Raises:
        CxrError: `uri` is not a gs:// URI with a bucket name.
    """
    if not is_gcs_uri(uri):
        raise CxrError(f"{uri!r} is not a gs:// URI; write it as gs://BUCKET/PATH")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket:
        raise CxrError(f"{uri!r} has no bucket name; write it as gs://BUCKET/PATH")
    return bucket, name


def storage_timeout() -> float:
    """Seconds one storage operation may spend retrying transient errors (CXR_GCS_TIMEOUT_SECONDS)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86_400:
        raise CxrError(f"{TIMEOUT_ENV}={raw!r}: give seconds between 1 and 86400, e.g. 60")
    return seconds


def _retry():
    """The library's retry policy (429, 5xx, resets, timeouts; backoff), at most storage_timeout() long."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(storage_timeout()).with_delay(initial=0.5, maximum=8.0)


def _timeouts() -> tuple[float, float]:
    """(connect, read) seconds of one request: an endpoint that never answers costs one of them a try."""
    total = storage_timeout()
    return min(10.0, total), min(60.0, total)


def get_client():
    """A google.cloud.storage.Client (anonymous against an emulator when STORAGE_EMULATOR_HOST is set).

    Raises:
        CxrError: no Google Cloud credentials are available.
    """
    from google.cloud import storage

    if os.environ.get(EMULATOR_ENV):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return storage.Client()
    except DefaultCredentialsError as exc:
        raise CxrError(
            "no Google Cloud credentials for gs:// access: run `gcloud auth "
            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from exc


def list_objects(uri: str, *, client=None) -> list[GcsObject]:
    """The objects under a gs:// prefix (treated as a folder: gs://b/data lists data/...), by name.

    A URI naming one existing object returns just that object (relative name = its base name).

    Raises:
        CxrError: the bucket is missing or not accessible, or nothing is under the prefix.
    """
    bucket_name, name = split_gcs_uri(uri)
    client = client or get_client()
    with _gcs_errors(uri):
        bucket = client.bucket(bucket_name)
        if name and not name.endswith("/"):
            blob = bucket.get_blob(name, retry=_retry(), timeout=_timeouts())
            if blob is not None:
                return [_object(blob, name.rsplit("/", 1)[-1])]
        prefix = f"{name.rstrip('/')}/" if name.strip("/") else ""
        objects = [
            _object(blob, blob.name[len(prefix) :])
            for blob in client.list_blobs(bucket_name, prefix=prefix, retry=_retry(), timeout=_timeouts())
            if not blob.name.endswith("/")
        ]
    if not objects:
        raise CxrError(
            f"{uri}: no objects under this prefix; check the bucket and path (`gcloud storage ls {uri}`)"
        )
    return sorted(objects, key=lambda o: o.name)


def download_objects(
    objects: list[GcsObject],
    destinations: list[Path],
    *,
    workers: int = 8,
    client=None,
    label: str = "download",
) -> None:
    """Downloads objects in parallel, each to its destination path, verifying every checksum.

    Raises:
        CxrError: an object cannot be read, or its downloaded bytes do not match its checksums.
    """
    if len(objects) != len(destinations):
        raise ValueError("one destination per object")
    client = client or get_client()
    progress = Progress(label, len(objects))

    def one(pair: tuple[GcsObject, Path]) -> None:
        obj, dest = pair
        _download_verified(client, obj, dest)
        progress.advance()

    pool = ThreadPoolExecutor(max(1, workers))
    try:
        for future in [pool.submit(one, pair) for pair in zip(objects, destinations, strict=True)]:
            future.result()  # the first failure stops the wait; queued downloads are cancelled below
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def download_file(uri: str, dest: Path, expected_sha256: str | None = None) -> Path:
    """Downloads one object to `dest` (written atomically), verified against its checksums.

    The object's stored MD5/CRC32C are checked, and `expected_sha256` (hex) too when given.

    Returns:
        `dest`.

    Raises:
        CxrError: the object does not exist, the download is corrupted or the sha256 differs.
    """
    bucket_name, name = split_gcs_uri(uri)
    if not name or name.endswith("/"):
        raise CxrError(f"{uri}: names a folder, not an object; give the full object path")
    client = get_client()
    with _gcs_errors(uri):
        blob = client.bucket(bucket_name).get_blob(name, retry=_retry(), timeout=_timeouts())
    if blob is None:
        raise CxrError(f"{uri}: no such object; check the path (`gcloud storage ls {uri}`)")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}{TEMP_MARK}")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        _download_verified(client, _object(blob, dest.name), tmp)
        if expected_sha256:
            actual = file_digest(tmp, "sha256").hex()
            if actual != expected_sha256.lower():
                raise CxrError(
                    f"{uri}: sha256 {actual[:12]}… does not match the expected "
                    f"{expected_sha256[:12]}…; check the URI or the expected hash"
                )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def upload_dir(local_dir: Path, uri: str, *, workers: int = 8) -> list[str]:
    """Uploads every file under `local_dir` to the gs:// prefix `uri`, keeping relative paths.

    Returns:
        The URIs written, sorted.

    Raises:
        CxrError: `local_dir` is not a folder, or the bucket cannot be written.
    """
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise CxrError(f"{local_dir}: not a folder; upload_dir needs a local folder")
    bucket_name, name = split_gcs_uri(uri)
    prefix = f"{name.strip('/')}/" if name.strip("/") else ""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    client = get_client()
    bucket = client.bucket(bucket_name)

    def one(path: Path) -> str:
        object_name = prefix + path.relative_to(local_dir).as_posix()
        with _gcs_errors(f"gs://{bucket_name}/{object_name}"):
            bucket.blob(object_name).upload_from_filename(str(path), retry=_retry(), timeout=_timeouts())
        return f"gs://{bucket_name}/{object_name}"

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return sorted(pool.map(one, files))


def upload_bytes(uri: str, data: bytes) -> None:
    """Writes one object (visible whole or not at all), its MD5 checked by the service on arrival."""
    bucket_name, name = split_gcs_uri(uri)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    with _gcs_errors(uri):
        blob = get_client().bucket(bucket_name).blob(name)
        blob.md5_hash = md5
        blob.upload_from_string(
            data, content_type="application/octet-stream", retry=_retry(), timeout=_timeouts()
        )


def delete_object(uri: str) -> None:
    """Deletes one object; one already gone is no error."""
    from google.api_core import exceptions as api

    bucket_name, name = split_gcs_uri(uri)
    with _gcs_errors(uri):
        try:
            get_client().bucket(bucket_name).blob(name).delete(retry=_retry(), timeout=_timeouts())
        except api.NotFound:
            pass


def file_digest(path: Path, algorithm: str) -> bytes:
    """The digest of a file's bytes: "md5", "sha256" (hashlib) or "crc32c" (4 bytes, big-endian)."""
    if algorithm == "crc32c":
        import google_crc32c

        checksum = google_crc32c.Checksum()
        update = checksum.update
    else:
        checksum = hashlib.new(algorithm)
        update = checksum.update
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            update(chunk)
    return checksum.digest()


def verify_download(obj: GcsObject, path: Path) -> None:
    """Checks a downloaded file against the object's MD5 and CRC32C (those its metadata has).

    Raises:
        CxrError: a checksum differs (names the object and both values).
    """
    for algorithm, expected in (("md5", obj.md5_hash), ("crc32c", obj.crc32c)):
        if expected:
            actual = base64.b64encode(file_digest(path, algorithm)).decode()
            if actual != expected:
                raise CxrError(
                    f"{obj.uri}: downloaded bytes fail the {algorithm} check (got {actual}, "
                    f"object says {expected}); the transfer was corrupted, run again"
                )


def _download_verified(client, obj: GcsObject, dest: Path) -> None:
    blob = client.bucket(obj.bucket).blob(obj.name, generation=obj.generation)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, CHECKSUM_ATTEMPTS + 1):
        with _gcs_errors(obj.uri):
            _fetch(blob, dest)
        try:
            verify_download(obj, dest)
            return
        except CxrError:
            if attempt == CHECKSUM_ATTEMPTS:
                raise
            log(f"{obj.uri}: corrupted transfer; downloading again ({attempt}/{CHECKSUM_ATTEMPTS - 1})")


def _fetch(blob, dest: Path) -> None:
    # The library's own checksum is off: verify_download computes and compares both itself.
    blob.download_to_filename(str(dest), checksum=None, retry=_retry(), timeout=_timeouts())


def _object(blob, relative: str) -> GcsObject:
    return GcsObject(
        bucket=blob.bucket.name,
        name=blob.name,
        relative=relative,
        size=int(blob.size or 0),
        generation=blob.generation,
        md5_hash=blob.md5_hash,
        crc32c=blob.crc32c,
    )


class _gcs_errors:
    """Turns google-cloud errors into a one-line CxrError naming the URI."""

    def __init__(self, uri: str):
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, CxrError):
            return False
        from google.api_core import exceptions as api
        from google.auth.exceptions import GoogleAuthError

        if isinstance(exc, api.NotFound):
            raise CxrError(
                f"{self.uri}: bucket or object not found; check the name (`gcloud storage ls {self.uri}`)"
            ) from exc
        if isinstance(exc, api.Forbidden | api.Unauthorized):
            raise CxrError(
                f"{self.uri}: access denied; grant this account storage.objects "
                "read/write permissions on the bucket"
            ) from exc
        if isinstance(exc, api.RetryError):
            cause = exc.cause or exc
            said = str(cause).splitlines()[0][:160] if str(cause) else ""
            raise CxrError(
                f"{self.uri}: Google Cloud Storage did not answer within {storage_timeout():.0f} s of "
                f"retries ({type(cause).__name__}: {said}); check the network, or allow longer with "
                f"{TIMEOUT_ENV}"
            ) from exc
        from requests.exceptions import RequestException

        if isinstance(exc, api.GoogleAPIError | GoogleAuthError | RequestException):
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise CxrError(
                f"{self.uri}: cannot reach Google Cloud Storage ({type(exc).__name__}: "
                f"{first[:200]}); check the network and credentials"
            ) from exc
        return False
