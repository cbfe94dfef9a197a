"""What a legacy import or export tells the operator while it runs and when it ends.

Report lines (failed and skipped files, notes, ``--verify`` differences, the
closing summary) go to stdout: they are the command's result and can be
piped or saved.  Progress goes to stderr: on a terminal a single line redrawn
in place with ``\\r`` (count/total, rate); otherwise a plain line every
``every`` files or ``interval`` seconds, whichever comes first, so logs of
long runs stay short.  On a terminal the bar is cleared before a report line
is written, so the two never mix on screen.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

BAR_WIDTH = 30


class Report:
    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        tty: bool | None = None,
        every: int = 500,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = self.err.isatty() if tty is None else tty
        self.every = every
        self.interval = interval
        self.clock = clock
        self.label = ""
        self.total = 0
        self.done = 0
        self.started = clock()
        self._last_line_at = self.started
        self._last_line_done = 0
        self._last_draw = 0.0
        self._drawn = False

    # -- progress ------------------------------------------------------------------

    def start(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.started = self._last_line_at = self.clock()
        self._last_line_done = 0
        if self.tty and total:
            self._draw()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if self.tty:
            # Redrawing costs a write; ten times a second is smooth enough.
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._draw()
            return
        due = self.done - self._last_line_done >= self.every
        if due or now - self._last_line_at >= self.interval:
            self._progress_line(now)

    def _progress_line(self, now: float) -> None:
        self.err.write(f"{self.label}: {self.done}/{self.total} files ({self.rate(now):.0f}/s)\n")
        self.err.flush()
        self._last_line_at, self._last_line_done = now, self.done

    def rate(self, now: float | None = None) -> float:
        elapsed = (now if now is not None else self.clock()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def _draw(self) -> None:
        now = self.clock()
        self._last_draw = now
        filled = BAR_WIDTH * self.done // self.total if self.total else BAR_WIDTH
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.err.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total} {self.rate(now):.0f}/s\x1b[K"
        )
        self.err.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._drawn = False

    # -- lines ----------------------------------------------------------------------

    def line(self, text: str) -> None:
        if self.tty:
            self._clear()
        self.out.write(text + "\n")
        self.out.flush()
        if self.tty and self.total and self.done < self.total:
            self._draw()

    def finish(self) -> None:
        """End the progress display (the summary line follows).

        Without a terminal, the last count is always written, so a log shows
        how far the run got even when it was shorter than ``every`` files.
        """
        if self.tty:
            self._clear()
        elif self.done != self._last_line_done or self.done == 0:
            self._progress_line(self.clock())


@dataclass
class Counts:
    """Outcome of every file of a run; ``processed`` is what the rate counts."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    differ: int = 0  # --verify: files whose notebook differs from the database
    missing: int = 0  # --verify: files whose notebook is not in the database
    exported: int = 0
    users_created: int = 0
    notes: int = 0
    elapsed: float = 0.0

    @property
    def processed(self) -> int:
        return (
            self.imported
            + self.updated
            + self.unchanged
            + self.skipped
            + self.failed
            + self.differ
            + self.missing
            + self.exported
        )

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0
