"""Checks of study settings shared by the steps and the pipeline configuration.

The configuration checks them at compile time, so a bad value fails on the laptop, not on a GPU
node after ingest; the steps check them again for direct `cxr` use. `prefix` names the setting the
way the caller's user wrote it (`--` for the CLI, `study.` for the configuration).
"""

from components.core.errors import CxrError

MIN_IMAGE_SIZE = 32  # MobileNetV2's smallest input


def check_fractions(val_fraction: float, test_fraction: float, prefix: str = "--") -> None:
    """Validation and test shares: 0 < val < 1, 0 <= test < 1 and val + test < 1."""
    sep = "-" if prefix == "--" else "_"
    val, test = f"{prefix}val{sep}fraction", f"{prefix}test{sep}fraction"
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
    """Epochs and batch size at least 1; image size at least MobileNetV2's minimum of 32 pixels."""
    sep = "-" if prefix == "--" else "_"
    for name, value in (("epochs", epochs), (f"batch{sep}size", batch_size)):
        if value < 1:
            raise CxrError(f"{prefix}{name} {value} must be at least 1")
    if image_size < MIN_IMAGE_SIZE:
        raise CxrError(
            f"{prefix}image{sep}size {image_size} is below MobileNetV2's minimum of "
            f"{MIN_IMAGE_SIZE} pixels; use e.g. 64, 96 or 224"
        )
