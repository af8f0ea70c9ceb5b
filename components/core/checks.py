"""Checks of study settings shared by the steps and the pipeline configuration.

The configuration checks them at compile time, so a bad value fails on the laptop, not on a GPU
node after ingest; the steps check them again for direct `cxr` use, before any work. `prefix` names
the setting the way the caller's user wrote it (`--` for the CLI, `study.` for the configuration).
Every message names the setting, its allowed range and an example.
"""

import math

from components.core.errors import CxrError

MIN_IMAGE_SIZE = 32  # MobileNetV2's smallest input
MAX_IMAGE_SIZE = 1024  # 4.6x the study's 224; beyond it a batch's activations alone need several GB
MAX_STORED_SIZE = 4096  # the real set is 299 px; 21,165 images at 4096 px would be 355 GB of pixels
MAX_SEED = 2**32 - 1  # numpy's legacy seeding, which Keras calls, accepts no more
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096
MAX_HEAD_UNITS = 65_536


def setting_name(prefix: str, name: str) -> str:
    """`--image-size` for the CLI, `study.image_size` for the configuration."""
    return prefix + (name.replace("_", "-") if prefix == "--" else name)


def check_whole_number(value, name: str, low: int, high: int, example: str) -> int:
    """`value` as an int in [low, high]; integral floats (KFP sends numbers as floats) are accepted."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise CxrError(f"{name} {value!r} must be a whole number from {low} to {high}, e.g. {example}")
    if not low <= value <= high:
        raise CxrError(f"{name} {int(value)} is out of range: use {low} to {high}, e.g. {example}")
    return int(value)


def check_fractions(val_fraction: float, test_fraction: float, prefix: str = "--") -> None:
    """Validation and test shares: 0 < val < 1, 0 <= test < 1 and val + test < 1."""
    val, test = setting_name(prefix, "val_fraction"), setting_name(prefix, "test_fraction")
    if not 0 < val_fraction < 1:
        raise CxrError(f"{val} {val_fraction} must be between 0 and 1 (exclusive), e.g. 0.3")
    if not 0 <= test_fraction < 1:
        raise CxrError(f"{test} {test_fraction} must be in [0, 1), e.g. 0.1 or 0")
    if val_fraction + test_fraction >= 1:
        raise CxrError(
            f"{val} {val_fraction} + {test} {test_fraction} leave no training images; "
            "their sum must be below 1"
        )


def check_training_settings(epochs: int, batch_size: int, image_size: int, prefix: str = "--") -> None:
    """Epochs, batch size and image size within what a run can use (image size: MobileNetV2's 32 up)."""
    check_whole_number(epochs, setting_name(prefix, "epochs"), 1, MAX_EPOCHS, "20")
    check_whole_number(batch_size, setting_name(prefix, "batch_size"), 1, MAX_BATCH_SIZE, "16")
    name = setting_name(prefix, "image_size")
    if isinstance(image_size, int | float) and image_size < MIN_IMAGE_SIZE:
        raise CxrError(
            f"{name} {image_size} is below MobileNetV2's minimum of {MIN_IMAGE_SIZE} pixels; "
            "use e.g. 64, 96 or 224"
        )
    check_whole_number(image_size, name, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "224")


def check_stored_size(stored_size: int, prefix: str = "--") -> None:
    """0 (the most common image size) or a side from 1 to MAX_STORED_SIZE pixels."""
    if stored_size != 0:
        name = setting_name(prefix, "stored_size")
        check_whole_number(stored_size, name, 1, MAX_STORED_SIZE, "299")


def check_seed(seed: int, name: str = "--seed") -> int:
    """A seed numpy, TensorFlow and Python's random all accept: 0 to 2**32 - 1."""
    return check_whole_number(seed, name, 0, MAX_SEED, "42")


def check_learning_rate(learning_rate: float, prefix: str = "--") -> None:
    """A finite learning rate in (0, 1]: NaN or infinity trains a NaN model."""
    name = setting_name(prefix, "learning_rate")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise CxrError(f"{name} {learning_rate!r} must be a number in (0, 1], e.g. 0.001")
    if not math.isfinite(learning_rate) or not 0 < learning_rate <= 1:
        raise CxrError(f"{name} {learning_rate} must be a finite number in (0, 1], e.g. 0.001")


def check_head(head_units, dropout: float, prefix: str = "--") -> tuple[int, ...]:
    """The head's hidden sizes (1 to 65,536 each, at least one) as ints, and a dropout rate in [0, 1)."""
    units_name = setting_name(prefix, "head_units")
    if not head_units:
        raise CxrError(f"{units_name} is empty: give at least one hidden size, e.g. 256,128")
    units = tuple(check_whole_number(u, units_name, 1, MAX_HEAD_UNITS, "256,128") for u in head_units)
    if not isinstance(dropout, int | float) or not math.isfinite(dropout) or not 0 <= dropout < 1:
        raise CxrError(f"{setting_name(prefix, 'dropout')} {dropout} must be in [0, 1), e.g. 0.3")
    return units
