"""The `contactpoint` command line: every part's commands in one place.

The registry's commands come from its own CLI (`contactpoint-registry`, `reference_app.cli`);
the generator's, the load harness's and the security harness's hang beside them. Those need the
`harness` extra: without it they refuse in one line (exit 2) naming it.

Exit codes (every command; see `reference_app.kit.exits`): 0 pass; 1 a check ran and found a
problem (e.g. tampering); 2 usage or configuration; 3 could not judge; 4 target or dependency
unreachable.
"""

from __future__ import annotations

import click

from contactpoint import extra
from contactpoint.deploy_check import deploy
from contactpoint.serve import serve
from reference_app import cli as registry

# Telemetry (OTEL_* variables; off by default): the service each command reports as.
SERVICES = {**registry.SERVICES, "load": "contactpoint-load"}
# The commands that need the harness extra (`serve --demo` checks for itself).
HARNESS = ("assure", "attack", "bench", "generate", "load", "load-accounts")


@registry.command_line("ContactPoint Harness: reference registry, data, load and security tooling.")
def main(debug: bool) -> None:
    command = click.get_current_context().invoked_subcommand
    if command in HARNESS:
        extra.require(command)
    registry.telemetry(command, SERVICES)


def _harness_commands() -> list[click.Command]:
    # Imported here so `contactpoint --help` stays fast (heavy imports happen inside the
    # commands); a registry-only install gets stand-ins that name the extra.
    try:
        from contactpoint.assure.cli import assure
        from loadtests.cli import load, load_accounts
        from security_tests.cli import attack
        from synthetic_data.cli import bench, generate
    except ModuleNotFoundError as exc:
        return [extra.absent(name, exc) for name in HARNESS]
    return [assure, attack, bench, generate, load, load_accounts]


# The registry's commands, with `serve` in its demo-capable form.
for name, command in registry.main.commands.items():
    if name != "serve":
        main.add_command(command)
main.add_command(serve)
# The harness's commands, and the checks of a deployed region.
for command in _harness_commands():
    main.add_command(command)
main.add_command(deploy)

if __name__ == "__main__":
    main()
