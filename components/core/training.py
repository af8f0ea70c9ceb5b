"""What every Keras training loop here shares: the per-epoch console line and the device strategy."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from components.core.checkpoints import Checkpoints, restore
from components.core.errors import CxrError
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


# Steps per call of the compiled training function on cached features: a tail step takes under a
# millisecond, so one Python round trip per step would cost more than the step. Exact (the same steps
# in the same order); not under MirroredStrategy, where Keras 3 fails with it (keras#19246).
STEPS_PER_EXECUTION = 64
# Validation on cached features: batch size changes no number (inference mode, no dropout), only speed.
VAL_BATCH_SIZE = 512


def compile_model(model: keras.Model, learning_rate: float, steps_per_execution: int = 1) -> None:
    """The study's optimisation: Adam at `learning_rate`, sparse categorical cross-entropy, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


class StopRequest(keras.callbacks.Callback):
    """Ends training between two batches once SIGTERM arrived (a pod being preempted or deleted).

    The signal only sets a flag; the next batch end that leaves batches of the epoch to train raises
    Stopped with the batches trained, so fit_epochs can checkpoint exactly there instead of losing the
    epoch. After the last batch the epoch ends as usual (validation, its checkpoint), then training stops.
    """

    def __init__(self, skipped: int = 0, total: int = -1):
        super().__init__()
        self.requested, self.skipped, self.total = False, skipped, total

    def on_train_batch_end(self, batch, logs=None):
        """Raises Stopped when asked to stop and batches of the epoch remain."""
        done = self.skipped + batch + 1
        if self.requested and 0 < done < self.total:
            raise Stopped(done)


class Stopped(Exception):
    """Raised inside fit by StopRequest: `batches` of the current epoch were trained."""

    def __init__(self, batches: int):
        super().__init__(batches)
        self.batches = batches


@contextlib.contextmanager
def stop_on_sigterm(request: StopRequest):
    """While training runs in the main thread, SIGTERM asks `request` to stop (elsewhere: a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: setattr(request, "requested", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit_epochs(
    model: keras.Model,
    train_data: Callable[[int], tf.data.Dataset],
    val_data: tf.data.Dataset,
    *,
    epochs: int,
    label: str,
    checkpoints: Checkpoints | None = None,
) -> tuple[dict[str, list[float]], list[float], float]:
    """Fits a compiled model epoch by epoch; returns (history, seconds of each epoch, seconds in all).

    With `checkpoints`, the state is saved after every epoch and when SIGTERM stops an epoch midway
    (then a CxrError ends the step, so KFP retries it); a run with checkpoints of the same settings
    resumes from the newest one, at the batch it stopped before. An epoch resumed midway reports
    the loss and accuracy of its batches after the resume.

    Args:
        model: a compiled model.
        train_data: the batches of one epoch, given its number (a new order each epoch).
        val_data: the validation batches, evaluated after every epoch.
        epochs: how many epochs.
        label: the per-epoch console line's label.
        checkpoints: where to checkpoint and resume from (core/checkpoints.py).
    """
    epoch_log = EpochLog(label, epochs)
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    first, skip = 0, 0
    resumed = checkpoints.latest() if checkpoints else None
    if resumed is not None:
        restore(model, resumed)
        history, epoch_log.seconds = resumed.history, list(resumed.epoch_seconds)
        first, skip = resumed.next_epoch, resumed.skip_batches
        where = f"batch {skip + 1} of epoch {first + 1}" if skip else f"epoch {first + 1}"
        log(f"{label}: resuming at {where}/{epochs} from {checkpoints.location}")
    started = time.perf_counter() - sum(epoch_log.seconds)
    request = StopRequest()
    with contextlib.ExitStack() as stack:
        if checkpoints is not None:
            stack.enter_context(stop_on_sigterm(request))
        for epoch in range(first, epochs):
            batches = train_data(epoch)
            request.skipped, request.total = (skip if epoch == first else 0), int(batches.cardinality())
            if request.skipped:
                batches = batches.skip(request.skipped)
            try:
                fit = model.fit(
                    batches,
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    validation_data=val_data,
                    shuffle=False,
                    verbose=0,
                    callbacks=[epoch_log, request],
                )
            except Stopped as stop:
                checkpoints.save(model, history, epoch_log.seconds, epoch, stop.batches)
                raise CxrError(
                    f"{label}: stopped by SIGTERM at batch {stop.batches} of epoch {epoch + 1}; checkpoint "
                    f"written in {checkpoints.last_write_seconds:.2f} s to {checkpoints.location}; "
                    "run the same command again to resume"
                ) from None
            for key in HISTORY_KEYS:
                history[key] += [float(v) for v in fit.history[key]]
            if checkpoints is not None:
                checkpoints.save(model, history, epoch_log.seconds, epoch + 1)
                if request.requested and epoch + 1 < epochs:
                    raise CxrError(
                        f"{label}: stopped by SIGTERM after epoch {epoch + 1}; checkpoint written to "
                        f"{checkpoints.location}; run the same command again to resume"
                    )
    return history, epoch_log.seconds, time.perf_counter() - started


def fit_on_features(
    model: keras.Model,
    table,
    train_labels,
    val_labels,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    strategy: tf.distribute.Strategy,
    label: str,
    checkpoints: Checkpoints | None = None,
) -> tuple[dict[str, list[float]], list[float], float]:
    """Trains a full model's tail on cached tail inputs; the full model's own layers learn.

    Args:
        model: the full model, built under `strategy`.
        table: the tail inputs (core/features.py variant_inputs) of the training images, then of the
            validation images, in the order of `train_labels` and `val_labels`.
        train_labels: class indices of the training images.
        val_labels: class indices of the validation images.
        epochs: passes over the training images.
        batch_size: global batch size.
        learning_rate: Adam's learning rate.
        seed: the per-epoch order's seed (core/data.py epoch_batches: the pixel path's batches too).
        strategy: the device strategy.
        label: the per-epoch console line's label.
        checkpoints: where to checkpoint after every epoch and resume from.
    """
    from components.core.data import epoch_batches
    from components.core.features import FeatureLookup, host_tensor, tail_model, tail_start

    n_train = len(train_labels)
    with strategy.scope():
        rows = keras.Input((), dtype="int32", name="rows")
        probabilities = tail_model(model, tail_start(model))(FeatureLookup(host_tensor(table))(rows))
        trainer = keras.Model(rows, probabilities, name=f"{model.name}_on_features")
        one_replica = strategy.num_replicas_in_sync == 1
        compile_model(trainer, learning_rate, STEPS_PER_EXECUTION if one_replica else 1)
    val_positions = np.arange(n_train, n_train + len(val_labels), dtype=np.int32)
    val_data = tf.data.Dataset.from_tensor_slices((val_positions, np.asarray(val_labels, np.int32)))
    return fit_epochs(
        trainer,
        lambda epoch: epoch_batches(train_labels, batch_size=batch_size, seed=seed, epoch=epoch).prefetch(8),
        val_data.batch(VAL_BATCH_SIZE),
        epochs=epochs,
        label=label,
        checkpoints=checkpoints,
    )
