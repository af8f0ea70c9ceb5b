"""Measurements behind two choices of the feature cache, run by `make bench` (bench/bench.py).

    python bench/micro.py precision   # the tail and the prefix in float32 vs mixed_bfloat16, on this CPU
    python bench/micro.py devices     # the tail on one device vs MirroredStrategy over two logical CPUs

Each prints one JSON object. Random inputs: these measure speed (and bfloat16's rounding), not accuracy.
"""

import json
import sys
import time

import numpy as np

TRAIN, VAL = 2400, 800
EPOCHS = 3


def _tail_run(precision: str, devices: list[str] | None) -> dict:
    import keras

    keras.mixed_precision.set_global_policy(precision)
    from components.core.features import aligned_empty
    from components.core.model import build_model
    from components.core.training import device_strategy, fit_on_features
    from components.core.variants import VARIANTS

    keras.utils.set_random_seed(0)
    strategy = device_strategy(devices)
    with strategy.scope():
        model = build_model(VARIANTS["model3"], image_size=224, weights=None)
    rng = np.random.default_rng(0)
    table = aligned_empty((TRAIN + VAL, 7, 7, 960), np.float32)
    table[...] = rng.uniform(0, 6, table.shape)
    labels = rng.integers(0, 4, TRAIN + VAL)
    cpu = time.process_time()
    _, epoch_seconds, seconds = fit_on_features(
        model,
        table,
        labels[:TRAIN],
        labels[TRAIN:],
        epochs=EPOCHS,
        batch_size=16,
        learning_rate=1e-3,
        seed=1,
        strategy=strategy,
        label=f"model3 tail {precision}",
    )
    return {
        "train_images_per_s": round(TRAIN / epoch_seconds[-1], 1),
        "epoch_seconds": epoch_seconds,
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "wall_seconds": round(seconds, 1),
    }


def _prefix_run(precision: str) -> dict:
    from components.core.features import extract_features
    from components.demo.backbone import demo_backbone_file
    from components.demo.phantom import demo_arrays

    pixels, _ = demo_arrays(384, 224, seed=5)  # phantoms through a pretrained backbone: real activations
    weights = str(demo_backbone_file(64))
    out: list[np.ndarray] = []
    extract_features(weights, 224, pixels, np.arange(64), out.append, precision=precision)  # warm-up
    out.clear()
    cpu = time.process_time()
    seconds = extract_features(weights, 224, pixels, np.arange(len(pixels)), out.append, precision=precision)
    return {
        "images_per_s": round(len(pixels) / seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "features": np.concatenate(out),
    }


def main(what: str) -> int:
    """Runs one measurement and prints its JSON."""
    if what == "precision":
        import keras

        fp32, bf16 = _prefix_run("float32"), _prefix_run("mixed_bfloat16")
        scale = float(np.abs(fp32["features"]).max())
        deviation = float(np.abs(fp32.pop("features") - bf16.pop("features")).max())
        prefix = {
            "float32": fp32,
            "mixed_bfloat16": bf16,
            "max_abs_feature_difference": round(deviation, 4),
            "max_abs_feature": round(scale, 3),
        }
        tail = {"float32": _tail_run("float32", None), "mixed_bfloat16": _tail_run("mixed_bfloat16", None)}
        keras.mixed_precision.set_global_policy("float32")
        result = {"prefix": prefix, "tail_model3": tail}
    elif what == "devices":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        result = {
            "tail_model3": {
                "one_device": _tail_run("float32", None),
                "mirrored_two_logical_cpus": _tail_run("float32", ["/cpu:0", "/cpu:1"]),
            }
        }
    else:
        raise SystemExit(f"usage: python bench/micro.py precision|devices, not {what!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
