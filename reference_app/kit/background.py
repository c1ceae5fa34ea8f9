"""Background work an app instance repeats at an interval (sealing the audit log, detection)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("contactpoint")


class Periodic:
    """Run ``task`` every ``interval`` seconds on a daemon thread until stopped.

    A failing pass is logged and retried at the next interval (another worker holding the lock,
    or the database blinking, is not fatal). ``final`` runs the task once more at stop.
    """

    def __init__(
        self, name: str, interval: float, task: Callable[[], object], *, final: bool = False
    ) -> None:
        self.name = name
        self.interval = interval
        self.task = task
        self.final = final
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.final:
            self._once()

    def _once(self) -> None:
        try:
            self.task()
        except Exception:
            log.warning("%s pass deferred", self.name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._once()
