"""Preemption: `cxr train` killed (SIGKILL) or stopped (SIGTERM) midway and run again ends with the
weights of an uninterrupted run of the same seed, bit for bit (CPU, op determinism on); checkpoints
that are truncated or of other settings are not resumed from.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from components.core.checkpoints import Checkpoints
from components.split import split
from tests.factories import write_dataset

pytestmark = pytest.mark.slow

EPOCHS = 30
PER_CLASS = {"COVID": 30, "Lung_Opacity": 30, "Normal": 30, "Viral Pneumonia": 30}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    dataset = write_dataset(root / "dataset", PER_CLASS, size=32)
    split(dataset, root / "split")
    return root, dataset, root / "split"


def train_command(dataset: Path, split_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "train",
        *("--dataset", str(dataset), "--split", str(split_dir), "--out", str(out)),
        *("--variant", "model3", "--epochs", str(EPOCHS), "--image-size", "32", "--batch-size", "8"),
        *("--weights", "none", "--seed", "7", "--deterministic", *extra),
    ]


def start(command: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)


def checkpoint_records(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("ckpt-*.json")) if folder.is_dir() else []


def wait_for_checkpoint(
    process: subprocess.Popen, folder: Path, after: list[str], timeout: float = 240
) -> None:
    """Waits until a checkpoint newer than `after` is committed (or the process ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        records = checkpoint_records(folder)
        if records and (not after or records[-1] > after[-1]):
            return
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        pytest.fail(f"no new checkpoint in {folder} within {timeout} s")


def final_weights(model_dir: Path) -> list[np.ndarray]:
    from components.core.model import load_model

    return [w.copy() for w in load_model(model_dir / "model.keras").get_weights()]


def uninterrupted_run(study, name: str, *extra: str) -> list[np.ndarray]:
    root, dataset, split_dir = study
    out, log = root / name, root / f"{name}.log"
    process = start(train_command(dataset, split_dir, out, *extra), log)
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    return final_weights(out)


@pytest.fixture(scope="module")
def uninterrupted(study):
    """On cached features (the default): one batch chunk per epoch."""
    return uninterrupted_run(study, "uninterrupted")


@pytest.fixture(scope="module")
def uninterrupted_on_pixels(study):
    """On pixels: one step per call, so SIGTERM can stop an epoch between two batches."""
    return uninterrupted_run(study, "uninterrupted-pixels", "--no-feature-cache")


def test_sigkill_twice_mid_training_then_resume_gives_the_same_weights(study, uninterrupted):
    root, dataset, split_dir = study
    out, log = root / "killed", root / "killed.log"
    rng = random.Random(2026)
    seen: list[str] = []
    for _ in range(2):
        process = start(train_command(dataset, split_dir, out), log)
        wait_for_checkpoint(process, out / "checkpoints", seen)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in the epochs after it
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "training ended before the kill; raise EPOCHS"
        seen = checkpoint_records(out / "checkpoints")
        assert seen, "the kill left no checkpoint"
    process = start(train_command(dataset, split_dir, out), log)
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert text.count("resuming at") == 2, text[-3000:]
    for ours, reference in zip(final_weights(out), uninterrupted, strict=True):
        assert np.array_equal(ours, reference)  # bitwise: tolerance 0
    assert not (out / "checkpoints").exists()  # removed once the model folder is whole


def test_sigterm_checkpoints_and_the_rerun_resumes_there(study, uninterrupted_on_pixels):
    root, dataset, split_dir = study
    out, log = root / "terminated", root / "terminated.log"
    command = train_command(dataset, split_dir, out, "--no-feature-cache")
    process = start(command, log)
    wait_for_checkpoint(process, out / "checkpoints", [])
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 2
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("cxr: train model3: stopped by SIGTERM")
    assert "run the same command again to resume" in last
    process = start(command, log)
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    for ours, reference in zip(final_weights(out), uninterrupted_on_pixels, strict=True):
        assert np.array_equal(ours, reference)


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    saved = Checkpoints(tmp_path / "ckpt", {"variant": "model1"})
    saved.save(model, {"loss": [1.0]}, [0.1], next_epoch=1)
    saved.save(model, {"loss": [1.0, 0.5]}, [0.1, 0.1], next_epoch=2)
    newest = sorted((tmp_path / "ckpt").glob("ckpt-*.npz"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    resumed = saved.latest()
    assert resumed is not None and resumed.next_epoch == 1 and resumed.history == {"loss": [1.0]}
    assert Checkpoints(tmp_path / "ckpt", {"variant": "model2"}).latest() is None  # other settings


def test_two_runs_with_one_seed_give_identical_weights_and_history(study, uninterrupted):
    """Determinism on CPU (op determinism on): a second run from scratch, the same bits."""
    root = study[0]
    again = uninterrupted_run(study, "again")
    for ours, reference in zip(again, uninterrupted, strict=True):
        assert np.array_equal(ours, reference)
    assert (root / "again" / "history.json").read_text() == (
        root / "uninterrupted" / "history.json"
    ).read_text()
