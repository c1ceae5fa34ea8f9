"""One ``/metrics`` answer for every worker of ``serve --workers N``.

A scrape reaches whichever worker accepts the connection. The security metrics are read from the
database, so every worker already answers alike; the HTTP and SQL histograms are counted in each
worker's memory, so one worker's page would show only its share, and consecutive scrapes landing
on different workers would make the counters jump back and forth.

So each worker also offers its own exposition text on a Unix socket in a directory the serving
command creates for the run (mode 0700, ``CONTACTPOINT_METRICS_SIBLINGS_DIR``), and the worker
answering a scrape adds its siblings' per-worker families (`PER_WORKER`) to its own, sample by
sample: counts, sums and bucket counts add up, so the page shows the whole server's traffic
whichever worker answers. A sibling that does not answer within `SIBLING_TIMEOUT_S` is left out
of that scrape (and its socket removed once its process has gone); its counts come back with it,
as after any restart.

The socket speaks no protocol: a connection receives the text and is closed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SIBLINGS_ENV = "CONTACTPOINT_METRICS_SIBLINGS_DIR"
# Families counted per worker, summed across workers (Prometheus names, before suffixes).
PER_WORKER = ("http_server_", "db_client_")
SIBLING_TIMEOUT_S = 1.0
MAX_PAGE_BYTES = 16 * 1024 * 1024

log = logging.getLogger(__name__)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(generate_latest(REGISTRY))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Siblings:
    """This worker's socket in the shared directory, and the merge of its siblings' pages."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.sock"
        self._server: _Server | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = _Server(str(self.path), _Handler)
        thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-sibling", daemon=True
        )
        thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _pages(self) -> Iterator[str]:
        for sock in sorted(self.directory.glob("*.sock")):
            if sock == self.path:
                continue
            try:
                yield _read(sock)
            except (FileNotFoundError, ConnectionRefusedError):
                # Its worker has gone (a socket file left by a killed process): tidy it away.
                with contextlib.suppress(OSError):
                    if not _alive(sock):
                        sock.unlink()
            except OSError as exc:  # a stuck sibling: this scrape goes without its share
                log.warning("metrics: a sibling worker did not answer (%s)", type(exc).__name__)

    def page(self) -> bytes:
        """This worker's exposition with every sibling's per-worker families added in."""
        own = generate_latest(REGISTRY)
        siblings = list(self._pages())
        if not siblings:
            return own
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(own.decode(), siblings))
        return generate_latest(registry)


def _read(sock: Path) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(SIBLING_TIMEOUT_S)
        conn.connect(str(sock))
        chunks, size = [], 0
        while size < MAX_PAGE_BYTES:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks).decode()


def _alive(sock: Path) -> bool:
    """Whether the process that named the socket is still running."""
    try:
        os.kill(int(sock.stem), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class _Merged:
    """A collector yielding one page's families with the siblings' per-worker samples added."""

    def __init__(self, own: str, siblings: Iterable[str]) -> None:
        self.own = own
        self.siblings = list(siblings)

    def collect(self) -> Iterator[Metric]:
        families = list(text_string_to_metric_families(self.own))
        index = {f.name: f for f in families if f.name.startswith(PER_WORKER)}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for family in index.values():
            totals[family.name] = {
                (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
            }
        for text in self.siblings:
            for family in text_string_to_metric_families(text):
                if not family.name.startswith(PER_WORKER):
                    continue
                if family.name not in index:  # only a sibling has served this kind yet
                    index[family.name] = Metric(family.name, family.documentation, family.type)
                    index[family.name].unit = family.unit
                    families.append(index[family.name])
                    totals[family.name] = {}
                merged = totals[family.name]
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    merged[key] = merged.get(key, 0.0) + s.value
        for family in families:
            if family.name in totals:
                family.samples = []
                for (name, labels), value in totals[family.name].items():  # first-seen order
                    family.add_sample(name, dict(labels), value)
            yield family


def from_environment() -> Siblings | None:
    """This worker's siblings, when the serving command runs several workers."""
    directory = os.environ.get(SIBLINGS_ENV)
    if not directory:
        return None
    siblings = Siblings(Path(directory))
    siblings.start()
    return siblings
