"""Progress of long work, on a terminal and in a CI log alike.

On a terminal it is a tqdm bar. Anywhere else (a CI log, a file) a bar's carriage returns make
a mess, so it is a plain line every few seconds and one at the end: what, how many of how many,
the rate, and the time left.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

from tqdm import tqdm

# A plain line at most this often (seconds), when not on a terminal.
EVERY = 5.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Count work done towards a total; show it as a bar or as plain lines."""

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        every: float = EVERY,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self.done = 0
        self.began = self._said = time.monotonic()
        self._bar: Any = None
        if enabled and self.tty:
            self._bar = tqdm(
                total=total, desc=what, unit=f" {unit}", unit_scale=True, file=self.stream
            )

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._said >= self.every:
            self._said = now
            self._line()

    def note(self, text: str) -> None:
        """A one-off line about the work (a phase begun, a step done)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(f"{self.what}: {text}", file=self.stream)
        else:
            print(f"{self.what}: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._line(final=True)

    def _line(self, *, final: bool = False) -> None:
        elapsed = time.monotonic() - self.began
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {self.done:,}"
        if self.total:
            text += f" of {self.total:,} {self.unit} ({self.done / self.total:.0%})"
        else:
            text += f" {self.unit}"
        text += f", {rate:,.0f}/s, {_duration(elapsed)}"
        if not self.total and not self.done:
            # Work with nothing to count yet (a step that only takes time): the time so far.
            text = f"{self.what}: {_duration(elapsed)}"
        if final:
            text += " in all"
        elif self.total and rate > 0:
            text += f", about {_duration((self.total - self.done) / rate)} left"
        print(text, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
