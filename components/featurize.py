"""Runs MobileNetV2's frozen prefix once over every image of a dataset: the feature cache.

Consumes a dataset artifact and the backbone weights; produces a features artifact
(components/artifacts/features.py) that `train` and `evaluate` read instead of running the prefix
again (components/core/features.py says what is cached and why it is exact).
"""

from pathlib import Path

import numpy as np

from components.artifacts.dataset import open_dataset
from components.artifacts.features import DEFAULT_DTYPE, FeaturesSummary, FeaturesWriter
from components.artifacts.features import KIND as FEATURES_KIND
from components.core import study
from components.core.checks import check_training_settings
from components.core.features import PREFIX_LAYER, extract_features, prefix_shape
from components.core.model import resolve_weights, weights_file_sha256
from components.core.progress import log


@FEATURES_KIND.cleans_up
def featurize(
    dataset_dir: Path,
    out_dir: Path,
    *,
    image_size: int = study.IMAGE_SIZE,
    weights: str = "imagenet",
    weights_sha256: str | None = None,
    weights_file: Path | None = None,
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = 64,
) -> FeaturesSummary:
    """Writes the prefix features of every image of a dataset.

    Args:
        dataset_dir: an ingested dataset folder.
        out_dir: the features folder to write (replaced on rerun).
        image_size: model input side in pixels (the stored pixels are resized to it).
        weights: "imagenet", "none", "demo", a local backbone weights file or a gs:// URI.
        weights_sha256: expected sha256 of a weights file, checked when given.
        weights_file: a local backbone weights file loaded in place of resolving `weights`.
        dtype: "float16" (half the memory and disk) or "float32" (bit-exact features).
        batch_size: images per forward batch.

    Returns:
        The summary written to features.json.
    """
    check_training_settings(1, batch_size, image_size)
    out_dir = FEATURES_KIND.prepare_output(out_dir, inputs=[("--dataset", dataset_dir)])
    dataset = open_dataset(dataset_dir)
    resolved = (
        str(weights_file)
        if weights_file
        else resolve_weights(weights, image_size=image_size, sha256=weights_sha256)
    )
    shape = (len(dataset.index), *prefix_shape(image_size))
    gigabytes = np.prod(shape) * np.dtype(dtype).itemsize / 1e9
    log(
        f"featurize: {shape[0]} images at {image_size}px through MobileNetV2 up to {PREFIX_LAYER} "
        f"({'x'.join(map(str, shape[1:]))} {dtype} each, {gigabytes:.2f} GB)"
    )
    writer = FeaturesWriter(out_dir, shape, dtype)
    try:
        seconds = extract_features(
            resolved, image_size, dataset.pixels, np.arange(shape[0]), writer.write, batch_size=batch_size
        )
    except BaseException:
        writer.abort()
        raise
    summary: FeaturesSummary = {
        "layer": PREFIX_LAYER,
        "shape": list(shape),
        "dtype": dtype,
        "image_size": image_size,
        "weights": weights,
        "weights_sha256": weights_file_sha256(resolved),
        "dataset_fingerprint": dataset.fingerprint,
        "seconds": round(seconds, 3),
        "images_per_s": round(shape[0] / max(seconds, 1e-9), 1),
    }
    writer.close(summary)
    log(f"featurize: done in {seconds:.1f} s ({summary['images_per_s']:.0f} images/s) -> {out_dir}")
    return summary
