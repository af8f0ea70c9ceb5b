"""The offline demo backbone: MobileNetV2 pretrained on synthetic phantoms, a stand-in for ImageNet.

A frozen, randomly initialised backbone gives useless features and ImageNet weights cannot be
fetched offline, so `make_demo_weights` pretrains a no-top MobileNetV2 on a separate synthetic pretext
set (the same four-class task from the same generator: demo runs test the plumbing and say nothing
about which layers are worth fine-tuning on real X-rays). The file loads with
`keras.applications.MobileNetV2(include_top=False, weights=PATH, input_shape=(S, S, 3))`.

In the pipeline a visible `demo-backbone` step builds it once per run (a folder holding
BACKBONE_FILE) and hands it to every train task.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from components.core.classes import CLASS_NAMES
from components.core.errors import CxrError
from components.core.files import temp_path
from components.core.progress import log
from components.core.storage import cache_dir
from components.demo.phantom import REAL_IMAGE_SIZE, check_seed, check_size, demo_arrays

# Bump when the phantom or the pretraining recipe changes, so cached weights are rebuilt.
DEMO_WEIGHTS_VERSION = 2
PRETEXT_SEED_OFFSET = 10_000
# 1440 images × 3 epochs (135 steps) rather than 480 × 8 (120 steps): about the same compute, but
# 480 images are memorised rather than learned from. Measured at 64 px, a linear probe on the frozen
# pooled features of another demo set reached 0.92 instead of 0.68 (0.84 at 96 px; 0.48, the
# majority class, with random weights).
PRETEXT_IMAGES = 1440
PRETEXT_EPOCHS = 3
PRETEXT_CHECK_IMAGES = 120
PRETEXT_BATCH_SIZE = 32
PRETEXT_LEARNING_RATE = 1e-3
PRETEXT_BN_MOMENTUM = 0.9
WEIGHTS_SUFFIX = ".weights.h5"
BACKBONE_FILE = "backbone" + WEIGHTS_SUFFIX  # inside the demo-backbone step's Model artifact


def demo_weights_cache_path(image_size: int, seed: int) -> Path:
    """The cached demo backbone for (image_size, seed, DEMO_WEIGHTS_VERSION)."""
    return (
        cache_dir()
        / "demo-weights"
        / f"mobilenetv2-notop-demo-v{DEMO_WEIGHTS_VERSION}-{image_size}px-seed{seed}{WEIGHTS_SUFFIX}"
    )


def make_demo_weights(out_file: Path, image_size: int = 64, seed: int = 0) -> Path:
    """Writes offline-pretrained MobileNetV2 backbone weights (no top) for demos and tests.

    A stand-in for ImageNet weights: MobileNetV2 (weights=None) is pretrained on a synthetic
    pretext set of PRETEXT_IMAGES demo images drawn with seed + PRETEXT_SEED_OFFSET (so it shares
    no image with demo sets made with small seeds), and only the backbone's weights are saved.
    Load them with `keras.applications.MobileNetV2(include_top=False, weights=out_file,
    input_shape=(S, S, 3))` at any S ≥ 32. The first call per (image_size, seed) trains (2 to 4
    minutes on 2 busy CPU cores) and caches the result under `cache_dir()/demo-weights/`; later
    calls copy the cached file.

    Args:
        out_file: Destination; its name must end in `.weights.h5` (Keras' weights-only format).
        image_size: Side of the pretraining images in pixels (use the training image size).
        seed: Seed of the pretext set and of training.

    Returns:
        out_file.

    Raises:
        CxrError: When out_file does not end in `.weights.h5`, or on a bad image size or seed.
    """
    out_file = Path(out_file).expanduser()
    if not out_file.name.endswith(WEIGHTS_SUFFIX) or out_file.name == WEIGHTS_SUFFIX:
        raise CxrError(
            f"{out_file}: the weights file name must end in {WEIGHTS_SUFFIX} "
            f"(e.g. demo-backbone{WEIGHTS_SUFFIX}), which Keras requires to load it"
        )
    check_size(image_size, "--image-size")
    check_seed(seed)
    if out_file.is_dir():
        raise CxrError(f"{out_file} is a folder; give the path of a {WEIGHTS_SUFFIX} file")
    cached = demo_weights_cache_path(image_size, seed)
    if cached.is_file():
        log(f"demo-weights: using cached {cached}")
    cached = demo_backbone_file(image_size, seed)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out_file)
    shutil.copyfile(cached, tmp)
    tmp.replace(out_file)
    demo_marker(out_file).write_text(f"cxr-kfp demo backbone v{DEMO_WEIGHTS_VERSION}\n")
    log(f"demo-weights: wrote {out_file}")
    return out_file


def demo_marker(weights_file: Path) -> Path:
    """The sidecar that marks a weights file as the demo backbone (reports say demo runs are demos)."""
    return Path(weights_file).with_name(Path(weights_file).name + ".demo")


def is_demo_weights(weights: str | None) -> bool:
    """True for the demo backbone: the "demo" setting or a file make_demo_weights wrote."""
    if weights in (None, "imagenet", "none"):
        return False
    return weights == "demo" or demo_marker(Path(weights)).is_file()


def demo_backbone_file(image_size: int, seed: int = 0) -> Path:
    """The cached demo backbone for `image_size`, pretrained first when it is not cached yet."""
    cached = demo_weights_cache_path(image_size, seed)
    if not cached.is_file():
        check_size(image_size, "--image-size")
        check_seed(seed)
        cached.parent.mkdir(parents=True, exist_ok=True)
        _pretrain(cached, image_size, seed)
    return cached


def _pretrain(cached: Path, image_size: int, seed: int) -> None:
    """Pretrains the backbone on the pretext set and saves its weights to `cached` atomically."""
    import keras

    from components.core.data import resize_pixels
    from components.core.model import mobilenet_input
    from components.core.training import EpochLog

    started = time.monotonic()
    log(
        f"demo-weights: pretraining MobileNetV2 ({image_size} px, seed {seed}) on {PRETEXT_IMAGES} "
        f"synthetic images, {PRETEXT_EPOCHS} epochs; once, then cached in {cached.parent}"
    )
    keras.utils.set_random_seed(seed)

    def pixels(total: int, pretext_seed: int) -> tuple[np.ndarray, np.ndarray]:
        # Drawn at the real 299 px and resized as the input pipeline resizes stored pixels.
        images, labels = demo_arrays(total, REAL_IMAGE_SIZE, pretext_seed)
        return resize_pixels(images, image_size).numpy(), labels

    x, labels = pixels(PRETEXT_IMAGES, seed + PRETEXT_SEED_OFFSET)
    inputs = keras.Input((image_size, image_size, 1))
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3)
    )
    # At Keras' default momentum (0.999) the moving statistics barely leave their initial values
    # in ~120 steps, and the frozen backbone is useless in inference mode.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = PRETEXT_BN_MOMENTUM
    pooled = keras.layers.GlobalAveragePooling2D()(base(mobilenet_input(inputs)))
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(PRETEXT_LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x,
        labels,
        epochs=PRETEXT_EPOCHS,
        batch_size=PRETEXT_BATCH_SIZE,
        shuffle=True,
        verbose=0,
        callbacks=[EpochLog("demo-weights", PRETEXT_EPOCHS)],
    )
    # The backbone is used frozen, in inference mode: report how well it does in that mode on
    # images it has not seen.
    held_x, held_labels = pixels(PRETEXT_CHECK_IMAGES, seed + PRETEXT_SEED_OFFSET + 1)
    predicted = model.predict(held_x, batch_size=PRETEXT_CHECK_IMAGES, verbose=0).argmax(axis=1)
    log(
        f"demo-weights: accuracy on {PRETEXT_CHECK_IMAGES} unseen synthetic images in inference mode "
        f"{np.mean(predicted == held_labels):.3f} ({time.monotonic() - started:.0f} s)"
    )

    tmp = cached.with_name(f".tmp-{os.getpid()}-{cached.name}")
    base.save_weights(tmp)
    tmp.replace(cached)
