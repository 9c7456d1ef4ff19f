"""`devnet`: the command users type. One module per section of its help
(lifecycle, chain, options and margin, faults, verification, observe); shared options,
endpoint resolution and errors in common.py, rendering in render.py, what
status, faults and watch read from the processes in collect.py. Every command
has --json for scripts and reads endpoints from DIR/devnet.json unless given
--sequencer / --node."""

from __future__ import annotations

import click

from devnet.cli import (
    chain,
    experiments,
    faults,
    lifecycle,
    margin,
    observe,
    options,
    snapshots,
    verification,
)
from devnet.cli.group import SectionedGroup

__all__ = ["main"]


@click.group(
    cls=SectionedGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="xrollup-devnet", prog_name="devnet")
def main() -> None:
    """A shared-sequencer rollup devnet on one machine.

    `devnet up` starts a sequencer and a node per rollup of genesis; `devnet down`
    stops them."""


assert isinstance(main, SectionedGroup)
main.add_section("Lifecycle", lifecycle.COMMANDS)
main.add_section("Lifecycle", snapshots.COMMANDS)
main.add_section("Chain", chain.COMMANDS)
main.add_section("Options and liens", options.COMMANDS)
main.add_section("Options and liens", margin.COMMANDS)
main.add_section("Faults", faults.COMMANDS)
main.add_section("Verification", verification.COMMANDS)
main.add_section("Observe", observe.COMMANDS)
main.add_section("Experiments", experiments.COMMANDS)
