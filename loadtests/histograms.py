"""Lossless latency histograms: recorded per load-generator process, merged into one run summary.

Every request is recorded twice, in microseconds, in HdrHistogram (3 significant digits, 1 µs to
one hour):

- **service time**: from the moment the request was actually sent to its answer (what Locust's
  own statistics show);
- **corrected latency**: from the moment it *should* have been sent, by the arrival schedule, to
  its answer. A slow server that delays the generator cannot hide its own slowness from this one
  (coordinated omission).

A `Recorder` lives in each generator process and hands out deltas (`drain()`): plain dicts of
encoded histograms and counters, small enough for Locust's worker-to-master messages. An
`Aggregate` merges any number of deltas, in any order, into the totals and the per-interval series,
and renders the run summary (see `summary()`). Merging encoded HDR histograms adds counts bucket
by bucket, so nothing is lost or averaged on the way.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    from observability.load import LoadMetrics

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
ALL = "*"
SUMMARY_SCHEMA = "contactpoint-load/1"
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# The slowest requests kept per endpoint with their trace ids, to find in the registry's traces.
SLOWEST_KEPT = 5


def new_histogram() -> HdrHistogram:
    """An empty histogram with the project's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000)))


@dataclass
class _Cell:
    """Latency of one (endpoint, persona) or one interval: two histograms and two counts."""

    corrected: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram = field(default_factory=new_histogram)
    count: int = 0
    errors: int = 0
    # Sums for the means: the histogram's own mean walks every bucket (slow in Python).
    corrected_sum_us: int = 0
    service_sum_us: int = 0

    def record(self, corrected_s: float, service_s: float, ok: bool) -> None:
        corrected, service = _us(corrected_s), _us(service_s)
        self.corrected.record_value(corrected)
        self.service.record_value(service)
        self.corrected_sum_us += corrected
        self.service_sum_us += service
        self.count += 1
        self.errors += 0 if ok else 1

    def add(self, other: _Cell) -> None:
        self.corrected.add(other.corrected)
        self.service.add(other.service)
        self.corrected_sum_us += other.corrected_sum_us
        self.service_sum_us += other.service_sum_us
        self.count += other.count
        self.errors += other.errors

    def encode(self) -> dict[str, Any]:
        return {
            "corrected": self.corrected.encode().decode("ascii"),
            "service": self.service.encode().decode("ascii"),
            "count": self.count,
            "errors": self.errors,
            "sums": [self.corrected_sum_us, self.service_sum_us],
        }

    def merge(self, data: dict[str, Any]) -> None:
        self.corrected.add(HdrHistogram.decode(data["corrected"].encode("ascii")))
        self.service.add(HdrHistogram.decode(data["service"].encode("ascii")))
        self.count += int(data["count"])
        self.errors += int(data["errors"])
        self.corrected_sum_us += int(data["sums"][0])
        self.service_sum_us += int(data["sums"][1])


@dataclass
class _Interval:
    """What happened in one reporting interval: the schedule, its outcome and its latency."""

    planned: int = 0
    achieved: int = 0
    late: int = 0
    dropped: int = 0
    users: int = 0
    # Most sessions carrying out an enquiry at once, arrivals that waited for a free session, and
    # those the harness held up (see `loadtests/engine.py`).
    in_use: int = 0
    waited: int = 0
    starved: int = 0
    latency: _Cell = field(default_factory=_Cell)

    def encode(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "achieved": self.achieved,
            "late": self.late,
            "dropped": self.dropped,
            "users": self.users,
            "in_use": self.in_use,
            "waited": self.waited,
            "starved": self.starved,
            "latency": self.latency.encode(),
        }

    def merge(self, data: dict[str, Any]) -> None:
        self.planned += int(data["planned"])
        self.achieved += int(data["achieved"])
        self.late += int(data["late"])
        self.dropped += int(data["dropped"])
        self.waited += int(data.get("waited", 0))
        self.starved += int(data.get("starved", 0))
        self.latency.merge(data["latency"])


class Recorder:
    """Counts and latencies of one generator process, handed out as deltas.

    Times are epoch seconds (`time.time()`), so processes on different machines with synchronised
    clocks fall into the same intervals. `start` is the run's common start.
    """

    def __init__(
        self, start: float, interval_s: float = 5.0, telemetry: LoadMetrics | None = None
    ) -> None:
        self.start = start
        self.interval_s = interval_s
        self.telemetry = telemetry  # the same events as OpenTelemetry metrics (OTEL_*)
        self._reset()

    def _reset(self) -> None:
        self._cells: dict[tuple[str, str], _Cell] = defaultdict(_Cell)
        self._intervals: dict[int, _Interval] = defaultdict(_Interval)
        self._lag = new_histogram()
        self._wait = new_histogram()
        self._cpu: list[float] = []
        self._counters: dict[str, int] = defaultdict(int)
        self._cpu_seconds = 0.0
        self._slowest = _Slowest()

    def _slot(self, at: float) -> _Interval:
        return self._intervals[max(0, math.floor((at - self.start) / self.interval_s))]

    def planned(self, intended: float, endpoint: str = "") -> None:
        """One request scheduled to start at `intended`."""
        self._slot(intended).planned += 1
        self._counters["planned"] += 1
        if self.telemetry is not None:
            self.telemetry.planned.add(1, {"endpoint": endpoint})

    def request(
        self,
        endpoint: str,
        persona: str,
        *,
        intended: float,
        started: float,
        ended: float,
        ok: bool,
        late: bool = False,
        traceparent: str | None = None,
    ) -> None:
        """One answered (or failed) request, filed under the interval it was meant to start in;
        with the ``traceparent`` it carried, it may be kept among the slowest."""
        corrected, service = ended - intended, ended - started
        self._cells[(endpoint, persona)].record(corrected, service, ok)
        heap = self._slowest.kept[endpoint]
        if len(heap) < SLOWEST_KEPT or service * 1000 > heap[0][0]:
            trace_id, sampled = trace_of(traceparent)
            row = {
                "service_ms": round(service * 1000, 3),
                "corrected_ms": round(corrected * 1000, 3),
                "at_s": round(intended - self.start, 3),
                "persona": persona,
                "ok": ok,
                "trace_id": trace_id,
                "trace_sampled": sampled,
            }
            self._slowest.offer(endpoint, service * 1000, row)
        slot = self._slot(intended)
        slot.latency.record(corrected, service, ok)
        slot.achieved += 1 if ok else 0
        slot.late += 1 if late else 0
        self._counters["started"] += 1
        self._counters["completed" if ok else "failed"] += 1
        self._counters["late"] += 1 if late else 0
        if self.telemetry is not None:
            self.telemetry.request(endpoint, corrected=corrected, service=service, ok=ok, late=late)

    def dropped(self, intended: float, requests: int = 1) -> None:
        """Scheduled requests never sent: no session was free before they grew too old."""
        self._slot(intended).dropped += requests
        self._counters["dropped"] += requests
        if self.telemetry is not None:
            self.telemetry.dropped.add(requests)

    def users(self, at: float, count: int, in_use: int = 0) -> None:
        """The sessions this process holds (the latest sample of an interval wins) and the most
        of them carrying out an enquiry at once since the last sample."""
        slot = self._slot(at)
        slot.users = count
        slot.in_use = max(slot.in_use, in_use)

    def waited(self, arrival: float, seconds: float, *, starved: bool) -> None:
        """An arrival that found no free session of its persona and waited `seconds` for one
        (or was dropped after that long); `starved` when the harness, not the server, held it."""
        slot = self._slot(arrival)
        slot.waited += 1
        self._counters["waited"] += 1
        self._wait.record_value(_us(max(seconds, 1e-6)))
        if starved:
            slot.starved += 1
            self._counters["starved"] += 1

    def lag(self, seconds: float) -> None:
        """How late the scheduler woke for an arrival: the generator's own health."""
        self._lag.record_value(_us(max(seconds, 1e-6)))

    def cpu(self, percent: float, busy_seconds: float) -> None:
        """A CPU sample of this process (percent of one core) and the CPU seconds since the last."""
        self._cpu.append(percent)
        self._cpu_seconds += busy_seconds

    def count(self, key: str, n: int = 1) -> None:
        """Any other counter (detection outcomes, logins)."""
        self._counters[key] += n

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, encoded, and start afresh."""
        data = {
            "cells": [[e, p, c.encode()] for (e, p), c in self._cells.items()],
            "intervals": [[i, s.encode()] for i, s in self._intervals.items()],
            "lag": self._lag.encode().decode("ascii"),
            "wait": self._wait.encode().decode("ascii"),
            "cpu": self._cpu,
            "cpu_seconds": self._cpu_seconds,
            "counters": dict(self._counters),
            "slowest": self._slowest.encode(),
        }
        self._reset()
        return data


class Aggregate:
    """The merged run: every process's deltas, in any order."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.cells: dict[tuple[str, str], _Cell] = defaultdict(_Cell)
        self.intervals: dict[int, _Interval] = defaultdict(_Interval)
        self.lag = new_histogram()
        self.wait = new_histogram()
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.cpu_seconds = 0.0
        self.counters: dict[str, int] = defaultdict(int)
        self.users: dict[int, dict[str, int]] = defaultdict(dict)
        self.in_use: dict[int, dict[str, int]] = defaultdict(dict)
        self.slowest = _Slowest()

    def merge(self, data: dict[str, Any], source: str = "local") -> None:
        """Add one drained delta from process `source`."""
        for endpoint, persona, cell in data["cells"]:
            self.cells[(endpoint, persona)].merge(cell)
        for index, interval in data["intervals"]:
            self._merge_interval(int(index), interval, source)
        self.lag.add(HdrHistogram.decode(data["lag"].encode("ascii")))
        if data.get("wait"):
            self.wait.add(HdrHistogram.decode(data["wait"].encode("ascii")))
        self.cpu[source].extend(float(x) for x in data["cpu"])
        self.cpu_seconds += float(data["cpu_seconds"])
        for key, n in data["counters"].items():
            self.counters[key] += int(n)
        self.slowest.merge(data.get("slowest", {}))

    def _merge_interval(self, index: int, data: dict[str, Any], source: str) -> None:
        slot = self.intervals[index]
        slot.merge({**data, "users": 0})
        # Users are a level, not a flow: each process's latest sample, summed over processes.
        if int(data["users"]):
            self.users[index][source] = int(data["users"])
        slot.users = sum(self.users[index].values())
        # Sessions in use: each process's most in the interval, summed (at most the true peak's
        # bound when the processes peak at different moments).
        busy = int(data.get("in_use", 0))
        if busy:
            self.in_use[index][source] = max(busy, self.in_use[index].get(source, 0))
        slot.in_use = sum(self.in_use[index].values())

    def latency_rows(self) -> list[dict[str, Any]]:
        """Rows per (endpoint, persona), per endpoint, per persona, and for the whole run."""
        groups: dict[tuple[str, str], _Cell] = defaultdict(_Cell)
        for (endpoint, persona), cell in self.cells.items():
            for key in ((endpoint, persona), (endpoint, ALL), (ALL, persona), (ALL, ALL)):
                groups[key].add(cell)
        return [
            {
                "endpoint": endpoint,
                "persona": persona,
                "count": cell.count,
                "errors": cell.errors,
                "error_rate": cell.errors / cell.count if cell.count else 0.0,
                "corrected_ms": _stats(cell.corrected, mean_us=_mean(cell.corrected_sum_us, cell)),
                "service_ms": _stats(cell.service, mean_us=_mean(cell.service_sum_us, cell)),
            }
            for (endpoint, persona), cell in sorted(groups.items())
        ]

    def series(self) -> list[dict[str, Any]]:
        """One row per interval from the first to the last that saw anything."""
        if not self.intervals:
            return []
        rows = []
        for index in range(0, max(self.intervals) + 1):
            slot = self.intervals.get(index) or _Interval()
            rows.append(
                {
                    "t": index * self.interval_s,
                    "planned": slot.planned,
                    "achieved": slot.achieved,
                    "errors": slot.latency.errors,
                    "late": slot.late,
                    "dropped": slot.dropped,
                    "users": slot.users,
                    "in_use": slot.in_use,
                    "waited": slot.waited,
                    "starved": slot.starved,
                    "corrected_ms": _stats(slot.latency.corrected, ("p50", "p95", "p99")),
                    "service_ms": _stats(slot.latency.service, ("p50", "p95", "p99")),
                }
            )
        return rows

    def rate(self, duration_s: float) -> dict[str, Any]:
        """Planned against achieved requests, over the run's planned duration."""
        c = self.counters
        planned = c.get("planned", 0)
        completed = c.get("completed", 0)
        seconds = max(duration_s, 1e-9)
        return {
            "planned": planned,
            "started": c.get("started", 0),
            "completed": completed,
            "failed": c.get("failed", 0),
            "late": c.get("late", 0),
            "dropped": c.get("dropped", 0),
            "planned_per_s": planned / seconds,
            "achieved_per_s": completed / seconds,
            "achieved_ratio": completed / planned if planned else 0.0,
        }

    def waits(self) -> dict[str, Any]:
        """Arrivals that waited for a free session, and how long (ms)."""
        c = self.counters
        return {
            "arrivals": c.get("arrivals", 0),
            "waited": c.get("waited", 0),
            "starved": c.get("starved", 0),
            "wait_ms": _stats(self.wait, ("p50", "p99", "max")),
        }

    def generator(self, duration_s: float, cores: int) -> dict[str, Any]:
        """The load generator's own health and cost."""
        samples = [x for values in self.cpu.values() for x in values]
        per_process_max = [max(v) for v in self.cpu.values() if v]
        started = self.counters.get("started", 0)
        return {
            "cores": cores,
            "processes": len(self.cpu),
            "cpu_percent_max": max(per_process_max, default=0.0),
            "cpu_percent_mean": sum(samples) / len(samples) if samples else 0.0,
            "cpu_seconds": self.cpu_seconds,
            "lag_ms_p99": self.lag.get_value_at_percentile(99) / 1000
            if self.lag.get_total_count()
            else 0.0,
            "lag_ms_max": self.lag.get_max_value() / 1000,
            # Requests a second one fully busy generator core would send, at this run's mix.
            "requests_per_core_s": started / self.cpu_seconds if self.cpu_seconds else 0.0,
            "requests_per_s": started / max(duration_s, 1e-9),
        }


class _Slowest:
    """The `SLOWEST_KEPT` slowest requests per endpoint by service time (what the server took),
    each with its W3C trace id and whether its trace was sampled: a min-heap per endpoint."""

    def __init__(self) -> None:
        self.kept: dict[str, list[tuple[float, int, dict[str, Any]]]] = defaultdict(list)
        self._n = 0  # ties break by arrival, never by comparing the dicts

    def offer(self, endpoint: str, service_ms: float, row: dict[str, Any]) -> None:
        heap = self.kept[endpoint]
        self._n += 1
        if len(heap) < SLOWEST_KEPT:
            heapq.heappush(heap, (service_ms, self._n, row))
        elif service_ms > heap[0][0]:
            heapq.heapreplace(heap, (service_ms, self._n, row))

    def encode(self) -> dict[str, list[dict[str, Any]]]:
        return {e: [row for _, _, row in heap] for e, heap in self.kept.items()}

    def merge(self, data: dict[str, list[dict[str, Any]]]) -> None:
        for endpoint, rows in data.items():
            for row in rows:
                self.offer(endpoint, float(row["service_ms"]), row)

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Slowest first."""
        return {
            e: [row for _, _, row in sorted(heap, key=lambda x: -x[0])]
            for e, heap in sorted(self.kept.items())
        }


def trace_of(traceparent: str | None) -> tuple[str | None, bool]:
    """The trace id of a ``traceparent`` header and whether its sampled flag is set."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None, False
    return parts[1], parts[3] == "01"


def _mean(total_us: int, cell: _Cell) -> float:
    return total_us / cell.count if cell.count else 0.0


def _stats(
    h: HdrHistogram, keys: tuple[str, ...] | None = None, mean_us: float = 0.0
) -> dict[str, float]:
    """Percentiles, mean and maximum in milliseconds (zeros for an empty histogram)."""
    wanted = keys or (*PERCENTILES, "max", "mean")
    if h.get_total_count() == 0:
        return dict.fromkeys(wanted, 0.0)
    # One pass over the buckets for all percentiles (one per percentile is slow in Python).
    asked = [PERCENTILES[k] for k in wanted if k in PERCENTILES]
    values = h.get_percentile_to_value_dict(asked) if asked else {}
    out: dict[str, float] = {}
    for key in wanted:
        if key == "max":
            out[key] = h.get_max_value() / 1000
        elif key == "mean":
            out[key] = mean_us / 1000
        else:
            out[key] = values[PERCENTILES[key]] / 1000
    return out
