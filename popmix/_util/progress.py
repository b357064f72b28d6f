"""Progress for long work: a bar with the time left (:class:`ProgressBar`).

Imports nothing of popmix's and no Ray: the bar serves ``popmix bracket`` as well as the
search's callbacks (the search's own progress printer is a Tune callback,
:class:`popmix.tune.callbacks.ProgressPrinter`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class ProgressBar:
    """A one-line bar with an estimate of the time left, for a known number of similar units of
    work (training steps, gradients, pairs).

    The estimate assumes the units left cost what the units so far cost on average. On a
    terminal the line is redrawn in place at most every ``refresh_s``; elsewhere (a log file, a
    pipe) a line is written at most every ``log_every_s``, so logs stay short. Closing writes a
    last line with the total time. Call the bar (or :meth:`update`) after each unit; use it as
    a context manager so that it is closed when the work stops early too.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with ProgressBar("pairs", 3, "pairs", stream=out) as bar:
        ...     for _ in range(3):
        ...         bar()
        >>> out.getvalue().startswith("  pairs: 3 pairs in")
        True

    Args:
        label: what is being done (``training to step 150``).
        total: units of work in all.
        unit: the units' name, printed after the counts.
        stream: where to write (default: standard error, beside the results on standard
            output).
        refresh_s: least seconds between two redraws on a terminal.
        log_every_s: least seconds between two lines elsewhere.
        clock: seconds since some fixed time (for tests).
    """

    width = 24

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "",
        stream: TextIO | None = None,
        refresh_s: float = 0.2,
        log_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(0, int(total))
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.refresh_s = refresh_s
        self.log_every_s = log_every_s
        self.clock = clock
        self.done = 0
        self.start = clock()
        self._last_shown = self.start
        self._closed = False
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):  # a closed or odd stream: plain lines
            self._tty = False
        if self._tty:
            self._write(self.line())

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float | None:
        """Seconds left at the average pace so far (None before the first unit)."""
        if self.done == 0:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        left = self.left()
        eta = "time left unknown yet" if left is None else f"about {format_duration(left)} left"
        unit = f" {self.unit}" if self.unit else ""
        return (
            f"  {self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{self.done}/{self.total}{unit}  {format_duration(self.elapsed)} elapsed, {eta}"
        )

    def _write(self, text: str) -> None:
        if self._tty:
            # \r and clear-to-end: the line shrinks as well as grows
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; redraw when it is time to."""
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        now = self.clock()
        every = self.refresh_s if self._tty else self.log_every_s
        if self.done < self.total and now - self._last_shown >= every:
            self._last_shown = now
            self._write(self.line())

    def __call__(self) -> None:
        self.update()

    def close(self, stopped: bool = False) -> None:
        """Write the last line: the units done and the time they took."""
        if self._closed:
            return
        self._closed = True
        unit = f" {self.unit}" if self.unit else ""
        partial = stopped or self.done < self.total
        counts = f"{self.done}/{self.total}" if partial else f"{self.done}"
        tail = ", stopped" if stopped else ""
        text = f"  {self.label}: {counts}{unit} in {format_duration(self.elapsed)}{tail}"
        self._write(text)
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(stopped=exc_type is not None)


class StepsProgress:
    """The share of a whole search's optimizer steps done, and the time left at the pace so
    far: one aggregate beside the per-trial lines.

    ``done`` may start above 0 (a resumed search: the steps its ledgers counted); the pace is
    that of the steps done since this object was made. Steps past ``total`` (an exploit that
    continues from an earlier step trains some twice) are counted, the share capped at 100%.

    Example:
        >>> t = iter([0.0, 30.0])  # a resumed search: 100 steps before, 100 in its 30 s
        >>> p = StepsProgress(400, done=100, clock=lambda: next(t))
        >>> p.add(100)
        >>> p.line()
        '50% of all 400 optimizer steps done, about 1:00 left'
    """

    def __init__(
        self, total: int, done: int = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = max(1, int(total))
        self.done = self.start_done = int(done)
        self.clock = clock
        self.start = clock()
        self.last_line = self.start

    def add(self, steps: int) -> None:
        self.done += max(0, int(steps))

    def left(self) -> float | None:
        """Seconds left (None before a step was done here)."""
        here = self.done - self.start_done
        if here <= 0:
            return None
        return (self.clock() - self.start) / here * max(0, self.total - self.done)

    def due(self, every_s: float) -> bool:
        """Whether ``every_s`` seconds have passed since the last time this said so."""
        now = self.clock()
        if now - self.last_line < every_s:
            return False
        self.last_line = now
        return True

    def line(self) -> str:
        share = min(100, int(100 * self.done / self.total))
        left = self.left()
        eta = "time left unknown yet" if left is None else f"about {format_duration(left)} left"
        return f"{share}% of all {self.total:,} optimizer steps done, {eta}"


__all__ = ["ProgressBar", "StepsProgress", "format_duration"]
