"""What ``harness run`` prints while it works: one progress line per long phase.

A phase (the parity suite, the benchmarks) counts its items, names the one being worked on
and estimates the time left from the elapsed time per item done::

    parity 37/233 checks, iforest-300 [onnx-native-cpu] label_exact, ~2 min left

On a terminal the line is redrawn in place, every second and on every item. Anywhere else
(CI, a pipe, a file, ``CI`` set) it is a plain line, printed when the first item starts,
when the first estimate is known, when a new case starts (at most one every 3 s) and at
least every 10 s, also while workers start or an item is slow: a 3-minute phase prints
about twenty lines, never a carriage return. ``harness.plugin.PytestProgress`` feeds a phase
from a pytest session's hooks, under pytest-xdist too.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = [
    "Progress",
    "format_left",
    "format_seconds",
    "item_label",
    "live_terminal",
]


def format_seconds(seconds: float) -> str:
    """A duration for people: '8 s', '3 min 25 s', '1 h 05 min'."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60:02d} min"


def format_left(seconds: float) -> str:
    """An estimate of the time left, no more precise than it can be: '~45 s left',
    '~2 min left', '~1 h 10 min left'."""
    if seconds < 60:
        return f"~{max(5, 5 * math.ceil(seconds / 5))} s left"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min left"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"~{hours} h {rest:02d} min left"


def live_terminal(stream: TextIO) -> bool:
    """Whether a progress line may be redrawn in place: ``stream`` is a terminal, ``CI`` is
    not set and the terminal is not 'dumb'."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
    return tty and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def item_label(nodeid: str) -> tuple[str, str]:
    """(case, label) of a suite's test id.

    'bench/test_inference.py::test_score_samples[iforest-300[onnx-native-cpu]-b100-t1]'
    -> ('iforest-300', 'iforest-300 [onnx-native-cpu] b100 t1'); a test whose id holds no
    case is its own case and label ('test_parity_on_gpu_providers[cuda]').
    """
    name = nodeid.rsplit("::", 1)[-1]
    param = name.partition("[")[2].removesuffix("]")
    case, bracket, rest = param.partition("[")
    if not bracket:
        return name, name
    engine, _, tail = rest.partition("]")
    tail = tail.lstrip("-").replace("-", " ")
    return case, f"{case} [{engine}]" + (f" {tail}" if tail else "")


class Progress:
    """The progress of one phase, said on ``stream``; ``note`` prints a line of its own.

    ``open`` starts a ticker thread that says the status at least every ``every`` seconds
    (on a terminal: redraws it every second), also while workers start or an item is slow;
    ``close`` stops it. Lines go to a duplicate of ``stream``'s file descriptor where it has
    one, so they reach the console while pytest captures the descriptor during a test.
    ``clock`` is injectable for tests; ``live`` defaults to ``live_terminal(stream)``;
    without ``statuses`` only the notes and the closing line are said (pytest -v shows each
    item itself).
    """

    def __init__(
        self,
        phase: str,
        unit: str = "",
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float = 10.0,
        min_gap: float = 3.0,
        statuses: bool = True,
    ) -> None:
        self.phase = phase
        self.unit = unit
        self.stream = stream if stream is not None else sys.stdout
        self.live = live_terminal(self.stream) if live is None else live
        self.clock = clock
        self.every = every
        self.min_gap = min_gap
        self.statuses = statuses
        #: Where ``note`` writes instead of ``stream`` (pytest's terminal while it has one).
        self.writer: Callable[[str], None] | None = None
        self.total: int | None = None
        self.done = 0
        self.label = ""
        self.waiting = ""
        self.opened: float | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self._cases: set[str] = set()
        self._last_line: float | None = None
        self._drawn = False  # a live line is on screen, the cursor at its end
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._copy: TextIO | None = None

    # -- what the phase reports ----------------------------------------------------------

    def open(self, waiting: str = "starting") -> None:
        """The phase starts; until ``begin``, the status says ``waiting`` and the time so far."""
        with self._lock:
            self.waiting = waiting
            self.opened = self.clock()
            self._copy = _duplicate(self.stream)
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="harness-progress", daemon=True)
            self._ticker.start()

    def begin(self, total: int) -> None:
        """The number of items is known; the clock of the estimate starts now."""
        with self._lock:
            if self.total is None:
                self.total = total
                self.started = self.clock()

    def working_on(self, case: str, label: str) -> None:
        """An item of ``case`` started; ``label`` names it."""
        with self._lock:
            self.label = label
            new_case = case not in self._cases
            self._cases.add(case)
            self._update(new_case=new_case)

    def advance(self) -> None:
        """An item finished (passed, failed or skipped)."""
        with self._lock:
            self.done += 1
            self._update(first_estimate=self.done == 1)

    def finish(self, summary: str) -> None:
        """The phase is over: one closing line, ``'  <phase>: <summary>'``, once."""
        with self._lock:
            if self.finished is None:
                self.finished = self.clock()
                self.note(f"  {self.phase}: {summary}")

    def close(self) -> None:
        """Stop the ticker; a live line left on screen (an interrupted phase) stays as it is."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._lock:
            self._ticker = None
            if self._drawn:
                self._write("\n")
                self._drawn = False
            if self._copy is not None:
                self._copy.close()
                self._copy = None

    @property
    def elapsed(self) -> float:
        """Seconds since ``begin`` (0 before)."""
        if self.started is None:
            return 0.0
        return (self.finished if self.finished is not None else self.clock()) - self.started

    def estimate(self) -> float | None:
        """Seconds left: elapsed time per item done x items left (None before the first)."""
        if self.total is None or self.started is None or not self.done:
            return None
        return (self.clock() - self.started) / self.done * max(0, self.total - self.done)

    def status(self) -> str:
        """'parity 37/233 checks, iforest-300 [onnx-native-cpu] label_exact, ~2 min left';
        before the total is known: 'parity: starting, 40 s so far'."""
        if self.total is None:
            so_far = 0.0 if self.opened is None else self.clock() - self.opened
            return f"{self.phase}: {self.waiting or 'starting'}, {format_seconds(so_far)} so far"
        parts = [f"{self.phase} {self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")]
        if self.label:
            parts.append(self.label)
        left = self.estimate()
        if left is not None and self.done < self.total:
            parts.append(format_left(left))
        return ", ".join(parts)

    # -- the console ---------------------------------------------------------------------

    def note(self, line: str) -> None:
        """Print ``line`` on a line of its own (a live progress line is cleared first)."""
        with self._lock:
            self._clear()
            if self.writer is not None:
                self.writer(line)
            else:
                self._write(f"{line}\n")

    def _tick(self) -> None:
        if not self.statuses:
            return
        while not self._stop.wait(1.0 if self.live else min(1.0, self.every)):
            with self._lock:
                self._update(tick=True)

    def _update(
        self, *, new_case: bool = False, first_estimate: bool = False, tick: bool = False
    ) -> None:
        if self.finished is not None or not self.statuses:
            return
        now = self.clock()
        last = self._last_line if self._last_line is not None else self.opened
        since = None if last is None else now - last
        if self.live:
            self._draw(self.status())
            self._last_line = now
            return
        if tick:
            due = since is not None and since >= self.every
        else:
            due = (
                first_estimate
                or self._last_line is None
                or since is None
                or since >= self.every
                or (new_case and since >= self.min_gap)
            )
        if due:
            self._write(f"  {self.status()}\n")
            self._last_line = now

    def _draw(self, line: str) -> None:
        width = shutil.get_terminal_size().columns - 1
        if len(line) > width > 3:
            line = line[: width - 3] + "..."
        self._write(f"\r{line}\x1b[K")
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r\x1b[K")
            self._drawn = False

    def _write(self, text: str) -> None:
        out = self._copy if self._copy is not None else self.stream
        out.write(text)
        out.flush()


def _duplicate(stream: TextIO) -> TextIO | None:
    """A second handle on ``stream``'s file descriptor (None where it has none): while a
    test runs, pytest points the descriptor itself at a capture file."""
    try:
        fd = stream.fileno()
        stream.flush()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return os.fdopen(os.dup(fd), "w", encoding=encoding, errors="replace")
