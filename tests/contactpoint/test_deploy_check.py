"""`contactpoint deploy check`: its usage errors and its JUnit report, without a deployment (the
checks themselves run against a booted system in tests/deploy/test_ansible_deploy.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from contactpoint.cli import main
from contactpoint.deploy_check import CHECKS, KERNEL_CHECKS, Result, _settings, write_junit


def test_an_unknown_check_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["deploy", "check", "--inventory", str(tmp_path), "--only", "no_such_check"]
    )
    assert result.exit_code == 2
    assert "no such check: no_such_check" in result.output


def test_a_missing_inventory_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "check", "--inventory", str(tmp_path / "absent")])
    assert result.exit_code == 2


def test_every_check_is_registered_once_with_a_control_and_a_docstring() -> None:
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    assert all(
        c.control and c.doc and c.group in {"all", "app", "db", "monitoring"} for c in CHECKS
    )


def test_the_junit_report_has_a_case_per_check_and_host(tmp_path: Path) -> None:
    results = [
        Result("edge_tls", "TLS", "app-1", "passed", "TLSv1.3", 0.5),
        Result("unit_sandboxed", "exposure", "app-1", "failed", "exposure 4.2 > 2.0", 0.1),
        Result("login_through_edge", "login", "app-1", "skipped", "no demo personas", 0.0),
    ]
    path = tmp_path / "deploy.xml"
    write_junit(results, path)
    suite = ET.parse(path).getroot()  # noqa: S314 (our own file)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='unit_sandboxed']/failure")
    assert failure is not None
    assert failure.get("message") == "exposure 4.2 > 2.0"
    assert suite.find("testcase[@name='login_through_edge']/skipped") is not None


def test_sysctl_files_and_sysctl_output_read_alike() -> None:
    written = "# Managed\n\nkernel.kptr_restrict = 2\n-net.ipv4.ip_local_port_range = 32768 60999\n"
    live = "kernel.kptr_restrict = 2\nnet.ipv4.ip_local_port_range = 32768\t60999\n"
    assert _settings(written) == _settings(live)
    assert _settings(written) == {
        "kernel.kptr_restrict": "2",
        "net.ipv4.ip_local_port_range": "32768 60999",
    }
    assert _settings("kernel.kptr_restrict = 1\n") != _settings(written)


def test_the_kernel_checks_are_registered_checks() -> None:
    assert KERNEL_CHECKS.issubset(c.name for c in CHECKS)
