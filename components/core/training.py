"""What every Keras training loop here shares: the per-epoch console line and the device strategy."""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from components.core.progress import log

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


class EpochLog(keras.callbacks.Callback):
    """One console line per epoch: `<label>: epoch e/E loss=… accuracy=… (s)`; keeps the seconds."""

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label, self.epochs = label, epochs
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        """Starts the epoch's clock."""
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Prints the epoch's line."""
        logs = logs or {}
        self.seconds.append(time.perf_counter() - self._started)
        values = " ".join(f"{k}={logs[k]:.4f}" for k in HISTORY_KEYS if k in logs)
        log(f"{self.label}: epoch {epoch + 1}/{self.epochs} {values} ({self.seconds[-1]:.1f} s)")


def device_strategy(devices: list[str] | None = None) -> tf.distribute.Strategy:
    """MirroredStrategy over `devices` (default: every GPU when more than one is visible), else default."""
    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] if len(gpus) > 1 else None
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()
