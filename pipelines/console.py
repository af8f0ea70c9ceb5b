"""The console of `cxr run-local`: per task its start, our own progress lines and its result.

kfp.local prints everything a task prints (TensorFlow's start-up banners, the executor input, kfp's
warnings about settings a local runner ignores) plus its own logs, hundreds of lines per run. While a
`TaskConsole` is open, stdout and stderr go through it: every line goes to the log file, and only
these reach the console: kfp's "task started / finished" lines, rewritten short, and the lines our
steps log, which carry LINE_TAG (components/core/progress.py adds it while LOG_TAG_ENV is set).
`verbose` echoes everything as it was.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from components.core.progress import LINE_TAG, LOG_TAG_ENV

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '?([\w.-]+)'?")
_FINISHED = re.compile(r"Task '?([\w.-]+)'? finished with status (\w+)")
_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")


class TaskConsole(io.TextIOBase):
    """A text stream that files every line and echoes the useful ones (see the module docstring)."""

    def __init__(self, console, log, verbose: bool = False):
        super().__init__()
        self.console, self.log, self.verbose = console, log, verbose
        self.last_error: str | None = None
        self.failed_task: str | None = None
        self._pending = ""
        self._started: dict[str, list[float]] = {}  # task name → start times of its running executions
        self._lock = threading.Lock()

    def writable(self) -> bool:
        """A TaskConsole is written to, never read."""
        return True

    def write(self, text: str) -> int:
        """Takes text from any thread; complete lines are filed and, when useful, echoed."""
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._line(line)
        return len(text)

    def flush(self) -> None:
        """Flushes the log file and the console."""
        with self._lock:
            self.log.flush()
            self.console.flush()

    def close_pending(self) -> None:
        """Handles a last line that has no newline."""
        with self._lock:
            if self._pending:
                self._line(self._pending)
                self._pending = ""

    def echo(self, line: str) -> None:
        """Prints one line on the console and files it."""
        self.log.write(line + "\n")
        self.console.write(line + "\n")
        self.console.flush()

    def _line(self, raw: str) -> None:
        line = _ANSI.sub("", raw).rstrip()
        text = line.strip()
        ours = text.startswith(LINE_TAG)
        if ours:
            text = text[len(LINE_TAG) :]
        self.log.write((text if ours else line) + "\n")
        error = _ERROR.match(text)
        if error:
            self.last_error = f"{error.group(1)}: {error.group(2)}"
        if self.verbose:
            self.console.write(line.replace(LINE_TAG, "") + "\n")
            return
        if ours:
            self.console.write(f"  {text}\n")
        elif started := _STARTED.search(text):
            self._started.setdefault(started.group(1), []).append(time.monotonic())
            self.console.write(f"{started.group(1)}: started\n")
        elif finished := _FINISHED.search(text):
            task, status = finished.groups()
            starts = self._started.get(task) or [time.monotonic()]
            seconds = time.monotonic() - starts.pop(0)
            if status == "SUCCESS":
                self.console.write(f"{task}: done in {seconds:.0f} s\n")
            else:
                self.failed_task = self.failed_task or task
                self.console.write(f"{task}: FAILED after {seconds:.0f} s\n")
        else:
            return
        self.console.flush()

    def failure(self) -> str:
        """One line for a failed run: the task that failed and its own last error message."""
        task = self.failed_task or "a task"
        reason = self.last_error or "see the log"
        reason = re.sub(r"^CxrError: ", "", reason)
        return f"{task} failed: {reason}"


@contextlib.contextmanager
def task_console(log_path: Path, verbose: bool = False) -> Iterator[TaskConsole]:
    """Routes this process's stdout and stderr through a TaskConsole that files everything in `log_path`.

    Our steps' log lines are tagged meanwhile (LOG_TAG_ENV, inherited by task subprocesses). kfp.local
    indents task output by swapping `builtins.print` per task; two tasks running at once can leave its
    indenting version in place, so the original is put back on the way out.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    previous_tag = os.environ.get(LOG_TAG_ENV)
    saved, saved_print = (sys.stdout, sys.stderr), builtins.print
    with open(log_path, "a", encoding="utf-8") as log:
        console = TaskConsole(saved[1], log, verbose)
        os.environ[LOG_TAG_ENV] = "1"
        sys.stdout = sys.stderr = console
        try:
            yield console
        finally:
            sys.stdout, sys.stderr = saved
            builtins.print = saved_print
            console.close_pending()
            if previous_tag is None:
                os.environ.pop(LOG_TAG_ENV, None)
            else:
                os.environ[LOG_TAG_ENV] = previous_tag
