"""Reports of a load run: a terminal summary, SVG charts, one HTML page, JSON and JUnit.

Everything here reads the run summary (the ``contactpoint-load/1`` dict) and a ``Verdict``; it
needs no plotting library, and the HTML page embeds its charts so it can be mailed or archived
as a single file. The summary may be partial (an aborted run): missing values show as "-".
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.slo import ALL, Check, Verdict, write_junit

MARKS = {"pass": "PASS", "fail": "FAIL", "not_judged": "NOT JUDGED"}
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")


# --- small formatting helpers ----------------------------------------------------------------


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _num(value: object, digits: int = 1) -> str:
    """A number with ``digits`` decimals, or "-" when there is none."""
    number = _float(value)
    if number is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{number:.{digits}f}"


def _pct(value: object) -> str:
    number = _float(value)
    return "-" if number is None else f"{number:.2%}"


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, Mapping)]


def _check_measure(check: Check) -> str:
    """The measured value against its bound, e.g. "212.0 ms <= 250 ms"."""
    if check.unit == "ms":
        measured = "-" if check.measured is None else f"{check.measured:.1f} ms"
        return f"{measured} (bound {check.comparison} {check.threshold:g} ms)"
    if check.unit == "ratio":
        measured = "-" if check.measured is None else f"{check.measured:.2%}"
        return f"{measured} (bound {check.comparison} {check.threshold:.2%})"
    return "yes" if check.outcome == "pass" else "no"


def _endpoint_rows(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-endpoint rows over all personas, the all-endpoints row last."""
    rows = [r for r in _rows(summary.get("latency")) if r.get("persona") == ALL]
    return sorted(rows, key=lambda r: (r.get("endpoint") == ALL, str(r.get("endpoint"))))


def _persona_rows(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-persona rows over all endpoints (without the overall row)."""
    rows = [
        r
        for r in _rows(summary.get("latency"))
        if r.get("endpoint") == ALL and r.get("persona") != ALL
    ]
    return sorted(rows, key=lambda r: str(r.get("persona")))


def _flatten(value: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings as (dotted key, JSON-ish value) pairs, for a parameters table."""
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for key, inner in value.items():
            out.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, str):
        return [(prefix, value)]
    return [(prefix, json.dumps(value, default=str))]


def strategy_rows(detection: Mapping[str, Any]) -> list[list[str]]:
    """The per-strategy detection table (header row first), or nothing without adversaries."""
    rows = _map(detection.get("strategies")) if detection else {}
    if not rows:
        return []
    table = [["strategy", "kind", "actors", "acted", "caught", "recall", "reach max", "stopped by"]]
    for name, row in rows.items():
        stops = ", ".join(f"{code} x{n}" for code, n in sorted(row["stopped_by"].items()))
        table.append(
            [
                name,
                str(row["kind"]),
                str(row["actors"]),
                str(row["acted"]),
                str(row["caught"]),
                f"{row['recall']:.0%}",
                str(row["reach_max"]),
                stops or "-",
            ]
        )
    return table


def sessions_line(sessions: Mapping[str, Any]) -> str:
    """The sessions the run held against its plan, and the arrivals that waited, in one line."""
    wait = _map(sessions.get("wait_ms"))
    return (
        f"Sessions: {_num(sessions.get('accounts'))} accounts, cap "
        f"{_num(sessions.get('cap'))}, planned peak {_num(sessions.get('planned_peak'))}, "
        f"held peak {_num(sessions.get('held_peak'))}, in use peak "
        f"{_num(sessions.get('in_use_peak'))}; {_num(sessions.get('arrivals'))} arrivals, "
        f"{_num(sessions.get('waited'))} waited for a session (p99 {_num(wait.get('p99'))} ms, "
        f"max {_num(wait.get('max'))} ms), {_num(sessions.get('starved'))} starved by the "
        f"harness ({_pct(sessions.get('starved_share'))}, limit "
        f"{_pct(sessions.get('starved_max_share'))})"
    )


# --- terminal --------------------------------------------------------------------------------


def slowest_rows(summary: Mapping[str, Any], per_endpoint: int = 1) -> list[tuple[str, Any]]:
    """(endpoint, row) for each endpoint's slowest requests, slowest first within each."""
    found = _map(summary.get("slowest"))
    return [
        (str(endpoint), row)
        for endpoint, rows in sorted(found.items())
        for row in list(rows or [])[:per_endpoint]
        if isinstance(row, Mapping)
    ]


def _slow_line(row: Mapping[str, Any]) -> str:
    trace = row.get("trace_id") or "no trace id"
    kept = "sampled" if row.get("trace_sampled") else "not sampled"
    return (
        f"{_num(row.get('service_ms'))} ms service, {_num(row.get('corrected_ms'))} ms corrected, "
        f"at {_num(row.get('at_s'))} s, trace {trace} ({kept})"
    )


def render_terminal(summary: Mapping[str, Any], verdict: Verdict) -> str:
    """A compact human summary of a run and its verdict, for the terminal.

    Lines: the run (target, profile, duration, workers, validity), the rate, a latency table per
    endpoint over all personas, the load generator, the detection table if any, every check
    with PASS, FAIL or NOT JUDGED, and last ``VERDICT: PASS|FAIL|INVALID (exit N)``.
    """
    run = _map(summary.get("run"))
    rate = _map(summary.get("rate"))
    generator = _map(summary.get("generator"))
    lines: list[str] = []

    validity = "valid" if run.get("valid", True) else "INVALID"
    if run.get("aborted"):
        validity += f", aborted: {run.get('abort_reason') or 'no reason given'}"
    lines.append(
        f"Run: {run.get('profile', '?')} against {run.get('target', '?')}, "
        f"{_num(run.get('duration_s'))} s, {run.get('workers', '?')} workers, {validity}"
    )
    for reason in run.get("invalid_reasons") or []:
        lines.append(f"  invalid: {reason}")
    for note in run.get("notes") or []:
        lines.append(f"  note: {note}")
    lines.append(
        f"Rate: planned {_num(rate.get('planned_per_s'))}/s, "
        f"achieved {_num(rate.get('achieved_per_s'))}/s "
        f"(ratio {_num(rate.get('achieved_ratio'), 3)}), "
        f"failed {_num(rate.get('failed'))}, late {_num(rate.get('late'))}, "
        f"dropped {_num(rate.get('dropped'))}"
    )

    rows = _endpoint_rows(summary)
    if rows:
        width = max(len("endpoint"), *(len(str(r.get("endpoint"))) for r in rows))
        lines.append("Latency (ms; corrected unless marked service):")
        lines.append(
            f"  {'endpoint':<{width}} {'count':>8} {'errors':>7} {'p50':>8} {'p95':>8} "
            f"{'p99':>8} {'svc p99':>8}"
        )
        for r in rows:
            corrected = _map(r.get("corrected_ms"))
            service = _map(r.get("service_ms"))
            name = "all endpoints" if r.get("endpoint") == ALL else str(r.get("endpoint"))
            lines.append(
                f"  {name:<{width}} {_num(r.get('count')):>8} {_num(r.get('errors')):>7} "
                f"{_num(corrected.get('p50')):>8} {_num(corrected.get('p95')):>8} "
                f"{_num(corrected.get('p99')):>8} {_num(service.get('p99')):>8}"
            )
    else:
        lines.append("Latency: no requests recorded")
    slowest = slowest_rows(summary)
    if slowest:
        lines.append("Slowest request per endpoint (find it in the registry's traces):")
        for endpoint, row in slowest:
            lines.append(f"  {endpoint}: {_slow_line(row)}")
    sessions = _map(run.get("sessions"))
    if sessions:
        lines.append(sessions_line(sessions))

    if generator:
        lines.append(
            f"Generator: {generator.get('cores', '?')} cores, "
            f"cpu max {_num(generator.get('cpu_percent_max'))} %, "
            f"lag p99 {_num(generator.get('lag_ms_p99'))} ms, "
            f"{_num(generator.get('requests_per_core_s'))} req/s per core"
        )

    detection = _map(summary.get("detection"))
    if detection:
        pairs = _flatten({k: v for k, v in detection.items() if k != "strategies"})
        width = max(len(k) for k, _ in pairs)
        lines.append("Detection:")
        lines.extend(f"  {key:<{width}}  {value}" for key, value in pairs)
    strategies = strategy_rows(detection)
    if strategies:
        lines.append("Detection by strategy (actors caught; most children one actor reached):")
        widths = [max(len(str(row[i])) for row in strategies) for i in range(len(strategies[0]))]
        for row in strategies:
            lines.append("  " + "  ".join(f"{c!s:<{w}}" for c, w in zip(row, widths, strict=True)))

    if verdict.checks:
        lines.append("Checks:")
        for check in verdict.checks:
            lines.append(f"  {MARKS[check.outcome]:<10}  {check.name}: {check.detail}")
    lines.append(f"VERDICT: {verdict.status.upper()} (exit {verdict.exit_code})")
    return "\n".join(lines)


# --- SVG charts ------------------------------------------------------------------------------

WIDTH, HEIGHT = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 44, 84
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


@dataclass(frozen=True)
class _Series:
    label: str
    points: list[tuple[float, float | None]]
    colour: str
    dashed: bool = False


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * magnitude >= raw:
            step = m * magnitude
            break
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"


def _text(x: float, y: float, content: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{html.escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{html.escape(content)}</text>'


@dataclass(frozen=True)
class _Mark:
    """A labelled reference line: an SLO bound (horizontal) or a stage's start (vertical)."""

    label: str
    at: float


# An SLO line is drawn inside the chart when the data reach at least this share of it; further
# above, the chart would squash the data, so the bound is named at the top instead.
SLO_LINE_REACH = 0.25


def _line_chart(
    title: str,
    y_label: str,
    series: Sequence[_Series],
    x_label: str,
    *,
    bounds: Sequence[_Mark] = (),
    stages: Sequence[_Mark] = (),
) -> str:
    """A self-contained SVG line chart; a gap (None) in a series breaks its line.

    ``bounds`` are SLO lines (dashed, red, labelled); ``stages`` mark where each stage of the
    profile begins (dotted, grey, labelled).
    """
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" '
        f'role="img" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        _text(WIDTH / 2, 24, title, text_anchor="middle", font_size="15", font_weight="bold"),
    ]
    xs = [x for s in series for x, y in s.points if y is not None]
    ys = [y for s in series for _, y in s.points if y is not None]
    if not xs:
        parts.append(
            f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
            'fill="none" stroke="#999999"/>'
        )
        parts.append(
            _text(LEFT + plot_w / 2, TOP + plot_h / 2, "no data", text_anchor="middle", fill="#666")
        )
        parts.append("</svg>")
        return "\n".join(parts)

    top = max(ys) if ys else 0.0
    shown = [b for b in bounds if top >= SLO_LINE_REACH * b.at]
    above = [b for b in bounds if b not in shown]
    top = max([top, *(b.at for b in shown)])
    x_ticks = _ticks(min(xs), max(xs))
    y_ticks = _ticks(0.0, top * 1.05 if top > 0 else 1.0)
    x_low, x_high = x_ticks[0], x_ticks[-1]
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    # Grid and axes.
    for y in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{sy(y):.1f}" x2="{LEFT + plot_w}" y2="{sy(y):.1f}" '
            'stroke="#e5e5e5"/>'
        )
        parts.append(_text(LEFT - 6, sy(y) + 4, _tick_label(y), text_anchor="end"))
    for x in x_ticks:
        parts.append(
            f'<line x1="{sx(x):.1f}" y1="{TOP + plot_h}" x2="{sx(x):.1f}" '
            f'y2="{TOP + plot_h + 5}" stroke="#333333"/>'
        )
        parts.append(_text(sx(x), TOP + plot_h + 18, _tick_label(x), text_anchor="middle"))
    parts.append(
        f'<path class="axis" d="M{LEFT},{TOP} V{TOP + plot_h} H{LEFT + plot_w}" '
        'fill="none" stroke="#333333"/>'
    )
    parts.append(_text(LEFT + plot_w / 2, TOP + plot_h + 36, x_label, text_anchor="middle"))
    parts.append(
        _text(
            16,
            TOP + plot_h / 2,
            y_label,
            text_anchor="middle",
            transform=f"rotate(-90 16 {TOP + plot_h / 2:.1f})",
        )
    )

    # One path per series; a gap starts a new sub-path, a lone point gets a dot.
    for s in series:
        commands: list[str] = []
        dots: list[tuple[float, float]] = []
        run: list[tuple[float, float]] = []
        for point_x, point_y in [*s.points, (math.nan, None)]:
            if point_y is None:
                if len(run) == 1:
                    dots.append(run[0])
                if run:
                    commands.append("M" + " L".join(f"{sx(px):.1f},{sy(py):.1f}" for px, py in run))
                run = []
            else:
                run.append((point_x, point_y))
        if not commands:
            continue
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<path class="series" data-label="{html.escape(s.label)}" d="{" ".join(commands)}" '
            f'fill="none" stroke="{s.colour}" stroke-width="2"{dash}>'
            f"<title>{html.escape(s.label)}</title></path>"
        )
        for px, py in dots:
            parts.append(f'<circle cx="{sx(px):.1f}" cy="{sy(py):.1f}" r="2.5" fill="{s.colour}"/>')

    for bound in shown:
        y = sy(bound.at)
        parts.append(
            f'<line class="slo" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
            'stroke="#b71c1c" stroke-width="1.5" stroke-dasharray="8 4"/>'
        )
        parts.append(
            _text(LEFT + plot_w - 4, y - 4, bound.label, text_anchor="end", fill="#b71c1c")
        )
    if above:
        names = "; ".join(b.label for b in above)
        parts.append(_text(LEFT + 4, TOP - 6, f"above the chart: {names}", fill="#b71c1c"))
    for stage in stages:
        if not x_low <= stage.at <= x_high:
            continue
        x = sx(stage.at)
        parts.append(
            f'<line class="stage" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" '
            'stroke="#888888" stroke-dasharray="2 3"/>'
        )
        parts.append(_text(x + 3, TOP + 12, stage.label, fill="#555555", font_size="10"))

    # Legend, in a row under the axis title.
    x = float(LEFT)
    legend_y = HEIGHT - 18
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{legend_y - 4}" x2="{x + 24:.1f}" y2="{legend_y - 4}" '
            f'stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
        parts.append(_text(x + 30, legend_y, s.label))
        x += 30 + 7.5 * len(s.label) + 24
    parts.append("</svg>")
    return "\n".join(parts)


def _interval(summary: Mapping[str, Any]) -> float:
    """The series interval in seconds, from the run or else from the series' own spacing."""
    interval = _float(_map(summary.get("run")).get("interval_s"))
    if interval and interval > 0:
        return interval
    times = sorted(
        t for row in _rows(summary.get("series")) if (t := _float(row.get("t"))) is not None
    )
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return min(gaps) if gaps else 1.0


def _points(rows: Iterable[Mapping[str, Any]], value: Any) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    for row in rows:
        t = _float(row.get("t"))
        if t is not None:
            out.append((t, value(row)))
    return out


def _sorted_series(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return sorted(_rows(summary.get("series")), key=lambda r: _float(r.get("t")) or 0.0)


def _stages(summary: Mapping[str, Any]) -> list[_Mark]:
    """Where each stage of the profile begins, in run seconds (none for a one-stage profile)."""
    model = _map(_map(summary.get("run")).get("model"))
    marks = [
        _Mark(str(stage.get("name", "")), start)
        for stage in model.get("stages") or []
        if isinstance(stage, Mapping) and (start := _float(stage.get("start_s"))) is not None
    ]
    return marks if len(marks) > 1 else []


def _latency_bounds(summary: Mapping[str, Any]) -> list[_Mark]:
    """The SLO's corrected-latency bounds for all requests, and the strictest per endpoint."""
    checks = [
        c
        for c in _map(summary.get("verdict")).get("checks") or []
        if isinstance(c, Mapping) and c.get("kind") == "latency" and c.get("persona") == ALL
    ]
    marks: dict[float, str] = {}
    for check in checks:
        bound = _float(check.get("threshold"))
        if bound is None:
            continue
        label = f"SLO {check.get('name')} {bound:g} ms"
        marks.setdefault(bound, label)
    return [_Mark(label, at) for at, label in sorted(marks.items())]


def rate_chart_svg(summary: Mapping[str, Any]) -> str:
    """An SVG chart of planned against achieved requests a second (and errors) over the run."""
    rows = _sorted_series(summary)
    interval = _interval(summary)

    def per_second(key: str) -> Any:
        def get(row: Mapping[str, Any]) -> float | None:
            count = _float(row.get(key))
            return None if count is None else count / interval

        return get

    series = [
        _Series("planned", _points(rows, per_second("planned")), COLOURS[0], dashed=True),
        _Series("achieved", _points(rows, per_second("achieved")), COLOURS[2]),
        _Series("errors", _points(rows, per_second("errors")), COLOURS[1]),
    ]
    ratio = next(
        (
            _float(c.get("threshold"))
            for c in _map(summary.get("verdict")).get("checks") or []
            if isinstance(c, Mapping) and c.get("statistic") == "achieved_ratio"
        ),
        None,
    )
    if ratio is not None:
        floor = per_second("planned")
        series.append(
            _Series(
                f"SLO: {ratio:.0%} of planned",
                _points(rows, lambda row: None if (v := floor(row)) is None else v * ratio),
                "#b71c1c",
                dashed=True,
            )
        )
    return _line_chart(
        "Requests a second",
        "requests / s",
        series,
        "seconds since start",
        stages=_stages(summary),
    )


def sessions_chart_svg(summary: Mapping[str, Any]) -> str:
    """An SVG chart of the sessions planned, held and in use, and the arrivals that waited."""
    rows = _sorted_series(summary)

    def get(key: str) -> Any:
        return lambda row: _float(row.get(key))

    series = [
        _Series("planned", _points(rows, get("planned_users")), COLOURS[0], dashed=True),
        _Series("held", _points(rows, get("users")), COLOURS[3]),
        _Series("in use (most at once)", _points(rows, get("in_use")), COLOURS[2]),
        _Series("arrivals that waited", _points(rows, get("waited")), COLOURS[4], dashed=True),
        _Series("starved by the harness", _points(rows, get("starved")), COLOURS[1]),
    ]
    return _line_chart(
        "Sessions", "sessions / arrivals", series, "seconds since start", stages=_stages(summary)
    )


def latency_chart_svg(summary: Mapping[str, Any]) -> str:
    """An SVG chart of corrected p50, p95 and p99, and service p99, over the run."""
    rows = _sorted_series(summary)

    def stat(histogram: str, key: str) -> Any:
        def get(row: Mapping[str, Any]) -> float | None:
            return _float(_map(row.get(histogram)).get(key))

        return get

    series = [
        _Series("corrected p50", _points(rows, stat("corrected_ms", "p50")), COLOURS[2]),
        _Series("corrected p95", _points(rows, stat("corrected_ms", "p95")), COLOURS[4]),
        _Series("corrected p99", _points(rows, stat("corrected_ms", "p99")), COLOURS[1]),
        _Series("service p99", _points(rows, stat("service_ms", "p99")), COLOURS[3], dashed=True),
    ]
    return _line_chart(
        "Latency",
        "milliseconds",
        series,
        "seconds since start",
        bounds=_latency_bounds(summary),
        stages=_stages(summary),
    )


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.6em 1em; font-size: 1.3em; font-weight: bold; border-radius: 4px; }
.pass { background: #e3f4e1; color: #1b5e20; } .fail { background: #fde2e1; color: #b71c1c; }
.invalid, .not_judged { background: #fff3cd; color: #7a5b00; }
svg { max-width: 100%; height: auto; }
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: int = 0) -> str:
    """An HTML table; the last ``numeric`` columns are right-aligned. Cells are escaped here."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="n"' if i >= len(row) - numeric else ""
            cells.append(f"<td{cls}>{html.escape(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _latency_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return _table(
        [
            "endpoint",
            "persona",
            "count",
            "errors",
            "error rate",
            "p50",
            "p95",
            "p99",
            "p99.9",
            "max",
            "service p50",
            "service p99",
        ],
        [
            [
                str(r.get("endpoint")),
                str(r.get("persona")),
                _num(r.get("count")),
                _num(r.get("errors")),
                _pct(r.get("error_rate")),
                *(_num(_map(r.get("corrected_ms")).get(k)) for k in ("p50", "p95", "p99")),
                *(_num(_map(r.get("corrected_ms")).get(k)) for k in ("p999", "max")),
                _num(_map(r.get("service_ms")).get("p50")),
                _num(_map(r.get("service_ms")).get("p99")),
            ]
            for r in rows
        ],
        numeric=10,
    )


def render_html(summary: Mapping[str, Any], verdict: Verdict) -> str:
    """One self-contained HTML page: the verdict, the tables, both charts and the model."""
    # The charts draw the SLO's bounds from the verdict's checks.
    charted = {**summary, "verdict": verdict.as_dict()}
    run = _map(summary.get("run"))
    rate = _map(summary.get("rate"))
    generator = _map(summary.get("generator"))
    title = f"Load run {run.get('profile', '?')} against {run.get('target', '?')}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="verdict {html.escape(verdict.status)}">VERDICT: '
        f"{html.escape(verdict.status.upper())} (exit {verdict.exit_code})</p>",
    ]
    if verdict.reasons:
        out.append("<ul>")
        out.extend(f"<li>{html.escape(r)}</li>" for r in verdict.reasons)
        out.append("</ul>")

    out.append("<h2>Run</h2>")
    out.append(
        _table(
            ["field", "value"],
            [
                ["target", str(run.get("target", "-"))],
                ["profile", str(run.get("profile", "-"))],
                ["started", str(run.get("started_at", "-"))],
                ["duration (s)", _num(run.get("duration_s"))],
                ["interval (s)", _num(run.get("interval_s"))],
                ["workers", _num(run.get("workers"))],
                ["valid", "yes" if run.get("valid", True) else "no"],
                ["invalid because", "; ".join(map(str, run.get("invalid_reasons") or [])) or "-"],
                ["aborted", str(run.get("abort_reason") or "yes") if run.get("aborted") else "no"],
                ["notes", "; ".join(map(str, run.get("notes") or [])) or "-"],
            ],
        )
    )

    out.append("<h2>Checks</h2>")
    out.append(
        "<table><tr><th>outcome</th><th>check</th><th>measured</th><th>detail</th></tr>"
        + "".join(
            f'<tr><td class="{html.escape(c.outcome)}">{MARKS[c.outcome]}</td>'
            f"<td>{html.escape(c.name)}</td><td>{html.escape(_check_measure(c))}</td>"
            f"<td>{html.escape(c.detail)}</td></tr>"
            for c in verdict.checks
        )
        + "</table>"
    )

    out.append("<h2>Rate</h2>")
    rate_keys = (
        "planned_per_s",
        "achieved_per_s",
        "achieved_ratio",
        "planned",
        "started",
        "completed",
        "failed",
        "late",
        "dropped",
    )
    out.append(
        _table(
            ["measure", "value"],
            [
                [k.replace("_", " "), _num(rate.get(k), 3 if k == "achieved_ratio" else 1)]
                for k in rate_keys
            ],
            numeric=1,
        )
    )
    out.append(rate_chart_svg(charted))
    sessions = _map(run.get("sessions"))
    if sessions:
        out.append("<h2>Sessions</h2>")
        out.append(f"<p>{html.escape(sessions_line(sessions))}</p>")
        out.append(_table(["measure", "value"], _flatten(sessions), numeric=1))
        out.append(sessions_chart_svg(charted))

    out.append("<h2>Latency by endpoint (ms, corrected unless marked service)</h2>")
    out.append(_latency_table(_endpoint_rows(summary)))
    personas = _persona_rows(summary)
    if personas:
        out.append("<h2>Latency by persona</h2>")
        out.append(_latency_table(personas))
    detail = [
        r
        for r in _rows(summary.get("latency"))
        if r.get("endpoint") != ALL and r.get("persona") != ALL
    ]
    if detail:
        out.append("<details><summary>Every endpoint and persona</summary>")
        detail.sort(key=lambda r: (str(r.get("endpoint")), str(r.get("persona"))))
        out.append(_latency_table(detail))
        out.append("</details>")
    out.append(latency_chart_svg(charted))
    slowest = slowest_rows(summary, per_endpoint=5)
    if slowest:
        out.append("<h2>Slowest requests (trace ids to find in the registry's traces)</h2>")
        out.append(
            _table(
                [
                    "endpoint",
                    "persona",
                    "trace id",
                    "sampled",
                    "at s",
                    "service ms",
                    "corrected ms",
                ],
                [
                    (
                        endpoint,
                        str(row.get("persona", "")),
                        str(row.get("trace_id") or ""),
                        "yes" if row.get("trace_sampled") else "no",
                        _num(row.get("at_s")),
                        _num(row.get("service_ms")),
                        _num(row.get("corrected_ms")),
                    )
                    for endpoint, row in slowest
                ],
                numeric=3,
            )
        )

    if generator:
        out.append("<h2>Load generator</h2>")
        out.append(_table(["measure", "value"], _flatten(generator), numeric=1))
    detection = _map(summary.get("detection"))
    if detection:
        out.append("<h2>Detection</h2>")
        rest = {k: v for k, v in detection.items() if k != "strategies"}
        out.append(_table(["measure", "value"], _flatten(rest)))
    strategies = strategy_rows(detection)
    if strategies:
        out.append("<h2>Detection by strategy</h2>")
        out.append(_table(list(strategies[0]), [tuple(r) for r in strategies[1:]]))
    model = _map(run.get("model"))
    if model:
        out.append("<h2>Load model</h2>")
        out.append(_table(["parameter", "value"], _flatten(model)))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --- files -----------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null, so summary.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and move it into place, so readers never see half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_reports(summary: Mapping[str, Any], verdict: Verdict, out_dir: Path) -> dict[str, Path]:
    """Write every report of a run into ``out_dir`` and return them by file name.

    Files: ``summary.json`` (the summary with a ``"verdict"`` key: status, exit_code, reasons,
    checks; NaN and infinities become null), ``rate.svg``, ``sessions.svg``, ``latency.svg``,
    ``report.html`` (self-contained) and ``junit.xml``. Each is written to a ``.partial`` file
    first and then moved into place. The summary passed in is not modified.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / name
        for name in (
            "summary.json", "rate.svg", "sessions.svg", "latency.svg", "report.html", "junit.xml"
        )
    }  # fmt: skip
    document = {**summary, "verdict": verdict.as_dict()}
    _write(
        paths["summary.json"],
        json.dumps(_json_safe(document), indent=2, allow_nan=False, default=str) + "\n",
    )
    _write(paths["rate.svg"], rate_chart_svg(document) + "\n")
    _write(paths["sessions.svg"], sessions_chart_svg(document) + "\n")
    _write(paths["latency.svg"], latency_chart_svg(document) + "\n")
    _write(paths["report.html"], render_html(summary, verdict))
    write_junit(verdict, summary, paths["junit.xml"])
    return paths


# --- live line and the closing verdict block --------------------------------------------------


def live_line(
    summary: Mapping[str, Any], breaches: Sequence[Check], elapsed: float, duration: float
) -> str:
    """One plain progress line for a running load: rate, latency, errors and SLO state."""
    rate = _map(summary.get("rate"))
    overall = next((r for r in _endpoint_rows(summary) if r.get("endpoint") == ALL), {})
    corrected = _map(overall.get("corrected_ms"))
    count = _as_int(overall.get("count"))
    errors = _as_int(overall.get("errors"))
    share = f"{errors / count:.1%}" if count else "-"
    state = "ok" if not breaches else "BREACH " + "; ".join(c.name for c in breaches)
    return (
        f"[{min(elapsed, duration):5.0f}s/{duration:.0f}s] "
        f"planned {_num(rate.get('planned_per_s'))}/s achieved {_num(rate.get('achieved_per_s'))}/s"
        f" | p50 {_num(corrected.get('p50'))} p95 {_num(corrected.get('p95'))} "
        f"p99 {_num(corrected.get('p99'))} ms | {count} requests, errors {share} | "
        f"dropped {_num(rate.get('dropped'))} late {_num(rate.get('late'))} | SLO {state}"
    )


def _as_int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def likely_cause(check: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """The likeliest cause of a failed or unjudged check, from what else the run measured."""
    run = _map(summary.get("run"))
    generator = _map(summary.get("generator"))
    reasons = " ".join(str(r) for r in run.get("invalid_reasons") or [])
    refusals = _map(_map(summary.get("detection")).get("ordinary_refusals"))
    kind, outcome = check.get("kind"), check.get("outcome")
    starved = "starved" in reasons
    behind = "load generator" in reasons
    if outcome == "not_judged":
        return "too few samples to judge: run longer or at a higher rate"
    if kind == "validity" or (kind == "latency" and (starved or behind)):
        if starved:
            return "sessions exhausted: the account pool or --max-sessions is below the peak"
        if behind:
            return (
                f"the load generator fell behind (CPU peak "
                f"{_num(generator.get('cpu_percent_max'))} %, wake-up lag p99 "
                f"{_num(generator.get('lag_ms_p99'))} ms): other work on its cores, or too few "
                "generator processes"
            )
        return ""
    if kind == "sessions":
        return "sessions exhausted: the account pool or --max-sessions is below the peak"
    if kind == "error_rate" or (kind == "rate" and refusals):
        if refusals:
            top = sorted(refusals.items(), key=lambda item: -_as_int(item[1]))
            return "the registry refused ordinary requests: " + ", ".join(
                f"{code} {n}" for code, n in top
            )
        return "server errors or timeouts (see locust_failures.csv)"
    if kind == "latency":
        return "the registry is slow at this rate (compare service p99 with corrected p99)"
    if kind == "rate":
        return "the registry could not keep up: arrivals were dropped or sent late"
    if kind == "false_positives":
        return "ordinary accounts drew alerts: check caseloads and the registry's working hours"
    return ""


def _as_float(value: object, default: float = 0.0) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def render_verdict_block(summary: Mapping[str, Any]) -> str:
    """The last lines a run prints: every check that did not pass, its likely cause, the verdict."""
    verdict = _map(summary.get("verdict"))
    checks = [c for c in verdict.get("checks") or [] if isinstance(c, Mapping)]
    lines = ["", "=" * 72]
    bad = [c for c in checks if c.get("outcome") != "pass"]
    for check in bad:
        lines.append(
            f"{MARKS.get(str(check.get('outcome')), '?'):<10}  {check.get('name')}: "
            f"{check.get('detail')}"
        )
        cause = likely_cause(check, summary)
        if cause:
            lines.append(f"{'':<12}likely cause: {cause}")
    if not bad:
        lines.append(f"all {len(checks)} checks passed")
    status = str(verdict.get("status", "?")).upper()
    lines.append(f"VERDICT: {status} (exit {verdict.get('exit_code', '?')})")
    return "\n".join(lines)
