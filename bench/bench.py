"""`make bench`: throughput of the steps on demo data, the baseline for the feature-caching work.

Measures, in one process on this machine: ingest from a folder and from a .zip (images/s), and
training of each variant at the study's 224 px: training images per second of the last epoch
(steady state: the first epoch also traces the graph), validation included, as the study trains.
Writes bench/results.json; README.md summarises it. Ratios within one run are what to compare:
the machine is shared and noisy.
"""

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tensorflow as tf

from components.demo.backbone import make_demo_weights
from components.demo.kaggle_layout import make_demo_dataset
from components.ingest import ingest
from components.split import split
from components.train import train

IMAGES = 480
IMAGE_SIZE = 224
EPOCHS = 3
OUT = Path(__file__).parent / "results.json"


def timed(func, *args, **kwargs):
    """(func(*args, **kwargs), its wall-clock seconds)."""
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> int:
    """Runs the benchmark and writes bench/results.json."""
    results = {
        "machine": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "images": IMAGES,
        "image_size": IMAGE_SIZE,
        "epochs": EPOCHS,
    }
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        tmp = Path(tmp)
        make_demo_dataset(tmp / "data", total=IMAGES, seed=11)
        shutil.make_archive(str(tmp / "data"), "zip", tmp, "data")
        _, folder_s = timed(ingest, str(tmp / "data"), tmp / "dataset")
        _, zip_s = timed(ingest, str(tmp / "data.zip"), tmp / "dataset-zip")
        results["ingest_images_per_s"] = {"folder": IMAGES / folder_s, "zip": IMAGES / zip_s}
        summary = split(tmp / "dataset", tmp / "split")
        n_train = summary["counts"]["train"]
        weights = make_demo_weights(tmp / "backbone.weights.h5", image_size=64)
        results["train_images_per_s"] = {}
        for variant in ("model1", "model2", "model3"):
            record = train(
                tmp / "dataset",
                tmp / "split",
                tmp / variant,
                variant=variant,
                epochs=EPOCHS,
                image_size=IMAGE_SIZE,
                weights=str(weights),
            )
            results["train_images_per_s"][variant] = n_train / record["epoch_seconds"][-1]
    full_epochs_images = 14_815 * 20  # the real training side (70 %) × the study's 20 epochs
    results["projected_minutes_per_variant_full_study"] = {
        v: full_epochs_images / ips / 60 for v, ips in results["train_images_per_s"].items()
    }
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
