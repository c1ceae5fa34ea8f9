"""Histograms merge losslessly across processes, and corrected latency includes the wait."""

from __future__ import annotations

import random

from loadtests.histograms import ALL, SLOWEST_KEPT, Aggregate, Recorder

START = 1_000_000.0


def _record(recorder: Recorder, rng: random.Random, n: int, persona: str) -> None:
    for _ in range(n):
        intended = START + rng.uniform(0, 30)
        started = intended + rng.choice([0.0, 0.0, 0.4])  # some requests sent late
        ended = started + rng.uniform(0.005, 0.2)
        recorder.planned(intended)
        recorder.request(
            "GET /api/v1/children/{id}",
            persona,
            intended=intended,
            started=started,
            ended=ended,
            ok=rng.random() > 0.05,
            late=started - intended > 0.1,
        )


def _row(aggregate: Aggregate, endpoint: str, persona: str) -> dict[str, object]:
    return next(
        r for r in aggregate.latency_rows() if r["endpoint"] == endpoint and r["persona"] == persona
    )


def test_two_processes_merged_equal_one_process_that_saw_everything() -> None:
    one, a, b = Recorder(START), Recorder(START), Recorder(START)
    _record(one, random.Random(1), 500, "school")
    _record(one, random.Random(2), 300, "gp")
    _record(a, random.Random(1), 500, "school")
    _record(b, random.Random(2), 300, "gp")
    single, merged = Aggregate(), Aggregate()
    single.merge(one.drain())
    merged.merge(b.drain(), source="b")  # order does not matter
    merged.merge(a.drain(), source="a")
    assert single.latency_rows() == merged.latency_rows()
    assert single.series() == merged.series()
    assert single.rate(30) == merged.rate(30)
    total = _row(merged, ALL, ALL)
    assert total["count"] == 800


def test_drains_in_pieces_lose_nothing() -> None:
    whole, pieces = Recorder(START), Recorder(START)
    rng_a, rng_b = random.Random(5), random.Random(5)
    _record(whole, rng_a, 400, "police")
    a, b = Aggregate(), Aggregate()
    for _ in range(4):
        _record(pieces, rng_b, 100, "police")
        b.merge(pieces.drain())
    a.merge(whole.drain())
    assert a.latency_rows() == b.latency_rows()


def test_corrected_latency_counts_the_time_a_request_was_late() -> None:
    recorder = Recorder(START)
    # Intended at 0, sent 2 s late, served in 10 ms.
    recorder.request(
        "X", "school", intended=START, started=START + 2.0, ended=START + 2.01, ok=True, late=True
    )
    aggregate = Aggregate()
    aggregate.merge(recorder.drain())
    row = _row(aggregate, "X", "school")
    assert 9.9 <= row["service_ms"]["p99"] <= 10.1  # type: ignore[index]
    assert 2009 <= row["corrected_ms"]["p99"] <= 2011  # type: ignore[index]
    assert aggregate.rate(10)["late"] == 1


def test_series_files_requests_under_their_intended_interval_and_counts_drops() -> None:
    recorder = Recorder(START, interval_s=5.0)
    recorder.planned(START + 1)
    recorder.planned(START + 7)
    recorder.planned(START + 7)
    recorder.request("X", "gp", intended=START + 1, started=START + 1, ended=START + 6, ok=True)
    recorder.request("X", "gp", intended=START + 7, started=START + 7, ended=START + 7.1, ok=False)
    recorder.dropped(START + 7)
    recorder.users(START + 1, 3)
    aggregate = Aggregate(5.0)
    aggregate.merge(recorder.drain(), source="w1")
    other = Recorder(START, interval_s=5.0)
    other.users(START + 2, 4)
    aggregate.merge(other.drain(), source="w2")
    first, second = aggregate.series()
    assert (first["planned"], first["achieved"], first["users"]) == (1, 1, 7)
    assert (second["planned"], second["achieved"], second["errors"], second["dropped"]) == (
        2,
        0,
        1,
        1,
    )
    rate = aggregate.rate(10)
    assert rate["planned"] == 3
    assert rate["completed"] == 1
    assert rate["failed"] == 1
    assert rate["achieved_ratio"] == 1 / 3


def test_generator_cost_is_requests_per_busy_core_second() -> None:
    recorder = Recorder(START)
    for _ in range(100):
        recorder.request("X", "gp", intended=START, started=START, ended=START + 0.01, ok=True)
    recorder.cpu(50.0, 0.5)
    recorder.cpu(70.0, 0.5)
    recorder.lag(0.002)
    aggregate = Aggregate()
    aggregate.merge(recorder.drain())
    generator = aggregate.generator(10, cores=2)
    assert generator["requests_per_core_s"] == 100
    assert generator["cpu_percent_max"] == 70.0
    assert 1.99 <= generator["lag_ms_p99"] <= 2.01


def test_waits_for_a_session_and_sessions_in_use_merge_across_processes() -> None:
    one, two = Recorder(START, interval_s=5.0), Recorder(START, interval_s=5.0)
    for recorder in (one, two):
        recorder.count("arrivals", 10)
    one.waited(START + 1, 0.05, starved=False)
    one.waited(START + 2, 2.0, starved=True)
    two.waited(START + 6, 4.0, starved=True)
    one.users(START + 1, 5, in_use=4)
    one.users(START + 1.5, 5, in_use=2)  # the most in the interval stays
    two.users(START + 1, 6, in_use=3)
    aggregate = Aggregate(5.0)
    aggregate.merge(one.drain(), source="w1")
    aggregate.merge(two.drain(), source="w2")
    first, second = aggregate.series()
    assert (first["users"], first["in_use"], first["waited"], first["starved"]) == (11, 7, 2, 1)
    assert (second["waited"], second["starved"]) == (1, 1)
    waits = aggregate.waits()
    assert (waits["arrivals"], waits["waited"], waits["starved"]) == (20, 3, 2)
    assert 3990 <= waits["wait_ms"]["max"] <= 4010


def test_the_slowest_requests_keep_their_trace_ids_across_processes() -> None:
    """Each endpoint's slowest requests by service time, merged from any number of processes,
    keep the trace id and sampled flag of the ``traceparent`` they were sent with."""
    a, b = Recorder(START), Recorder(START)
    sent: list[tuple[float, str]] = []
    rng = random.Random(11)
    for i in range(300):
        recorder = a if i % 2 else b
        service = rng.uniform(0.001, 0.5)
        trace_id = f"{i + 1:032x}"
        traceparent = f"00-{trace_id}-{i + 1:016x}-{'01' if i % 3 == 0 else '00'}"
        recorder.request(
            "GET /api/v1/children/{id}",
            "school",
            intended=START + i * 0.01,
            started=START + i * 0.01,
            ended=START + i * 0.01 + service,
            ok=True,
            traceparent=traceparent,
        )
        sent.append((service, trace_id))
    merged = Aggregate()
    for _ in range(2):  # drained twice: the second drain is empty and must not disturb anything
        merged.merge(a.drain(), source="a")
        merged.merge(b.drain(), source="b")
    kept = merged.slowest.rows()["GET /api/v1/children/{id}"]
    expected = [t for _, t in sorted(sent, reverse=True)[:SLOWEST_KEPT]]
    assert [row["trace_id"] for row in kept] == expected
    for row in kept:
        index = int(row["trace_id"], 16) - 1
        assert row["trace_sampled"] is (index % 3 == 0)
        assert row["service_ms"] >= kept[-1]["service_ms"]


def test_a_request_without_a_trace_is_kept_without_one() -> None:
    recorder = Recorder(START)
    recorder.request("POST /search", "gp", intended=START, started=START, ended=START + 1, ok=False)
    aggregate = Aggregate()
    aggregate.merge(recorder.drain())
    (row,) = aggregate.slowest.rows()["POST /search"]
    assert row["trace_id"] is None
    assert row["trace_sampled"] is False
    assert row["ok"] is False
