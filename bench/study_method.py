"""The study's method, as its notebook trains: the baseline `make bench` measures ours against.

PNG files read and decoded by tf.data every epoch, the full MobileNetV2 forward (and backward through
what trains) every step, batch 16, validation every epoch, on a stratified subset of a Kaggle-layout
folder split 70/30. Same model, optimiser and weights as `cxr train`. Not part of the product.

    python bench/study_method.py DATA_DIR --variant model2 --images 600 --epochs 3 --weights FILE

Prints one JSON object: the subset's sizes, seconds per epoch (validation included), the seconds of
one validation pass alone, and CPU seconds.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def subset(data_dir: Path, images: int, seed: int) -> tuple[list[str], np.ndarray]:
    """A stratified random subset: (PNG paths, class indices), each class in its share of the folder."""
    from components.core.classes import CLASS_NAMES, class_for_folder

    by_class = {name: [] for name in CLASS_NAMES}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        name = class_for_folder(folder.name)
        if name:
            by_class[name] = sorted(str(p) for p in (folder / "images").glob("*.png"))
    total = sum(len(v) for v in by_class.values())
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for k, name in enumerate(CLASS_NAMES):
        files = by_class[name]
        take = max(2, round(images * len(files) / total))
        chosen = rng.choice(len(files), size=min(take, len(files)), replace=False)
        paths += [files[i] for i in sorted(chosen)]
        labels += [k] * len(chosen)
    return paths, np.array(labels)


def main(argv: list[str] | None = None) -> int:
    """Trains one variant the study's way and prints the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--seed", type=int, default=42)
    a = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    from components.core.model import build_model
    from components.core.variants import get_variant

    paths, labels = subset(a.data_dir, a.images, a.seed)
    train_paths, val_paths, train_labels, val_labels = train_test_split(
        paths, labels, test_size=0.3, stratify=labels, random_state=a.seed
    )

    def load(path, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=1)
        return tf.image.resize(tf.cast(image, tf.float32), (a.image_size, a.image_size)), label

    def batches(files, y, shuffle: bool):
        ds = tf.data.Dataset.from_tensor_slices((files, y))
        if shuffle:
            ds = ds.shuffle(len(files), seed=a.seed)
        return (
            ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(a.batch_size).prefetch(tf.data.AUTOTUNE)
        )

    keras.utils.set_random_seed(a.seed)
    model = build_model(get_variant(a.variant), image_size=a.image_size, weights=a.weights)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)
            print(
                f"study method {a.variant}: epoch {epoch + 1}/{a.epochs} ({self.seconds[-1]:.1f} s)",
                file=sys.stderr,
                flush=True,
            )

    times = EpochTimes()
    cpu = time.process_time()
    model.fit(
        batches(train_paths, train_labels, True),
        validation_data=batches(val_paths, val_labels, False),
        epochs=a.epochs,
        verbose=0,
        callbacks=[times],
    )
    val_seconds = []
    for _ in range(2):  # the second pass: the first also builds the evaluation graph
        started = time.perf_counter()
        model.evaluate(batches(val_paths, val_labels, False), verbose=0)
        val_seconds.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "variant": a.variant,
                "n_train": len(train_paths),
                "n_val": len(val_paths),
                "epoch_seconds": [round(s, 3) for s in times.seconds],
                "val_seconds": round(val_seconds[-1], 3),
                "cpu_seconds": round(time.process_time() - cpu, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
