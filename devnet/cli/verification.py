"""Verification: `devnet check` runs the invariant checker (devnet.checker) over
the running devnet and its load journal."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from devnet import network
from devnet.checker import NodeRef, load_journal, run_checks
from devnet.cli.common import (
    BASE_UNITS_OPTION,
    DATA_DIR_OPTION,
    JOURNAL,
    JSON_OPTION,
    Units,
    fail,
    handle_errors,
    read_genesis,
    read_manifest,
    resolve_sequencer,
    run,
)
from devnet.cli.render import console, emit_json


@click.command()
@DATA_DIR_OPTION
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Load journal of acknowledged ids (default: DIR/journal.jsonl when present).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Catch-up wait.")
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def check(
    data_dir: Path, journal: Path | None, timeout: float, base_units: bool, as_json: bool
) -> None:
    """Verify the invariants: hash chain, decisions (I1, I5), atomicity (I1),
    conservation (I2), replicas (I4) and, with a journal, durability (I3).

    --json gives {"ok", "checks": {name: {"ok", figures..., "violations"}}}; the
    conservation totals (minted, escrowed, liened per asset) are decimal strings,
    or integers of base units with --base-units."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    manifest = read_manifest(data_dir)
    if manifest is None:
        fail(f"no devnet in {data_dir} (run `devnet up`)")
    # Every running replica with --ha ("A,B,C": the copies check compares them).
    sequencer = resolve_sequencer(data_dir, None)
    nodes = [
        NodeRef(p.name, p.rollup or "", p.endpoint)
        for p in manifest.processes
        if p.role == "node" and network.is_running(p)
    ]
    skipped = [p.name for p in manifest.processes if p.role == "node" and not network.is_running(p)]
    journal_path = journal or data_dir / JOURNAL
    records = load_journal(journal_path) if journal_path.exists() else None
    report = run(run_checks(sequencer, nodes, genesis, records, timeout))
    if as_json:
        doc = report.to_json()
        for asset, totals in doc["checks"].get("conservation", {}).get("assets", {}).items():
            totals.update({k: units.json(v, asset) for k, v in totals.items()})
        emit_json({**doc, "nodes_skipped": skipped})
    else:
        for c in report.checks:
            mark = "[green]ok  [/green]" if c.ok else "[red]FAIL[/red]"
            figures = ", ".join(f"{k} {v}" for k, v in c.figures.items() if k != "assets")
            console.print(f"{mark} {c.name:<13} {figures}")
            for v in c.violations:
                console.print(f"       [red]{v}[/red]")
        for note in report.notes:
            console.print(f"note: {note}")
        if skipped:
            console.print(f"not checked (down): {', '.join(skipped)}")
        console.print(
            "all invariants hold" if report.ok else "[red]invariant violations found[/red]"
        )
    if not report.ok:
        sys.exit(1)


COMMANDS = (check,)
