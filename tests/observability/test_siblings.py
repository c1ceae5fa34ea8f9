"""Workers' per-worker families are summed sample by sample; everything else is this worker's."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from observability.siblings import Siblings, _Merged


def _page(views: int, slow: int, audit: int) -> str:
    route = 'http_route="/api/v1/children/{child_id}"'
    return "\n".join(
        [
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests.",
            "# TYPE http_server_request_duration_seconds histogram",
            f'http_server_request_duration_seconds_bucket{{{route},le="0.1"}} {views - slow}',
            f'http_server_request_duration_seconds_bucket{{{route},le="+Inf"}} {views}',
            f"http_server_request_duration_seconds_count{{{route}}} {views}",
            f"http_server_request_duration_seconds_sum{{{route}}} {views * 0.05}",
            "# HELP contactpoint_audit_events_total Audit events recorded, by tag",
            "# TYPE contactpoint_audit_events_total counter",
            f'contactpoint_audit_events_total{{tag="child:record:viewed"}} {audit}',
            "",
        ]
    )


def _merged(own: str, *siblings: str) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(own, siblings))
    text = generate_latest(registry).decode()
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_request_histograms_add_up_and_database_figures_stay_this_workers() -> None:
    got = _merged(_page(10, 1, 40), _page(7, 2, 40), _page(3, 0, 40))
    route = ("http_route", "/api/v1/children/{child_id}")
    assert got[f"http_server_request_duration_seconds_count{[route]}"] == 20
    assert got[f"http_server_request_duration_seconds_bucket{sorted([route, ('le', '0.1')])}"] == 17
    assert got[f"http_server_request_duration_seconds_sum{[route]}"] == 1.0
    # Read from the database by every worker alike: not multiplied by the number of workers.
    assert got["contactpoint_audit_events_total[('tag', 'child:record:viewed')]"] == 40


def test_buckets_keep_their_order(tmp_path: Path) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(_page(10, 1, 0), [_page(1, 1, 0)]))
    lines = [line for line in generate_latest(registry).decode().splitlines() if "_bucket" in line]
    assert ['le="0.1"' in lines[0], 'le="+Inf"' in lines[1]] == [True, True]


def test_a_sibling_whose_worker_has_gone_is_tidied_away(tmp_path: Path) -> None:
    me = Siblings(tmp_path)
    me.start()
    try:
        # A socket file left by a process that no longer runs (pid 2**22 + 1 is beyond pid_max's
        # default) and a socket nobody listens on: neither spoils the page.
        gone = tmp_path / f"{2**22 + 1}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(gone))
        assert gone.exists()
        me.page()  # reads every sibling socket: the dead one is refused and removed
        assert not gone.exists()
        assert me.path.exists()
        assert me.path.name == f"{os.getpid()}.sock"
    finally:
        me.stop()
    assert not me.path.exists()
