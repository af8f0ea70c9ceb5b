"""gs:// sources and core/storage.py against a local GCS emulator (gcp-storage-emulator, loopback only)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.artifacts.dataset import open_dataset
from components.core import storage
from components.core.errors import CxrError
from components.ingest import ingest
from tests.fault_proxy import Fault, FaultProxy, SilentServer

EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"


def test_uri_helpers():
    assert storage.is_gcs_uri("gs://b/p") and not storage.is_gcs_uri("/data/gs://x")
    assert not storage.is_gcs_uri(Path("gs:/b"))
    assert storage.split_gcs_uri("gs://bucket/a/b c.png") == ("bucket", "a/b c.png")
    assert storage.split_gcs_uri("gs://bucket") == ("bucket", "")
    assert storage.split_gcs_uri("gs://bucket/") == ("bucket", "")
    with pytest.raises(CxrError, match="no bucket name"):
        storage.split_gcs_uri("gs:///x")
    with pytest.raises(CxrError, match="not a gs:// URI"):
        storage.split_gcs_uri("s3://bucket/x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    """A gcp-storage-emulator on 127.0.0.1 with STORAGE_EMULATOR_HOST pointing at it."""
    assert EMULATOR.exists(), "gcp-storage-emulator is missing: `make install` (the dev extra) installs it"
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(EMULATOR), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{host}/storage/v1/b?project=x", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gcp-storage-emulator did not start on port {port}")
                time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(storage.EMULATOR_ENV, host)
            yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bucket(emulator) -> str:
    name = f"cxr-test-{uuid.uuid4().hex[:10]}"
    storage.get_client().create_bucket(name)
    return name


@pytest.fixture
def uploaded(bucket, kaggle_folder, tmp_path):
    """A Kaggle-layout folder (with a junk file and a broken image) and its copy under gs://BUCKET/data."""
    source = kaggle_folder()
    (source / "COVID/images/.DS_Store").write_bytes(b"junk")
    (source / "Normal/images/empty.png").write_bytes(b"")
    uris = storage.upload_dir(source.parent, f"gs://{bucket}/data")
    return source, f"gs://{bucket}/data", uris


def test_gs_prefix_ingests_like_the_folder(uploaded, tmp_path):
    source, uri, _ = uploaded
    local = ingest(source, tmp_path / "local")
    remote = ingest(uri, tmp_path / "remote", workers=4)
    a, b = open_dataset(tmp_path / "local"), open_dataset(tmp_path / "remote")

    assert remote["source"] == uri
    assert remote["fingerprint"] == local["fingerprint"]
    assert np.array_equal(a.pixels, b.pixels)
    pd.testing.assert_frame_equal(a.index.drop(columns="source_path"), b.index.drop(columns="source_path"))
    assert b.index["source_path"][0] == f"{uri}/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png"
    assert remote["ignored"] == local["ignored"] and remote["ignored"]["os_junk"] == 1
    assert [(s["path"], s["reason"]) for s in remote["skipped"]] == [
        ("COVID-19_Radiography_Dataset/Normal/images/empty.png", "empty")
    ]
    # The trailing slash and the dataset folder itself as the prefix work too.
    assert ingest(uri + "/", tmp_path / "slash")["fingerprint"] == local["fingerprint"]
    deeper = ingest(f"{uri}/COVID-19_Radiography_Dataset", tmp_path / "deeper")
    assert deeper["fingerprint"] == local["fingerprint"]


def test_gs_zip_object(bucket, kaggle_folder, tmp_path):
    source = kaggle_folder()
    zip_path = tmp_path / "archive.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, path.relative_to(source.parent).as_posix())
    storage.get_client().bucket(bucket).blob("raw/archive.zip").upload_from_filename(str(zip_path))
    remote = ingest(f"gs://{bucket}/raw/archive.zip", tmp_path / "remote")
    assert remote["fingerprint"] == ingest(source, tmp_path / "local")["fingerprint"]
    assert open_dataset(tmp_path / "remote").index["source_path"][0] == (
        f"gs://{bucket}/raw/archive.zip!/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png"
    )


def test_corrupted_download_is_detected(uploaded, tmp_path, monkeypatch):
    _, uri, _ = uploaded
    real_fetch = storage._fetch

    def corrupting_fetch(blob, dest: Path) -> None:
        real_fetch(blob, dest)
        if blob.name.endswith("Lung_Opacity-2.png"):
            data = bytearray(dest.read_bytes())
            data[100] ^= 0x01
            dest.write_bytes(bytes(data))

    monkeypatch.setattr(storage, "_fetch", corrupting_fetch)
    with pytest.raises(CxrError, match=r"Lung_Opacity-2\.png: downloaded bytes fail the md5 check") as err:
        ingest(uri, tmp_path / "out")
    assert str(err.value).startswith("gs://") and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_crc32c_alone_is_verified(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"hello world")
    good = storage.GcsObject("b", "x.bin", "x.bin", 11, 1, md5_hash=None, crc32c="yZRlqg==")
    storage.verify_download(good, path)
    bad = storage.GcsObject("b", "x.bin", "x.bin", 11, 1, md5_hash=None, crc32c="AAAAAA==")
    with pytest.raises(CxrError, match="gs://b/x.bin: downloaded bytes fail the crc32c check"):
        storage.verify_download(bad, path)


def test_missing_bucket_or_prefix(bucket, tmp_path):
    with pytest.raises(CxrError, match="no objects under this prefix"):
        ingest(f"gs://{bucket}/nothing-here", tmp_path / "out")
    with pytest.raises(CxrError, match="not found"):
        ingest("gs://no-such-bucket-cxr/data", tmp_path / "out")
    with pytest.raises(CxrError, match="no such object"):
        storage.download_file(f"gs://{bucket}/weights.h5", tmp_path / "w.h5")
    with pytest.raises(CxrError, match="not a folder"):
        storage.upload_dir(tmp_path / "missing", f"gs://{bucket}/x")


def test_upload_dir_and_download_file_round_trip(bucket, tmp_path):
    local = tmp_path / "model"
    (local / "sub dir").mkdir(parents=True)
    (local / "model.keras").write_bytes(os.urandom(3000))
    (local / "sub dir" / "history.json").write_text("{}")
    uris = storage.upload_dir(local, f"gs://{bucket}/runs/1/")
    assert uris == [f"gs://{bucket}/runs/1/model.keras", f"gs://{bucket}/runs/1/sub dir/history.json"]
    listed = storage.list_objects(f"gs://{bucket}/runs/1")
    assert [o.relative for o in listed] == ["model.keras", "sub dir/history.json"]
    assert all(o.md5_hash and o.crc32c for o in listed)

    data = (local / "model.keras").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    dest = storage.download_file(uris[0], tmp_path / "cache" / "model.keras", expected_sha256=sha.upper())
    assert dest.read_bytes() == data
    with pytest.raises(CxrError, match="sha256 .* does not match the expected"):
        storage.download_file(uris[0], tmp_path / "other" / "model.keras", expected_sha256="0" * 64)
    assert not list((tmp_path / "other").iterdir())  # nothing half-written left behind
    with pytest.raises(CxrError, match="names a folder"):
        storage.download_file(f"gs://{bucket}/runs/1/", tmp_path / "x")


# --- storage faults: the emulator behind a fault-injecting proxy (tests/fault_proxy.py) ----------------


@pytest.fixture
def faulty(emulator, monkeypatch):
    """The proxy in front of the emulator; its plan says which requests fail and how."""
    with FaultProxy(emulator) as proxy:
        monkeypatch.setenv(storage.EMULATOR_ENV, proxy.url)
        monkeypatch.setenv(storage.TIMEOUT_ENV, "30")
        yield proxy.plan


def test_transient_faults_are_retried_and_the_dataset_is_the_same(uploaded, faulty, tmp_path):
    source, uri, _ = uploaded
    local = ingest(source, tmp_path / "local")
    faulty.slow_seconds = 2
    faulty.faults = [
        Fault("503", "/o?"),  # the listing
        Fault("reset", "alt=media"),
        Fault("503", "alt=media"),
        Fault("truncate", "alt=media"),
        Fault("corrupt", "alt=media"),
        Fault("slow", "alt=media"),
    ]
    remote = ingest(uri, tmp_path / "remote", workers=2)
    assert remote["fingerprint"] == local["fingerprint"]
    assert sorted(faulty.injected) == ["503", "503", "corrupt", "reset", "slow", "truncate"]
    assert np.array_equal(open_dataset(tmp_path / "local").pixels, open_dataset(tmp_path / "remote").pixels)


def test_a_download_corrupted_every_time_is_refused_by_its_checksum(uploaded, faulty, tmp_path):
    _, uri, _ = uploaded
    faulty.faults = [Fault("corrupt", "Lung_Opacity-2.png")] * storage.CHECKSUM_ATTEMPTS
    with pytest.raises(CxrError, match=r"Lung_Opacity-2\.png: downloaded bytes fail the md5 check"):
        ingest(uri, tmp_path / "out")
    assert faulty.injected == ["corrupt"] * storage.CHECKSUM_ATTEMPTS


@pytest.mark.parametrize("outage", ["503", "silent"])
def test_an_outage_fails_with_one_line_within_the_configured_time(emulator, monkeypatch, tmp_path, outage):
    monkeypatch.setenv(storage.TIMEOUT_ENV, "4")
    with FaultProxy(emulator) as proxy, SilentServer() as silent:
        proxy.plan.always = "503"
        monkeypatch.setenv(storage.EMULATOR_ENV, proxy.url if outage == "503" else silent.url)
        started = time.monotonic()
        with pytest.raises(
            CxrError, match=r"did not answer within 4 s of retries .*CXR_GCS_TIMEOUT_SECONDS"
        ) as err:
            ingest("gs://some-bucket/data", tmp_path / "out")
        assert time.monotonic() - started < 20
    assert "\n" not in str(err.value)


def test_the_storage_timeout_setting_is_checked(monkeypatch):
    monkeypatch.setenv(storage.TIMEOUT_ENV, "soon")
    with pytest.raises(CxrError, match="CXR_GCS_TIMEOUT_SECONDS='soon': give seconds between 1 and 86400"):
        storage.storage_timeout()


def test_checkpoints_on_gs_survive_faults_and_a_corrupted_newest_falls_back(bucket, faulty):
    import keras

    from components.core.checkpoints import Checkpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    location = f"gs://{bucket}/checkpoints/run-1/model1"
    saved = Checkpoints(location, {"variant": "model1"})
    faulty.faults = [Fault("503", "uploadType"), Fault("reset", "uploadType")]
    saved.save(model, {"loss": [1.0]}, [0.1], next_epoch=1)
    saved.save(model, {"loss": [1.0, 0.5]}, [0.1, 0.1], next_epoch=2)
    assert sorted(faulty.injected) == ["503", "reset"]
    assert Checkpoints(location, {"variant": "model1"}).latest().next_epoch == 2
    newest = storage.list_objects(location)[-1]  # ckpt-0002-000000.npz sorts after its .json
    assert newest.name.endswith("ckpt-0002-000000.npz")
    storage.upload_bytes(newest.uri, b"truncated")
    resumed = Checkpoints(location, {"variant": "model1"}).latest()
    assert resumed.next_epoch == 1 and resumed.history == {"loss": [1.0]}
