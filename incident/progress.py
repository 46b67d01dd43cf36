"""Progress on stderr while the postmortem's queries run.

On a terminal, the current step is redrawn in place with a spinner and its elapsed time (a
small thread ticks it, so a long query still shows signs of life); otherwise each step is one
plain line when it finishes, which reads well in a log. ``quiet`` turns it off.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

SPINNER = "|/-\\"
TICK_SECONDS = 0.2


class Progress:
    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.live = not quiet and _isatty(self.stream)
        self._label = ""
        self._started = 0.0
        self._stop = threading.Event()

    @contextmanager
    def step(self, label: str):
        """Shows ``label`` while the block runs; the block may set ``.note`` (e.g. row counts)."""
        self._label, self._started = label, time.monotonic()
        report = _Step()
        ticker = None
        if self.live:
            self._stop.clear()
            ticker = threading.Thread(target=self._tick, daemon=True)
            ticker.start()
        try:
            yield report
        finally:
            if ticker is not None:
                self._stop.set()
                ticker.join()
            self._finish(report.note)

    def _tick(self) -> None:
        n = 0
        while not self._stop.wait(TICK_SECONDS):
            n += 1
            elapsed = time.monotonic() - self._started
            self._write(f"\r{SPINNER[n % 4]} {self._label} ({elapsed:.1f}s)\033[K")

    def _finish(self, note: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self._started
        tail = f": {note}" if note else ""
        line = f"{self._label}{tail} ({elapsed:.1f}s)"
        self._write(f"\r{line}\033[K\n" if self.live else line + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class _Step:
    note = ""


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
