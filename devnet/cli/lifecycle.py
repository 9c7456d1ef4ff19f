"""Lifecycle commands: `devnet up` (the dev genesis over --rollups, or --genesis
FILE), `down`, `status`, `logs`, `accounts` (the dev accounts and their balances,
live or from genesis) and `genesis` (the embedded default, a starting file)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from devnet import network
from devnet.cli.common import (
    BASE_UNITS_OPTION,
    DATA_DIR_OPTION,
    JSON_OPTION,
    Units,
    fail,
    handle_errors,
    read_genesis,
    read_manifest,
    resolve_node,
    run,
)
from devnet.cli.render import console, emit_json, styled_health, styled_node_note
from devnet.cli.snapshots import up_from_snapshot
from devnet.status import collect_status, explorer_url
from xrollup.client import node_clients
from xrollup.errors import InvalidInput
from xrollup.genesis import (
    DEV_ACCOUNT_COUNT,
    DEV_ROLLUPS,
    MAX_ROLLUPS,
    Genesis,
    compute_rollup_names,
    decode_genesis,
    dev_genesis,
    encode_genesis,
    validate_dev_keys,
    validate_rollup_name,
)
from xrollup.keys import derive_dev_account, encode_address

ROLLUPS_OPTION = click.option(
    "--rollups",
    "rollups_text",
    default=None,
    metavar="N|NAMES",
    help="The dev genesis over these rollups: a count (4: alpha, beta, gamma, delta, the"
    " Greek letters in order) or names (alpha,beta,gamma). Default: alpha,beta.",
)


def parse_rollups(text: str) -> tuple[str, ...]:
    """--rollups: a count (xrollup.genesis.compute_rollup_names) or names, comma-separated."""
    if text.isascii() and text.isdigit():
        try:
            return compute_rollup_names(int(text))
        except InvalidInput as e:
            fail(f"--rollups {text}: {e}", code=2)
    names = tuple(n.strip() for n in text.split(","))
    if len(names) > MAX_ROLLUPS:
        fail(f"--rollups names {len(names)} rollups: a devnet has 1 to {MAX_ROLLUPS}", code=2)
    for i, name in enumerate(names):
        try:
            validate_rollup_name(name, "--rollups")
        except InvalidInput as e:
            fail(str(e), code=2)
        if name in names[:i]:
            fail(f"--rollups names {name!r} twice", code=2)
    return names


def wanted_genesis(rollups_text: str | None, genesis_file: Path | None) -> Genesis | None:
    """The genesis `up` was asked for: the dev genesis over --rollups, or --genesis
    FILE (valid, and with the dev keys the devnet's processes run with); None for
    neither (the devnet's own genesis, the embedded default on first up)."""
    if rollups_text is not None and genesis_file is not None:
        fail("--rollups and --genesis conflict: a genesis file names its own rollups", code=2)
    if rollups_text is not None:
        return dev_genesis(rollups=parse_rollups(rollups_text))
    if genesis_file is None:
        return None
    try:
        text = genesis_file.read_text()
    except OSError as e:
        fail(f"cannot read genesis {genesis_file}: {e.strerror or e}", code=2)
    try:
        genesis = decode_genesis(text)
        validate_dev_keys(genesis)
    except InvalidInput as e:
        fail(f"{genesis_file}: {e}", code=2)
    return genesis


@click.command()
@DATA_DIR_OPTION
@ROLLUPS_OPTION
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Start from this genesis (rollups, assets, allocations, limits, block interval;"
    " `devnet genesis` prints a starting file), copied to DIR/genesis.json.",
)
@click.option("--replicas", is_flag=True, help="Also run a replica node of each rollup.")
@click.option(
    "--ha",
    is_flag=True,
    help="A sequencer that survives the loss of its machine: a three-member etcd cluster"
    " holds the log and three sequencer replicas elect a leader on it (README, HA"
    " sequencer). A devnet started with --ha keeps it.",
)
@click.option(
    "--block-interval-ms", type=int, default=None, help="Block interval (default: genesis, 20 ms)."
)
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for health."
)
@click.option(
    "--explorer/--no-explorer",
    default=True,
    show_default=True,
    help="Also start the web explorer (its URL is printed).",
)
@click.option(
    "--from-snapshot",
    default=None,
    metavar="NAME|DIR",
    help="Start from a snapshot (`devnet snapshot list`, or a snapshot's directory from"
    " another devnet), at its height; DIR must hold no running devnet.",
)
@click.option(
    "--retain-blocks",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="The sequencer deletes blocks older than the last N once every node and snapshot"
    " is past them; each node keeps the roots, headers and receipts of its last N heights;"
    " 0 keeps everything (default: 10,000; see README, Retention).",
)
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def up(
    data_dir: Path,
    rollups_text: str | None,
    genesis_file: Path | None,
    replicas: bool,
    ha: bool,
    block_interval_ms: int | None,
    timeout: float,
    explorer: bool,
    from_snapshot: str | None,
    retain_blocks: int | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Start the sequencer and a node per rollup of genesis in the background; wait
    until healthy. Prints every process and the dev accounts' genesis balances.

    Genesis is DIR/genesis.json, written on first up from the embedded default, the
    dev genesis over --rollups, or --genesis FILE; a devnet of another genesis is
    refused (`devnet down --wipe` first). --rollups and --genesis conflict."""
    data_dir = data_dir.resolve()
    wanted = wanted_genesis(rollups_text, genesis_file)
    manifest = read_manifest(data_dir)
    running = network.running_processes(manifest)
    if from_snapshot is not None:
        if ha:
            fail("--ha conflicts with --from-snapshot (not built yet)", code=2)
        if retain_blocks is not None:
            fail(
                "--retain-blocks conflicts with --from-snapshot (a restored devnet keeps the"
                " defaults for now)",
                code=2,
            )
        args = (wanted, replicas, block_interval_ms, running, timeout, explorer, as_json)
        up_from_snapshot(data_dir, from_snapshot, *args)
        return
    if manifest is not None and running:
        if wanted is not None:
            network.ensure_genesis(data_dir, wanted)  # refused when it is another genesis
        names = ", ".join(p.name for p in running)
        if as_json:
            emit_json({"already_running": True, **manifest.to_json()})
        else:
            console.print(
                f"devnet in {data_dir} is already running ({names}); `devnet down` stops it"
            )
        return
    manifest = network.start_devnet(
        data_dir, replicas, block_interval_ms, timeout, explorer, wanted, retain_blocks, ha
    )
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    accs = accounts_from_genesis(genesis)
    if as_json:
        accs_json = accounts_json(accs, units)
        emit_json({"already_running": False, **manifest.to_json(), "accounts": accs_json})
        return
    console.print(f"[green]devnet up[/green] in {data_dir} (chain {genesis.chain_id})")
    roles = {
        "sequencer": "sequencer replica" if network.is_ha(manifest) else "shared sequencer",
        "etcd": "etcd member",
        "proxy": "fault proxy",
        "explorer": "web explorer",
    }
    for p in manifest.processes:
        what = f"rollup {p.rollup}" if p.role == "node" else roles.get(p.role, p.role)
        console.print(f"  {p.name:<14} {p.endpoint:<16} pid {p.pid:<7} {what:<17} log {p.log}")
    url = explorer_url(manifest)
    if url is not None:
        console.print(f"\nexplorer: [bold]{url}[/bold]")
    console.print()
    print_accounts(genesis, accs, units, "dev accounts (genesis)")
    console.print(
        "\nDev account keys derive from the public dev seed in xrollup/keys.py:"
        " never use them for real funds. `devnet down` stops everything."
    )


@click.command()
@DATA_DIR_OPTION
@click.option("--wipe", is_flag=True, help="Also delete the devnet's data directory.")
@JSON_OPTION
@handle_errors
def down(data_dir: Path, wipe: bool, as_json: bool) -> None:
    """Stop the devnet's processes by pid (SIGTERM, then SIGKILL); keep data unless --wipe."""
    data_dir = data_dir.resolve()
    read_manifest(data_dir)  # an unreadable devnet.json is one line, here as elsewhere
    stopped = network.stop_devnet(data_dir)
    if wipe and data_dir.exists():
        shutil.rmtree(data_dir)
    if as_json:
        emit_json({"stopped": stopped, "wiped": wipe})
    else:
        what = ", ".join(stopped) if stopped else "nothing was running"
        console.print(f"devnet down: {what}" + (f"; wiped {data_dir}" if wipe else ""))


@click.command()
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def status(data_dir: Path, as_json: bool) -> None:
    """Each process: role, rollup, pid, endpoint, health, height, state root, its
    Prometheus metrics URL; and the explorer's URL (--json: keys "explorer" and,
    per process, "metrics")."""
    data_dir = data_dir.resolve()
    manifest = read_manifest(data_dir)
    rows = collect_status(manifest) if manifest else []
    explorer = explorer_url(manifest)
    if as_json:
        running = any(r["running"] for r in rows)
        emit_json(
            {
                "data_dir": str(data_dir),
                "running": running,
                "explorer": explorer,
                "processes": rows,
            }
        )
        return
    if not rows:
        console.print(f"no devnet in {data_dir}")
        return
    table = Table(
        "name",
        "role",
        "rollup",
        "pid",
        "endpoint",
        "health",
        "height",
        "state root",
        "metrics",
        "note",
    )
    for r in rows:
        table.add_row(
            r["name"],
            r["role"],
            r["rollup"] or "-",
            str(r["pid"] or "-"),
            r["endpoint"],
            styled_health(r),
            "-" if r["height"] is None else str(r["height"]),
            "-" if r["state_root"] is None else r["state_root"][:12],
            r["metrics"] or "-",
            styled_node_note(r),
        )
    console.print(table)
    if explorer:
        console.print(f"explorer: {explorer}")


@click.command()
@click.argument("name")
@DATA_DIR_OPTION
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="Lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@handle_errors
def logs(name: str, data_dir: Path, lines: int, follow: bool) -> None:
    """Print a process's log (NAME as in `devnet status`: sequencer, proxy, a rollup, ...)."""
    data_dir = data_dir.resolve()
    manifest = read_manifest(data_dir)
    rec = manifest.get(name) if manifest else None
    path = Path(rec.log) if rec else data_dir / "logs" / f"{name}.log"
    if not path.exists():
        known = ", ".join(p.name for p in manifest.processes) if manifest else "none"
        fail(f"no log for {name!r} in {data_dir} (processes: {known})")
    with open(path, errors="replace") as f:
        for line in f.readlines()[-lines:] if lines > 0 else []:
            click.echo(line, nl=False)
        with contextlib.suppress(KeyboardInterrupt):
            while follow:
                line = f.readline()
                if line:
                    click.echo(line, nl=False)
                else:
                    time.sleep(0.2)


Balances = dict[str, dict[str, int]]  # rollup -> asset -> base units


def accounts_from_genesis(genesis: Genesis) -> list[tuple[int, Balances]]:
    """Each dev account's index and balances per rollup and asset at genesis."""
    out = []
    for i in range(DEV_ACCOUNT_COUNT):
        addr = derive_dev_account(i).address
        balances: Balances = {}
        for a in genesis.allocations:
            if a.address == addr:
                balances.setdefault(a.rollup, {})[a.asset] = a.amount
        out.append((i, balances))
    return out


async def accounts_from_nodes(nodes: dict[str, str]) -> list[tuple[int, Balances]]:
    """Each dev account's index and live balances on each rollup's node."""
    out = []
    async with node_clients(nodes) as clients:
        for i in range(DEV_ACCOUNT_COUNT):
            addr = derive_dev_account(i).address
            out.append((i, {rollup: await c.balances(addr) for rollup, c in clients.items()}))
    return out


def accounts_json(accounts: list[tuple[int, Balances]], units: Units) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "address": encode_address(derive_dev_account(i).address),
            "balances": {
                rollup: {asset: units.json(amount, asset) for asset, amount in assets.items()}
                for rollup, assets in balances.items()
            },
        }
        for i, balances in accounts
    ]


def print_accounts(
    genesis: Genesis, accounts: list[tuple[int, Balances]], units: Units, title: str
) -> None:
    columns = [(r, a.symbol) for r in genesis.rollup_names for a in genesis.assets]
    table = Table("#", "address", *(f"{r} {s}" for r, s in columns), title=title)
    for i, balances in accounts:
        cells = [units.text(balances.get(r, {}).get(s, 0), s, symbol=False) for r, s in columns]
        table.add_row(str(i), encode_address(derive_dev_account(i).address), *cells)
    console.print(table)


@click.command()
@DATA_DIR_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def accounts(data_dir: Path, base_units: bool, as_json: bool) -> None:
    """The dev accounts: index, address, balances per rollup and asset.

    Live from the nodes when the devnet runs, otherwise from genesis. Balances
    are decimals in each asset's units ("999995.5"; --json: decimal strings), or
    integers of base units with --base-units."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    nodes = {r: resolve_node(data_dir, r, None) for r in genesis.rollup_names}
    live = {r: ep for r, ep in nodes.items() if ep is not None}
    if len(live) == len(nodes):
        source, accs = "nodes", run(accounts_from_nodes(live))
    else:
        source, accs = "genesis", accounts_from_genesis(genesis)
    if as_json:
        emit_json({"source": source, "accounts": accounts_json(accs, units)})
    else:
        print_accounts(genesis, accs, units, f"dev accounts ({source})")


@click.command("genesis")
@ROLLUPS_OPTION
@handle_errors
def genesis_command(rollups_text: str | None) -> None:
    """Print the embedded dev genesis as JSON: a starting file to edit for `devnet up
    --genesis FILE` (rollups, assets and decimals, allocations in base units, limits,
    block interval). Keys are the dev keys, which `devnet up` requires."""
    names = parse_rollups(rollups_text) if rollups_text is not None else DEV_ROLLUPS
    doc = json.loads(encode_genesis(dev_genesis(rollups=names)))
    click.echo(json.dumps({k: doc[k] for k in GENESIS_KEY_ORDER}, indent=2))


# `devnet genesis` prints the keys in reading order (encode_genesis sorts them).
GENESIS_KEY_ORDER = (
    "chain_id",
    "block_interval_ms",
    "rollups",
    "assets",
    "limits",
    "oracle_key",
    "sequencer_key",
    "allocations",
)


COMMANDS = (up, down, status, logs, accounts, genesis_command)
