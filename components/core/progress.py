"""Console progress for long work (images ingested, epochs, predictions), printed to stderr.

While LOG_TAG_ENV is set (by `cxr run-local`, for its tasks too), every line starts with LINE_TAG so
the run's console can tell our lines from the rest of a task's output (pipelines/console.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time

LOG_TAG_ENV = "CXR_LOG_TAG"
LINE_TAG = "[cxr] "


def _tag() -> str:
    return LINE_TAG if os.environ.get(LOG_TAG_ENV) else ""


class Progress:
    """Prints `label: done/total (pct%, rate/s, time left) extra` every `every_seconds` and at the end."""

    def __init__(self, label: str, total: int, every_seconds: float = 2.0, stream=None):
        self.label = label
        self.total = total
        self.every_seconds = every_seconds
        self.stream = stream or sys.stderr
        self.done = 0
        self._started = time.monotonic()
        self._last_print = 0.0
        self._lock = threading.Lock()

    def advance(self, n: int = 1, extra: str = "") -> None:
        """Counts n more items done (thread-safe) and prints when it is time."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.done >= self.total or now - self._last_print >= self.every_seconds:
                self._last_print = now
                self._print(extra)

    def _print(self, extra: str) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        left = f", {(self.total - self.done) / rate:.0f} s left" if 0 < self.done < self.total else ""
        tail = f" {extra}" if extra else ""
        print(
            f"{_tag()}{self.label}: {self.done}/{self.total} ({pct:.0f}%, {rate:.0f}/s{left}){tail}",
            file=self.stream,
            flush=True,
        )


def log(message: str) -> None:
    """One line of console output for a step (stderr, so stdout stays machine-readable)."""
    print(f"{_tag()}{message}", file=sys.stderr, flush=True)
