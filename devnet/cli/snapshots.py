"""Snapshots of the whole devnet (devnet/snapshot.py): `devnet snapshot save NAME`
while it runs, `snapshot list`, `snapshot load NAME` (the devnet goes back to the
snapshot's height), and what `devnet up --from-snapshot` does in a new directory."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from devnet import snapshot as snap
from devnet.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    fail,
    handle_errors,
    read_genesis,
    read_manifest,
    run,
)
from devnet.cli.render import console, emit_json
from devnet.manifest import Manifest, ProcessRecord
from xrollup.genesis import Genesis
from xrollup.snapshots import validate_snapshot_name

CONSISTENT = (
    "A snapshot at height h is the sequencer's log up to h and every node's state"
    " right after applying h, taken while the devnet runs."
)


@click.group(help=f"Save, list and load snapshots of the whole devnet. {CONSISTENT}")
def snapshot() -> None:
    pass


@snapshot.command("save")
@click.argument("name")
@DATA_DIR_OPTION
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds each process may take to reach the height and write its copy.",
)
@JSON_OPTION
@handle_errors
def save(name: str, data_dir: Path, timeout: float, as_json: bool) -> None:
    """Save the running devnet as NAME (1 to 64 of A-Z a-z 0-9 . _ -, not starting
    with '.') in DIR/snapshots/NAME, at a height just past the sequencer's head,
    without stopping it. Every process must be running."""
    data_dir = data_dir.resolve()
    validate_snapshot_name(name)
    genesis = read_genesis(data_dir)
    read_manifest(data_dir)  # an unreadable devnet.json is one line
    info = run(snap.save_snapshot(data_dir, name, genesis, timeout))
    if as_json:
        emit_json({**info.to_json(), "path": str(info.path)})
        return
    console.print(f"[green]snapshot {info.name}[/green] at height {info.height} in {info.path}")
    for p in info.pieces:
        what = "log" if p.role == "sequencer" else f"state root {p.state_root.hex()[:16]}"
        console.print(f"  {p.name:<16} {what:<28} {p.keys:>9} keys")


@snapshot.command("list")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def list_(data_dir: Path, as_json: bool) -> None:
    """The devnet's snapshots: name, height, rollups, processes, size, when saved."""
    data_dir = data_dir.resolve()
    found = snap.list_snapshots(data_dir)
    if as_json:
        emit_json(
            {
                "snapshots": [
                    {**info.to_json(), "path": str(info.path), "bytes": size}
                    for info, size in found
                ]
            }
        )
        return
    if not found:
        console.print(f"no snapshots in {data_dir / 'snapshots'}")
        return
    table = Table("name", "height", "rollups", "processes", "size", "saved")
    for info, size in found:
        saved = datetime.datetime.fromtimestamp(info.created_unix_ms / 1000)
        table.add_row(
            info.name,
            str(info.height),
            ",".join(info.rollups),
            str(len(info.pieces)),
            _size(size),
            saved.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


@snapshot.command("load")
@click.argument("name")
@DATA_DIR_OPTION
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for health."
)
@JSON_OPTION
@handle_errors
def load(name: str, data_dir: Path, timeout: float, as_json: bool) -> None:
    """Return the devnet to snapshot NAME (or a snapshot directory): stop it, put
    every process's copy in place, start it again at the snapshot's height and check
    each node's state root there. Blocks after that height are gone."""
    data_dir = data_dir.resolve()
    read_manifest(data_dir)
    path = snap.resolve_snapshot(data_dir, name)
    manifest, info = snap.restore_snapshot(data_dir, path, timeout)
    _print_restored(data_dir, manifest, info, as_json)


def up_from_snapshot(
    data_dir: Path,
    name: str,
    genesis: Genesis | None,
    replicas: bool,
    block_interval_ms: int | None,
    running: list[ProcessRecord],
    timeout: float,
    explorer: bool,
    as_json: bool,
) -> None:
    """`devnet up --from-snapshot NAME|DIR`: a devnet in `data_dir` (new, or stopped)
    started from a snapshot."""
    if genesis is not None or replicas:
        fail(
            "--from-snapshot conflicts with --rollups, --genesis and --replicas: the"
            " snapshot names its genesis and processes",
            code=2,
        )
    if running:
        fail(
            f"the devnet in {data_dir} is running: `devnet snapshot load {name}` returns it"
            " to a snapshot, or start one in another --data-dir"
        )
    path = snap.resolve_snapshot(data_dir, name)
    manifest, info = snap.restore_snapshot(data_dir, path, timeout, explorer, block_interval_ms)
    _print_restored(data_dir, manifest, info, as_json)


def _print_restored(
    data_dir: Path, manifest: Manifest, info: snap.SnapshotInfo, as_json: bool
) -> None:
    if as_json:
        doc: dict[str, Any] = {**manifest.to_json(), "snapshot": info.to_json()}
        emit_json({"already_running": False, **doc})
        return
    console.print(
        f"[green]devnet up[/green] in {data_dir} from snapshot {info.name} at height"
        f" {info.height} (chain {info.chain_id}): every node's state root there verified"
    )
    for p in manifest.processes:
        what = f"rollup {p.rollup}" if p.role == "node" else p.role
        console.print(f"  {p.name:<16} {p.endpoint:<16} pid {p.pid:<7} {what:<14} log {p.log}")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


COMMANDS = (snapshot,)
