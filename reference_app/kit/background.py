"""Background work an app instance repeats at an interval (sealing the audit log, detection)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from reference_app.kit import faults

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

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, and run the final pass, waiting at most ``timeout`` seconds in all (a pass
        stuck on a stalled store is left to its daemon thread, so shutdown still ends)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(timeout=timeout)
        if self.final:
            last = threading.Thread(target=self._once, name=f"{self.name}-final", daemon=True)
            last.start()
            last.join(timeout=max(0.0, deadline - time.monotonic()))
            if last.is_alive():
                log.warning("%s: the final pass did not finish within %g s", self.name, timeout)

    def _once(self) -> None:
        try:
            self.task()
        except Exception as exc:
            # A store that is down fails every pass: one line each, a traceback once a minute.
            dependency = faults.classify(exc)
            trace = faults.should_trace(self.name, exc)
            what = f"{dependency.value} unavailable" if dependency else "failed"
            log.warning("%s pass deferred (%s)", self.name, what, exc_info=exc if trace else None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._once()
