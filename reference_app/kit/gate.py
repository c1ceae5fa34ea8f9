"""A bounded lane for password hashing, so a login storm slows logins and nothing else.

Argon2id is meant to be costly (tens of milliseconds of a core and 64 MiB a verification). Every
request that verifies or sets a password holds a slot of the worker's admission limit (one
database connection) and a thread while it hashes. Admitted like other requests, a burst of
logins took every slot and every core, and views and searches queued behind them. Here such
requests first wait in the event loop (no thread, no connection) for one of
``login_hash_concurrency`` lanes; at most ``login_queue`` wait, each at most
``login_queue_wait_seconds``, and the rest are told at once to come back (503 ``login_busy``
with ``Retry-After``): the client backs off, and no slot the other routes need is taken.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


class GateBusy(Exception):
    """The lane is full and its queue too, or the wait ran out."""


@dataclass
class GateFigures:
    """What the gate has seen since start: the most lanes in use at once, and refusals."""

    in_use: int = 0
    peak_in_use: int = 0
    waiting: int = 0
    peak_waiting: int = 0
    admitted: int = 0
    refused: int = 0


class CredentialGate:
    """At most ``lanes`` password operations at once per worker, a bounded queue before them."""

    def __init__(self, lanes: int, queue: int, wait_seconds: float) -> None:
        self.lanes = lanes
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.figures = GateFigures()
        # How long a password operation holds its lane, smoothed (seconds; a guess until the
        # first one ends): what a refused client is told to wait is the queue's length in it.
        self.hold_seconds = 0.25
        self._lock = threading.Lock()
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _lane(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore = asyncio.Semaphore(self.lanes)
            self._loop = loop
        return self._semaphore

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one lane for the body, or raise GateBusy."""
        lane = self._lane()
        figures = self.figures
        if lane.locked():
            with self._lock:
                if figures.waiting >= self.queue:
                    figures.refused += 1
                    raise GateBusy
                figures.waiting += 1
                figures.peak_waiting = max(figures.peak_waiting, figures.waiting)
            try:
                await asyncio.wait_for(lane.acquire(), self.wait_seconds)
            except TimeoutError:
                with self._lock:
                    figures.refused += 1
                raise GateBusy from None
            finally:
                with self._lock:
                    figures.waiting -= 1
        else:
            await lane.acquire()
        with self._lock:
            figures.in_use += 1
            figures.admitted += 1
            figures.peak_in_use = max(figures.peak_in_use, figures.in_use)
        began = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - began
            with self._lock:
                figures.in_use -= 1
                self.hold_seconds = 0.8 * self.hold_seconds + 0.2 * held
            lane.release()

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the work ahead of it (every operation in a
        lane or queued, at the smoothed hold time) shared by the lanes; 1 to 30."""
        with self._lock:
            ahead = self.figures.in_use + self.figures.waiting
            hold = self.hold_seconds
        return max(1, min(30, math.ceil(ahead * hold / max(1, self.lanes))))
