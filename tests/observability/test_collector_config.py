"""The OpenTelemetry Collector configuration, checked structurally: no collector binary is
available here, so this is not a run of the collector. The YAML parses; every pipeline's
receivers, processors and exporters are defined; the transform processor keeps only allow-listed
attributes, and its lists are the registry's own (span allow-list, metric labels)."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
import yaml

from tests.observability.prom_tools import COLLECTOR_CONFIG, RUNBOOK

KEEP = re.compile(r"^keep_keys\(attributes, (\[.*\])\)$")


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    return loaded


def kept(signal: str, context: str) -> set[str]:
    """The attribute names the allow-list keeps for ``signal``'s ``context``."""
    blocks = config()["processors"]["transform/allowlist"][f"{signal}_statements"]
    (block,) = [b for b in blocks if b["context"] == context]
    (statement,) = block["statements"]
    match = KEEP.match(statement)
    assert match, statement
    names: list[str] = json.loads(match.group(1))
    assert len(names) == len(set(names))
    return set(names)


def metric_labels() -> set[str]:
    """The labels of docs/runbook.md's metrics table."""
    labels = set()
    for line in RUNBOOK.read_text().splitlines():
        if re.match(r"\| `[a-z_]+` \| \w+ \|", line):
            labels |= set(re.findall(r"`([a-z_]+)`", line.split("|")[3]))
    return labels


def test_pipelines_use_defined_components() -> None:
    cfg = config()
    pipelines = cfg["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in cfg[kind], f"{name} uses undefined {kind[:-1]} {component}"
        assert pipeline["receivers"] == ["otlp"]
        # Memory limiter first, the allow-list before anything leaves, batch last.
        assert pipeline["processors"] == ["memory_limiter", "transform/allowlist", "batch"]
    assert pipelines["metrics"]["exporters"] == ["prometheus", "otlp"]
    assert all("otlp" in p["exporters"] for p in pipelines.values())
    for extension in cfg["service"]["extensions"]:
        assert extension in cfg["extensions"]
    # Components defined and unused are a sign of a pipeline forgotten.
    for kind in ("receivers", "processors", "exporters"):
        used = {c for p in pipelines.values() for c in p[kind]}
        assert set(cfg[kind]) == used


def test_otlp_receiver_listens_on_loopback() -> None:
    protocols = config()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"


def test_every_context_keeps_only_an_allow_list() -> None:
    processor = config()["processors"]["transform/allowlist"]
    assert processor["error_mode"] == "ignore"
    contexts = {
        (signal, block["context"])
        for signal in ("trace", "metric", "log")
        for block in processor[f"{signal}_statements"]
    }
    assert contexts == {
        ("trace", "resource"),
        ("trace", "span"),
        ("trace", "spanevent"),
        ("metric", "resource"),
        ("metric", "datapoint"),
        ("log", "resource"),
        ("log", "log"),
    }
    for signal, context in contexts:
        assert kept(signal, context)  # parses as keep_keys over a JSON list
    assert kept("trace", "resource") == kept("metric", "resource") == kept("log", "resource")
    personal = {"client.address", "user_agent.original", "url.query", "url.full", "child.name"}
    for signal, context in contexts:
        assert kept(signal, context) & personal == set()


def test_metric_allow_list_is_the_agreed_labels() -> None:
    assert {name.replace(".", "_") for name in kept("metric", "datapoint")} == metric_labels()


def test_span_allow_list_is_the_registrys() -> None:
    if importlib.util.find_spec("observability.privacy") is None:
        pytest.skip("observability.privacy (the registry's span allow-list) is not on this branch")
    from observability import privacy

    assert kept("trace", "span") == set(privacy.ALLOWED_SPAN_ATTRIBUTES)
    assert kept("trace", "spanevent") == set(privacy.EVENT_ATTRIBUTES)
