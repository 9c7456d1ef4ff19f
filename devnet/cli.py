"""`devnet`: the command users type. Lifecycle (up, down, status, logs) and
client commands (accounts, transfer, receipt, blocks). Every subcommand has
--json for scripts and reads endpoints from DIR/devnet.json unless given
--sequencer / --node."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from grpc import aio
from rich.console import Console
from rich.table import Table

from devnet import faults, launcher, network, tamper
from devnet.amounts import format_units, parse_units
from devnet.checker import NodeRef, load_journal, run_checks
from devnet.demo import run_demo
from devnet.load import run_load
from devnet.manifest import GENESIS, Manifest, load_manifest
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_reclaim_lien,
    build_settle_option,
    build_transfer,
    node_clients,
    wait_for_decision,
)
from xrollup.errors import XrollupError
from xrollup.genesis import DEV_ACCOUNT_COUNT, Genesis, decode_genesis, dev_genesis
from xrollup.keys import (
    Address,
    decode_address,
    derive_dev_account,
    derive_oracle_key,
    encode_address,
)
from xrollup.model import OptionKind
from xrollup.options import compute_payout
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

# Outside a terminal (pipes, CI logs) rich would wrap at 80 columns; tables need more.
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)
T = TypeVar("T")
JOURNAL = "journal.jsonl"

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".devnet"),
    show_default=True,
    help="The devnet's directory (devnet.json, genesis, data, logs).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
SEQUENCER_OPTION = click.option(
    "--sequencer",
    "sequencer_endpoint",
    default=None,
    help="Sequencer HOST:PORT (default: from devnet.json).",
)
NODE_OPTION = click.option(
    "--node",
    "node_endpoint",
    default=None,
    help="Rollup node HOST:PORT (default: the rollup's node from devnet.json).",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    sys.exit(code)


def handle_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn gRPC and domain errors into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except aio.AioRpcError as e:
            fail(f"{e.code().name}: {e.details()}")
        except XrollupError as e:
            fail(str(e), code=2)
        except (launcher.LaunchError, TimeoutError) as e:
            fail(str(e) or type(e).__name__)

    return wrapper


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def read_genesis(data_dir: Path) -> Genesis:
    path = data_dir / GENESIS
    return decode_genesis(path.read_text()) if path.exists() else dev_genesis()


def _manifest(data_dir: Path) -> Manifest | None:
    return load_manifest(data_dir.resolve())


def resolve_sequencer(data_dir: Path, endpoint: str | None) -> str:
    if endpoint:
        return endpoint
    manifest = _manifest(data_dir)
    rec = manifest.get("sequencer") if manifest else None
    if rec is None:
        fail(f"no devnet in {data_dir} (run `devnet up`, or pass --sequencer HOST:PORT)")
        raise AssertionError  # unreachable
    return rec.endpoint


def resolve_node(data_dir: Path, rollup: str, endpoint: str | None) -> str | None:
    """The endpoint of `rollup`'s primary node (a running replica if it is down)."""
    if endpoint:
        return endpoint
    manifest = _manifest(data_dir)
    if manifest is None:
        return None
    candidates = [p for p in manifest.processes if p.role == "node" and p.rollup == rollup]
    for rec in candidates:
        if network.is_running(rec):
            return rec.endpoint
    return None


def parse_account(text: str) -> Address:
    """A dev account index (0..) or a 0x address."""
    if text.isdigit():
        return derive_dev_account(int(text)).address
    return decode_address(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A shared-sequencer rollup devnet on one machine.

    `devnet up` starts a sequencer and rollups alpha and beta; `devnet down` stops them."""


# ---------------------------------------------------------------- lifecycle


@main.command()
@DATA_DIR_OPTION
@click.option("--replicas", is_flag=True, help="Also run a replica node of each rollup.")
@click.option(
    "--block-interval-ms", type=int, default=None, help="Block interval (default: genesis, 20 ms)."
)
@click.option(
    "--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for health."
)
@JSON_OPTION
@handle_errors
def up(
    data_dir: Path, replicas: bool, block_interval_ms: int | None, timeout: float, as_json: bool
) -> None:
    """Start the sequencer and a node per rollup in the background; wait until healthy."""
    data_dir = data_dir.resolve()
    manifest = load_manifest(data_dir)
    running = network.running_processes(manifest)
    if manifest is not None and running:
        names = ", ".join(p.name for p in running)
        if as_json:
            emit_json({"already_running": True, **manifest.to_json()})
        else:
            console.print(
                f"devnet in {data_dir} is already running ({names}); `devnet down` stops it"
            )
        return
    manifest = network.start_devnet(data_dir, replicas, block_interval_ms, timeout)
    genesis = read_genesis(data_dir)
    accs = accounts_from_genesis(genesis)
    if as_json:
        emit_json({"already_running": False, **manifest.to_json(), "accounts": accs})
        return
    console.print(f"[green]devnet up[/green] in {data_dir} (chain {genesis.chain_id})")
    for p in manifest.processes:
        what = f"rollup {p.rollup}" if p.role == "node" else "shared sequencer"
        console.print(f"  {p.name:<14} {p.endpoint:<16} pid {p.pid:<7} {what:<17} log {p.log}")
    console.print()
    print_accounts(genesis, accs, "dev accounts (genesis)")
    console.print(
        "\nDev account keys derive from the public dev seed in xrollup/keys.py:"
        " never use them for real funds. `devnet down` stops everything."
    )


@main.command()
@DATA_DIR_OPTION
@click.option("--wipe", is_flag=True, help="Also delete the devnet's data directory.")
@JSON_OPTION
@handle_errors
def down(data_dir: Path, wipe: bool, as_json: bool) -> None:
    """Stop the devnet's processes by pid (SIGTERM, then SIGKILL); keep data unless --wipe."""
    data_dir = data_dir.resolve()
    stopped = network.stop_devnet(data_dir)
    if wipe and data_dir.exists():
        shutil.rmtree(data_dir)
    if as_json:
        emit_json({"stopped": stopped, "wiped": wipe})
    else:
        what = ", ".join(stopped) if stopped else "nothing was running"
        console.print(f"devnet down: {what}" + (f"; wiped {data_dir}" if wipe else ""))


async def _sequencer_status(endpoint: str) -> dict[str, Any]:
    async with Client(endpoint) as c:
        try:
            s = await c.status(timeout=2.0)
            return {"height": s.height, "head_hash": s.head_hash.hex(), "pending": s.pending}
        except aio.AioRpcError:
            return {"height": None}


async def _node_status(endpoint: str) -> dict[str, Any]:
    async with NodeClient(endpoint) as c:
        try:
            s = await c.status(timeout=2.0)
            refusal = (
                {
                    "code": npb.Refusal.Code.Name(s.refusal.code).removeprefix("CODE_"),
                    "height": s.refusal.height,
                    "message": s.refusal.message,
                }
                if s.HasField("refusal")
                else None
            )
            evidence = (
                {
                    "height": s.equivocation.height,
                    "first": s.equivocation.first.hash.hex(),
                    "second": s.equivocation.second.hash.hex(),
                }
                if s.HasField("equivocation")
                else None
            )
            return {
                "height": s.applied_height,
                "state_root": s.state_root.hex(),
                "lag": s.lag,
                "connected": s.connected,
                "refusal": refusal,
                "refused_blocks": s.refused_blocks,
                "equivocation": evidence,
                "stream_error": s.stream_error or None,
            }
        except aio.AioRpcError:
            return {"height": None, "state_root": None}


def collect_status(manifest: Manifest) -> list[dict[str, Any]]:
    rows = []
    for rec in manifest.processes:
        alive = network.is_running(rec)
        healthy = alive and (rec.role == network.PROXY or launcher.check_health(rec.endpoint))
        row: dict[str, Any] = {
            "name": rec.name,
            "role": rec.role,
            "rollup": rec.rollup,
            "pid": rec.pid if alive else None,
            "endpoint": rec.endpoint,
            "running": alive,
            "paused": alive and launcher.process_state(rec.pid) == "paused",
            "healthy": healthy,
            "height": None,
            "state_root": None,
            "log": rec.log,
        }
        if healthy and rec.role == "sequencer":
            row.update(run(_sequencer_status(rec.endpoint)))
        elif healthy and rec.role == "node":
            row.update(run(_node_status(rec.endpoint)))
        rows.append(row)
    return rows


@main.command()
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def status(data_dir: Path, as_json: bool) -> None:
    """Each process: role, rollup, pid, endpoint, health, height, state root."""
    data_dir = data_dir.resolve()
    manifest = load_manifest(data_dir)
    rows = collect_status(manifest) if manifest else []
    if as_json:
        running = any(r["running"] for r in rows)
        emit_json({"data_dir": str(data_dir), "running": running, "processes": rows})
        return
    if not rows:
        console.print(f"no devnet in {data_dir}")
        return
    table = Table(
        "name", "role", "rollup", "pid", "endpoint", "health", "height", "state root", "note"
    )
    for r in rows:
        if r["healthy"]:
            health = "[green]SERVING[/green]"
        else:
            health = "[red]down[/red]"
            if r["running"]:
                health = (
                    "[yellow]paused[/yellow]" if r["paused"] else "[yellow]not serving[/yellow]"
                )
        table.add_row(
            r["name"],
            r["role"],
            r["rollup"] or "-",
            str(r["pid"] or "-"),
            r["endpoint"],
            health,
            "-" if r["height"] is None else str(r["height"]),
            "-" if r["state_root"] is None else r["state_root"][:16],
            _status_note(r),
        )
    console.print(table)


def _status_note(r: dict[str, Any]) -> str:
    note = _node_note(r)
    color = "red" if r.get("refusal") or r.get("equivocation") else "yellow"
    return f"[{color}]{note}[/{color}]" if note else ""


@main.command()
@click.argument("name")
@DATA_DIR_OPTION
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="Lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@handle_errors
def logs(name: str, data_dir: Path, lines: int, follow: bool) -> None:
    """Print a process's log (NAME: sequencer, alpha, beta, alpha-replica, ...)."""
    data_dir = data_dir.resolve()
    manifest = load_manifest(data_dir)
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


# ---------------------------------------------------------------- client commands


def accounts_from_genesis(genesis: Genesis) -> list[dict[str, Any]]:
    out = []
    for i in range(DEV_ACCOUNT_COUNT):
        addr = derive_dev_account(i).address
        balances: dict[str, dict[str, str]] = {}
        for a in genesis.allocations:
            if a.address == addr:
                balances.setdefault(a.rollup, {})[a.asset] = str(a.amount)
        out.append({"index": i, "address": encode_address(addr), "balances": balances})
    return out


async def accounts_from_nodes(genesis: Genesis, nodes: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    async with node_clients(nodes) as clients:
        for i in range(DEV_ACCOUNT_COUNT):
            addr = derive_dev_account(i).address
            balances = {}
            for rollup, c in clients.items():
                b = await c.balances(addr)
                balances[rollup] = {asset: str(amount) for asset, amount in b.items()}
            out.append({"index": i, "address": encode_address(addr), "balances": balances})
    return out


def print_accounts(genesis: Genesis, accounts: list[dict[str, Any]], title: str) -> None:
    columns = [(r, a.symbol, a.decimals) for r in genesis.rollup_names for a in genesis.assets]
    table = Table("#", "address", *(f"{r} {s}" for r, s, _ in columns), title=title)
    for acc in accounts:
        cells = [format_units(int(acc["balances"].get(r, {}).get(s, 0)), d) for r, s, d in columns]
        table.add_row(str(acc["index"]), acc["address"], *cells)
    console.print(table)


@main.command()
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def accounts(data_dir: Path, as_json: bool) -> None:
    """The dev accounts: index, address, balances per rollup and asset.

    Live from the nodes when the devnet runs, otherwise from genesis."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    nodes = {r: resolve_node(data_dir, r, None) for r in genesis.rollup_names}
    live = {r: ep for r, ep in nodes.items() if ep is not None}
    if len(live) == len(nodes):
        source, accs = "nodes", run(accounts_from_nodes(genesis, live))
    else:
        source, accs = "genesis", accounts_from_genesis(genesis)
    if as_json:
        emit_json({"source": source, "accounts": accs})
    else:
        print_accounts(genesis, accs, f"dev accounts ({source})")


def receipt_json(r: Any, rollup: str) -> dict[str, Any]:
    return {
        "rollup": rollup,
        "status": "ok" if r.ok else "failed",
        "reason": r.reason or None,
        "height": r.height,
        "index": r.index,
    }


@main.command()
@click.option("--rollup", required=True, help="Rollup to transfer on (alpha, beta).")
@click.option("--from", "from_", required=True, help="Sender: a dev account index.")
@click.option("--to", required=True, help="Recipient: a dev account index or a 0x address.")
@click.option("--asset", required=True, help="Asset symbol (USDC, ETH).")
@click.option(
    "--amount", required=True, type=int, help="Amount in base units (USDC: 6 decimals, ETH: 9)."
)
@click.option("--wait", is_flag=True, help="Wait for the receipt from the rollup's node.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def transfer(
    rollup: str,
    from_: str,
    to: str,
    asset: str,
    amount: int,
    wait: bool,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    as_json: bool,
) -> None:
    """Sign a transfer with a dev key and submit it; exit 1 if it failed."""
    data_dir = data_dir.resolve()
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    if not from_.isdigit():
        fail("--from must be a dev account index (the CLI holds only dev keys)", code=2)
    if amount <= 0:
        fail("--amount must be a positive integer of base units", code=2)
    signer = derive_dev_account(int(from_))
    recipient = parse_account(to)
    genesis = read_genesis(data_dir)
    node = resolve_node(data_dir, rollup, node_endpoint) if wait else None
    if wait and node is None:
        fail(f"--wait: no running node for rollup {rollup!r} (pass --node HOST:PORT)")

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c:
            expiry = await c.expiry()
            tx = build_transfer(signer, rollup, recipient, asset, amount, expiry, genesis.chain_id)
            ack = await c.submit_tx(tx)
        result: dict[str, Any] = {
            "id": ack.id.hex(),
            "rollup": rollup,
            "from": encode_address(signer.address),
            "to": encode_address(recipient),
            "asset": asset,
            "amount": str(amount),
            "ordered_height": ack.height,
            "index": ack.index,
            "duplicate": ack.duplicate,
            "receipt": None,
        }
        if node is not None:
            async with NodeClient(node) as n:
                result["receipt"] = receipt_json(await n.wait_for_receipt(ack.id), rollup)
        return result

    result = run(go())
    receipt = result["receipt"]
    if as_json:
        emit_json(result)
    else:
        click.echo(f"id {result['id']}")
        click.echo(f"ordered at height {result['ordered_height']} (index {result['index']})")
        if receipt is not None:
            why = f": {receipt['reason']}" if receipt["reason"] else ""
            click.echo(
                f"executed on {rollup} at height {receipt['height']}: {receipt['status']}{why}"
            )
    if receipt is not None and receipt["status"] != "ok":
        sys.exit(1)


@main.command()
@click.argument("entry_id")
@DATA_DIR_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def receipt(entry_id: str, data_dir: Path, node_endpoint: str | None, as_json: bool) -> None:
    """The receipt of a transaction id on every rollup that executed it."""
    data_dir = data_dir.resolve()
    try:
        raw = bytes.fromhex(entry_id.removeprefix("0x"))
    except ValueError:
        fail(f"{entry_id!r} is not a hex id", code=2)
        raise AssertionError from None
    genesis = read_genesis(data_dir)
    targets = (
        {"node": node_endpoint}
        if node_endpoint
        else {r: ep for r in genesis.rollup_names if (ep := resolve_node(data_dir, r, None))}
    )
    if not targets:
        fail("no running node to ask (run `devnet up`, or pass --node HOST:PORT)")

    async def go() -> list[dict[str, Any]]:
        found = []
        for rollup, ep in targets.items():
            async with NodeClient(ep) as n:
                try:
                    found.append(receipt_json(await n.receipt(raw), rollup))
                except aio.AioRpcError as e:
                    if e.code().name != "NOT_FOUND":
                        raise
        return found

    found = run(go())
    if as_json:
        emit_json({"id": raw.hex(), "receipts": found})
    elif not found:
        fail(f"no receipt for {raw.hex()} on {', '.join(targets)}")
    else:
        for r in found:
            why = f": {r['reason']}" if r["reason"] else ""
            click.echo(f"{r['rollup']}: {r['status']} at height {r['height']}{why}")
    if not found:
        sys.exit(1)


def block_summary(b: pb.Block) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for e in b.entries:
        k = e.WhichOneof("kind") or "?"
        kinds[k] = kinds.get(k, 0) + 1
    return {
        "height": b.header.height,
        "hash": b.hash.hex(),
        "parent_hash": b.header.parent_hash.hex(),
        "timestamp_ms": b.header.timestamp_ms,
        "entries": len(b.entries),
        "kinds": kinds,
    }


@main.command()
@click.option(
    "--from", "from_height", type=int, default=None, help="First height (default: the last 20)."
)
@click.option("--follow", is_flag=True, help="Keep printing new blocks (Ctrl-C to stop).")
@click.option("--non-empty", is_flag=True, help="Only blocks with entries.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@JSON_OPTION
@handle_errors
def blocks(
    from_height: int | None,
    follow: bool,
    non_empty: bool,
    data_dir: Path,
    sequencer_endpoint: str | None,
    as_json: bool,
) -> None:
    """Print blocks from the sequencer (one JSON object per line with --json)."""
    endpoint = resolve_sequencer(data_dir.resolve(), sequencer_endpoint)

    def show(b: pb.Block) -> None:
        s = block_summary(b)
        if non_empty and not s["entries"]:
            return
        if as_json:
            click.echo(json.dumps(s))
        else:
            kinds = " ".join(f"{k}={n}" for k, n in sorted(s["kinds"].items()))
            click.echo(f"{s['height']:>8}  {s['hash'][:16]}  entries {s['entries']:>5}  {kinds}")

    async def go() -> None:
        async with Client(endpoint) as c:
            head = (await c.status()).height
            start = from_height if from_height is not None else max(1, head - 19)
            if follow:
                async for b in c.follow(start):
                    show(b)
            else:
                for h in range(max(1, start), head + 1):
                    show(await c.get_block(h))

    with contextlib.suppress(KeyboardInterrupt):
        run(go())


# ---------------------------------------------------------------- oracle, options, bundles


def _asset_decimals(genesis: Genesis, symbol: str) -> int:
    asset = genesis.get_asset(symbol)
    if asset is None:
        fail(f"unknown asset {symbol!r} (known: {', '.join(a.symbol for a in genesis.assets)})", 2)
        raise AssertionError
    return asset.decimals


def _parse_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        fail(f"{text!r} is not a 32-byte hex id", code=2)
    return raw


def _node_or_fail(data_dir: Path, rollup: str, endpoint: str | None) -> str:
    ep = resolve_node(data_dir, rollup, endpoint)
    if ep is None:
        fail(f"no running node for rollup {rollup!r} (run `devnet up`, or pass --node HOST:PORT)")
        raise AssertionError
    return ep


@main.command()
@click.option("--base", default="ETH", show_default=True)
@click.option("--quote", default="USDC", show_default=True)
@click.option(
    "--price", "price_text", required=True, help="Quote units per whole base unit, e.g. 3000.5"
)
@click.option("--rollup", default="beta", show_default=True, help="Rollup to post the price on.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def price(
    base: str,
    quote: str,
    price_text: str,
    rollup: str,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    as_json: bool,
) -> None:
    """Post an oracle price signed by the dev oracle key, and wait until applied."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    value = parse_units(price_text, _asset_decimals(genesis, quote), "--price")
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    node = _node_or_fail(data_dir, rollup, node_endpoint)

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c, NodeClient(node) as n:
            tx = build_price_update(
                derive_oracle_key(), rollup, base, quote, value, await c.expiry(), genesis.chain_id
            )
            ack = await c.submit_tx(tx)
            r = await n.wait_for_receipt(ack.id)
            return {
                "id": ack.id.hex(),
                "base": base,
                "quote": quote,
                "price": str(value),
                "receipt": receipt_json(r, rollup),
            }

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"{base}/{quote} = {price_text} on {rollup} at height {result['receipt']['height']}:"
            f" {result['receipt']['status']}"
        )
    if result["receipt"]["status"] != "ok":
        sys.exit(1)


@main.group()
def option() -> None:
    """Open, settle and show options (collateral on alpha, option on beta)."""


def option_json(o: npb.OptionPosition, genesis: Genesis) -> dict[str, Any]:
    return {
        "id": o.id.hex(),
        "kind": "put" if o.kind == pb.OPTION_KIND_PUT else "call",
        "underlying": o.underlying,
        "quote": o.quote,
        "strike": str(o.strike),
        "size": str(o.size),
        "expiry_height": o.expiry_height,
        "premium": str(o.premium),
        "writer": encode_address(o.writer),
        "holder": encode_address(o.holder),
        "collateral_rollup": o.collateral_rollup,
        "collateral_asset": o.collateral_asset,
        "collateral": str(o.collateral),
        "status": npb.OptionPosition.Status.Name(o.status).removeprefix("STATUS_").lower(),
        "opened_height": o.opened_height,
        "settled_height": o.settled_height or None,
        "settle_price": str(o.settle_price) if o.settled_height else None,
        "payout": str(o.payout) if o.settled_height else None,
    }


def lien_json(lien: npb.Lien) -> dict[str, Any]:
    return {
        "id": lien.id.hex(),
        "owner": encode_address(lien.owner),
        "asset": lien.asset,
        "amount": str(lien.amount),
        "controller_rollup": lien.controller_rollup,
        "controller_position": lien.controller_position.hex(),
        "status": npb.Lien.Status.Name(lien.status).removeprefix("STATUS_").lower(),
        "locked_height": lien.locked_height,
        "released_height": lien.released_height or None,
        "paid_out": str(lien.paid_out) if lien.released_height else None,
        "payee": encode_address(lien.payee) if lien.payee else None,
        "option_expiry_height": lien.option_expiry_height,
        "reclaimable_height": lien.reclaimable_height,
    }


def bundle_json(records: dict[str, npb.BundleRecord]) -> dict[str, Any]:
    statuses = {
        r: npb.BundleRecord.Status.Name(x.status).removeprefix("STATUS_").lower()
        for r, x in records.items()
    }
    overall = "unknown"
    if statuses:
        values = set(statuses.values())
        overall = values.pop() if len(values) == 1 else "pending"
    return {
        "status": overall,
        "rollups": {
            r: {
                "status": statuses[r],
                "vote": "yes" if x.vote else "no",
                "reason": x.reason or None,
                "prepare_height": x.prepare_height,
                "decision_height": x.decision_height or None,
                "legs": [
                    {"index": leg.index, "ok": leg.ok, "reason": leg.reason or None}
                    for leg in x.legs
                ],
            }
            for r, x in records.items()
        },
    }


def _print_record(title: str, d: dict[str, Any]) -> None:
    table = Table("field", "value", title=title, show_header=False)
    for k, v in d.items():
        table.add_row(k, "-" if v is None else str(v))
    console.print(table)


@option.command("open")
@click.option("--writer", required=True, help="Dev account index of the writer (locks collateral).")
@click.option("--holder", required=True, help="Dev account index of the holder (pays the premium).")
@click.option("--kind", type=click.Choice(["put", "call"]), required=True)
@click.option("--strike", required=True, help="Quote units per whole underlying, e.g. 2800.")
@click.option("--size", required=True, help="Underlying units, e.g. 2 (ETH).")
@click.option("--premium", required=True, help="Quote units, e.g. 50.")
@click.option(
    "--expiry-blocks",
    type=int,
    default=100,
    show_default=True,
    help="Option expiry, blocks from now.",
)
@click.option(
    "--collateral", default=None, help="Collateral to lock (default: what the margin rule needs)."
)
@click.option("--underlying", default="ETH", show_default=True)
@click.option("--quote", default="USDC", show_default=True)
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@JSON_OPTION
@handle_errors
def option_open(
    writer: str,
    holder: str,
    kind: str,
    strike: str,
    size: str,
    premium: str,
    expiry_blocks: int,
    collateral: str | None,
    underlying: str,
    quote: str,
    data_dir: Path,
    sequencer_endpoint: str | None,
    as_json: bool,
) -> None:
    """Write an option on beta against collateral locked on alpha, in one bundle."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    udec, qdec = _asset_decimals(genesis, underlying), _asset_decimals(genesis, quote)
    okind = OptionKind.PUT if kind == "put" else OptionKind.CALL
    coll = None
    if collateral is not None:
        coll = parse_units(collateral, qdec if okind == OptionKind.PUT else udec, "--collateral")
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    nodes = {r: _node_or_fail(data_dir, r, None) for r in ("alpha", "beta")}

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c:
            head = (await c.status()).height
            bundle = build_open_option(
                derive_dev_account(int(writer)),
                derive_dev_account(int(holder)),
                okind,
                parse_units(strike, qdec, "--strike"),
                parse_units(size, udec, "--size"),
                head + expiry_blocks,
                parse_units(premium, qdec, "--premium"),
                head + 1000,
                underlying=underlying,
                quote=quote,
                underlying_decimals=udec,
                collateral=coll,
                chain_id=genesis.chain_id,
            )
            ack = await c.submit_bundle(bundle)
        async with node_clients(nodes) as clients:
            records = await wait_for_decision(clients, ack.id)
        return {"id": ack.id.hex(), "ordered_height": ack.height, **bundle_json(records)}

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"option {result['id']}: {result['status']} (ordered at {result['ordered_height']})"
        )
    _finish_decision(result, as_json)


def _finish_decision(result: dict[str, Any], as_json: bool) -> None:
    """Print each rollup's outcome of a bundle; exit 1 unless it committed."""
    if not as_json:
        for r, rec in result["rollups"].items():
            why = f": {rec['reason']}" if rec["status"] != "committed" and rec["reason"] else ""
            click.echo(f"  {r}: {rec['status']} at height {rec['decision_height']}{why}")
    if result["status"] != "committed":
        sys.exit(1)


@option.command("settle")
@click.argument("option_id")
@click.option("--from", "from_", default="0", show_default=True, help="Dev account that submits.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@JSON_OPTION
@handle_errors
def option_settle(
    option_id: str, from_: str, data_dir: Path, sequencer_endpoint: str | None, as_json: bool
) -> None:
    """Settle an expired option at the oracle price (anyone may)."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    oid = _parse_id(option_id)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    nodes = {r: _node_or_fail(data_dir, r, None) for r in ("alpha", "beta")}

    async def go() -> dict[str, Any]:
        async with node_clients(nodes) as clients:
            o = await clients["beta"].option(oid)
            px = await clients["beta"].price(o.underlying, o.quote)
            udec = _asset_decimals(genesis, o.underlying)
            payout = compute_payout(OptionKind(o.kind), o.strike, o.size, px.price, udec)
            async with Client(endpoint, genesis.chain_id) as c:
                bundle = build_settle_option(
                    derive_dev_account(int(from_)),
                    oid,
                    payout,
                    o.holder,
                    await c.expiry(),
                    option_rollup="beta",
                    collateral_rollup=o.collateral_rollup,
                    chain_id=genesis.chain_id,
                )
                ack = await c.submit_bundle(bundle)
            records = await wait_for_decision(clients, ack.id)
        return {
            "bundle_id": ack.id.hex(),
            "option_id": oid.hex(),
            "price": str(px.price),
            "payout": str(payout),
            **bundle_json(records),
        }

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"settle {result['bundle_id']}: {result['status']}"
            f" (payout {result['payout']} base units)"
        )
    _finish_decision(result, as_json)


@option.command("show")
@click.argument("option_id")
@DATA_DIR_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def option_show(option_id: str, data_dir: Path, node_endpoint: str | None, as_json: bool) -> None:
    """An option position on beta."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    node = _node_or_fail(data_dir, "beta", node_endpoint)

    async def go() -> npb.OptionPosition:
        async with NodeClient(node) as n:
            return await n.option(_parse_id(option_id))

    d = option_json(run(go()), genesis)
    emit_json(d) if as_json else _print_record("option", d)


@main.group()
def lien() -> None:
    """Liens: collateral locked on one rollup for a position on another."""


@lien.command("show")
@click.argument("lien_id")
@click.option("--rollup", default="alpha", show_default=True)
@DATA_DIR_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def lien_show(
    lien_id: str, rollup: str, data_dir: Path, node_endpoint: str | None, as_json: bool
) -> None:
    """A lien (its id is the id of the bundle that opened the option)."""
    node = _node_or_fail(data_dir.resolve(), rollup, node_endpoint)

    async def go() -> npb.Lien:
        async with NodeClient(node) as n:
            return await n.lien(_parse_id(lien_id))

    d = lien_json(run(go()))
    emit_json(d) if as_json else _print_record("lien", d)


@lien.command("reclaim")
@click.argument("lien_id")
@click.option("--from", "from_", required=True, help="The lien's owner: a dev account index.")
@click.option("--rollup", default="alpha", show_default=True, help="The lien's rollup.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@JSON_OPTION
@handle_errors
def lien_reclaim(
    lien_id: str,
    from_: str,
    rollup: str,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    as_json: bool,
) -> None:
    """Take back a lien its option did not settle by expiry + grace (docs/exits.md).

    A plain transaction on the lien's own rollup: it needs neither the option's
    rollup nor the oracle. Exit 1 if the rollup refused it."""
    data_dir = data_dir.resolve()
    if not from_.isdigit():
        fail("--from must be a dev account index (the CLI holds only dev keys)", code=2)
    genesis = read_genesis(data_dir)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    node = _node_or_fail(data_dir, rollup, node_endpoint)
    lid = _parse_id(lien_id)

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c, NodeClient(node) as n:
            tx = build_reclaim_lien(
                derive_dev_account(int(from_)), lid, await c.expiry(), rollup, genesis.chain_id
            )
            ack = await c.submit_tx(tx)
            receipt = receipt_json(await n.wait_for_receipt(ack.id), rollup)
            lien = lien_json(await n.lien(lid)) if receipt["status"] == "ok" else None
            return {"id": ack.id.hex(), "receipt": receipt, "lien": lien}

    result = run(go())
    receipt = result["receipt"]
    if as_json:
        emit_json(result)
    else:
        why = f": {receipt['reason']}" if receipt["reason"] else ""
        click.echo(f"reclaim {result['id']}: {receipt['status']}{why}")
        if result["lien"] is not None:
            click.echo(f"lien {result['lien']['id']}: {result['lien']['status']}")
    if receipt["status"] != "ok":
        sys.exit(1)


@main.group()
def bundle() -> None:
    """Cross-rollup bundles."""


@bundle.command("status")
@click.argument("bundle_id")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def bundle_status(bundle_id: str, data_dir: Path, as_json: bool) -> None:
    """Pending, committed or aborted, with each rollup's vote, legs and heights."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    bid = _parse_id(bundle_id)
    nodes = {r: ep for r in genesis.rollup_names if (ep := resolve_node(data_dir, r, None))}

    async def go() -> dict[str, npb.BundleRecord]:
        found = {}
        for r, ep in nodes.items():
            async with NodeClient(ep) as n:
                try:
                    found[r] = await n.bundle(bid)
                except aio.AioRpcError as e:
                    if e.code().name != "NOT_FOUND":
                        raise
        return found

    records = run(go())
    if not records:
        fail(f"no rollup knows bundle {bid.hex()} (not ordered yet, or not applied)")
    d = {"id": bid.hex(), **bundle_json(records)}
    if as_json:
        emit_json(d)
        return
    click.echo(f"bundle {d['id']}: {d['status']}")
    for r, rec in d["rollups"].items():
        click.echo(
            f"  {r}: {rec['status']}, voted {rec['vote']} at height {rec['prepare_height']},"
            f" decided at {rec['decision_height'] or '-'}"
            + (f": {rec['reason']}" if rec["reason"] else "")
        )
        for leg in rec["legs"]:
            click.echo(
                f"    leg {leg['index']}: {'ok' if leg['ok'] else 'refused: ' + str(leg['reason'])}"
            )


@main.command()
@click.option("--seed", type=int, default=None, help="Workload seed (default: random, printed).")
@click.option("--count", type=int, default=1000, show_default=True, help="Operations to submit.")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Operations per second (default: as fast as --window allows).",
)
@click.option("--window", type=int, default=32, show_default=True, help="Submissions in flight.")
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Per operation, retries included.",
)
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@JSON_OPTION
@handle_errors
def load(
    seed: int | None,
    count: int,
    rate: float | None,
    window: int,
    timeout: float,
    data_dir: Path,
    sequencer_endpoint: str | None,
    as_json: bool,
) -> None:
    """A seeded mixed workload (transfers, option opens and settlements, prices,
    invalid submissions) that retries through faults with the same ids and
    journals every acknowledgement to DIR/journal.jsonl."""
    data_dir = data_dir.resolve()
    if count <= 0 or count > 10_000_000:
        fail("--count must be within 1..10000000", code=2)
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    if not as_json:
        click.echo(f"load: seed {seed}, {count} operations (replay with --seed {seed})")
    genesis = read_genesis(data_dir)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    summary = run(
        run_load(endpoint, genesis, seed, count, rate, window, data_dir / JOURNAL, timeout)
    )
    d = summary.to_json()
    if as_json:
        emit_json(d)
    else:
        for k, v in d.items():
            click.echo(f"  {k:<20} {v}")
    if summary.gave_up or summary.unexpected_refusals:
        sys.exit(1)


@main.command()
@DATA_DIR_OPTION
@JSON_OPTION
@click.option("--expiry-blocks", type=int, default=40, show_default=True)
@handle_errors
def demo(data_dir: Path, as_json: bool, expiry_blocks: int) -> None:
    """The option story end to end on the running devnet; exit 1 if any step misbehaves."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    endpoint = resolve_sequencer(data_dir, None)
    a, b = _node_or_fail(data_dir, "alpha", None), _node_or_fail(data_dir, "beta", None)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not as_json:
            click.echo(line)

    result = run(run_demo(endpoint, a, b, genesis, say, expiry_blocks))
    if as_json:
        emit_json({**result.to_json(), "steps": lines})
    elif result.ok:
        click.echo("demo: every step behaved as stated")
    else:
        click.echo(f"demo: {len(result.failures)} step(s) failed: {'; '.join(result.failures)}")
    if not result.ok:
        sys.exit(1)


# ---------------------------------------------------------------- faults


def _fault_command(verb: str, action: Callable[[Path, str], Any], doc: str) -> None:
    @main.command(verb, help=doc)
    @click.argument("name")
    @DATA_DIR_OPTION
    @JSON_OPTION
    @handle_errors
    def command(name: str, data_dir: Path, as_json: bool) -> None:
        action(data_dir.resolve(), name)
        if as_json:
            emit_json({"fault": verb, "name": name})
        else:
            click.echo(f"{verb} {name}")


_fault_command("kill", faults.kill, "SIGKILL a process (NAME from `devnet status`).")
_fault_command("pause", faults.pause, "SIGSTOP a process.")
_fault_command("resume", faults.resume, "SIGCONT a paused process.")
_fault_command(
    "partition", faults.partition, "Cut a node off from the sequencer (through the proxy)."
)


@main.command()
@click.argument("mode", type=click.Choice(tamper.MODES))
@click.argument("name")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def byzantine(mode: str, name: str, data_dir: Path, as_json: bool) -> None:
    """Feed node NAME a byzantine block stream through the proxy until `devnet heal NAME`.

    \b
    corrupt         one signature byte of every signed entry flipped, header kept
                    (the node refuses: BAD_COMMITMENT)
    forge-block     blocks re-sealed with a key that is not the sequencer's (BAD_SIGNATURE)
    forge-decision  validly signed blocks with a commit the logged votes do not give
                    (BAD_DECISION)
    equivocate      a second validly signed block for each height: the node keeps the
                    evidence and stops following until `devnet restart NAME`;
                    `devnet check` reports it
    """
    faults.byzantine(data_dir.resolve(), name, mode)
    expected = tamper.EXPECTED_REFUSAL[mode]
    if as_json:
        emit_json({"fault": "byzantine", "mode": mode, "name": name, "expected_refusal": expected})
    else:
        click.echo(
            f"byzantine {mode} {name}: expect `devnet faults` to show {name} refusing ({expected})"
        )


@main.command()
@click.argument("name")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def heal(name: str, data_dir: Path, as_json: bool) -> None:
    """Lift a partition, delay or byzantine mode from a node's link."""
    was = faults.heal(data_dir.resolve(), name)
    if as_json:
        emit_json({"fault": "heal", "name": name, "lifted": was})
        return
    click.echo(
        f"heal {name}" + (f" (lifted: {_link_text(was)})" if was else " (nothing was in force)")
    )
    if was.get("byzantine") == tamper.EQUIVOCATE:
        click.echo(
            f"{name} stops following when it holds evidence of equivocation:"
            f" `devnet restart {name}` resumes it (`devnet check` reports the evidence)"
        )


def _link_text(route: dict[str, Any]) -> str:
    """A link's faults in words: "partitioned, delay 100 ms, byzantine corrupt", or "-"."""
    parts = []
    if route.get("partitioned"):
        parts.append("partitioned")
    if route.get("delay_ms"):
        parts.append(f"delay {route['delay_ms']} ms")
    if route.get("byzantine"):
        parts.append(f"byzantine {route['byzantine']}")
    return ", ".join(parts) or "-"


@main.command()
@click.argument("name")
@DATA_DIR_OPTION
@click.option("--timeout", type=float, default=30.0, show_default=True)
@JSON_OPTION
@handle_errors
def restart(name: str, data_dir: Path, timeout: float, as_json: bool) -> None:
    """Restart a process: same data directory, same port; wait until healthy."""
    rec = faults.restart(data_dir.resolve(), name, timeout)
    if as_json:
        emit_json({"fault": "restart", "name": name, "pid": rec.pid, "endpoint": rec.endpoint})
    else:
        click.echo(f"restarted {name}: pid {rec.pid}, {rec.endpoint}")


@main.command()
@click.argument("name")
@click.argument("ms", type=int)
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def delay(name: str, ms: int, data_dir: Path, as_json: bool) -> None:
    """Delay a node's link to the sequencer by MS milliseconds each way (0 clears)."""
    faults.delay(data_dir.resolve(), name, ms)
    if as_json:
        emit_json({"fault": "delay", "name": name, "ms": ms})
    else:
        click.echo(f"delay {name} {ms} ms")


@main.command("faults")
@DATA_DIR_OPTION
@click.option(
    "--clear", is_flag=True, help="Resume paused processes, heal every link (byzantine too)."
)
@JSON_OPTION
@handle_errors
def faults_command(data_dir: Path, clear: bool, as_json: bool) -> None:
    """What is in force: dead or paused processes, partitions, delays, byzantine
    links; and what each running node refuses (GetNodeStatus.refusal) or holds as
    evidence of equivocation."""
    data_dir = data_dir.resolve()
    if clear:
        faults.heal_all(data_dir)
    rows = faults.list_faults(data_dir)
    manifest = load_manifest(data_dir)
    endpoints = {
        r.name: rec.endpoint
        for r in rows
        if r.role == "node" and r.state == "running" and manifest and (rec := manifest.get(r.name))
    }
    refusals = run(_node_refusals(endpoints))
    if as_json:
        emit_json({"processes": [{**r.to_json(), **refusals.get(r.name, {})} for r in rows]})
        return
    table = Table("name", "role", "pid", "state", "link", "node refuses")
    for r in rows:
        color = {"running": "green", "paused": "yellow", "dead": "red"}[r.state]
        table.add_row(
            r.name,
            r.role,
            str(r.pid or "-"),
            f"[{color}]{r.state}[/{color}]",
            _link_text(r.to_json()),
            _node_note(refusals.get(r.name, {})) or "-",
        )
    console.print(table)


async def _node_refusals(endpoints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per node, from GetNodeStatus as `devnet status` reads it: "refusal" ({code,
    height, message} or None), "refused_blocks", "equivocation" ({height, first,
    second} or None), "stream_error"; nothing for a node that does not answer."""
    keys = ("refusal", "refused_blocks", "equivocation", "stream_error")
    results = await asyncio.gather(*(_node_status(e) for e in endpoints.values()))
    return {
        name: {k: r[k] for k in keys if k in r} for name, r in zip(endpoints, results, strict=True)
    }


def _node_note(info: dict[str, Any]) -> str:
    """Why a node stopped or refuses, and at which height, from what _node_status
    read (devnet status and devnet faults): evidence of equivocation, a refused
    block, a block stream that fails."""
    r, ev = info.get("refusal"), info.get("equivocation")
    if r and r["code"] == "EQUIVOCATION":
        return f"stopped: the sequencer equivocated at {r['height']} (evidence kept; restart)"
    parts = []
    if r:
        parts.append(f"refusing block {r['height']}: {r['code']} ({info['refused_blocks']}x)")
    if ev:
        parts.append(f"holds evidence of equivocation at {ev['height']}")
    if info.get("stream_error"):
        parts.append(f"stream: {info['stream_error'][:60]}")
    return "; ".join(parts)


# ---------------------------------------------------------------- verification


@main.command()
@DATA_DIR_OPTION
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Load journal of acknowledged ids (default: DIR/journal.jsonl when present).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Catch-up wait.")
@JSON_OPTION
@handle_errors
def check(data_dir: Path, journal: Path | None, timeout: float, as_json: bool) -> None:
    """Verify the invariants: hash chain, decisions (I1, I5), atomicity (I1),
    conservation (I2), replicas (I4) and, with a journal, durability (I3)."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    manifest = load_manifest(data_dir)
    if manifest is None:
        fail(f"no devnet in {data_dir}")
        raise AssertionError
    seq = manifest.get("sequencer")
    if seq is None or not network.is_running(seq):
        fail("the sequencer is not running; `devnet restart sequencer` or `devnet up` first")
        raise AssertionError
    nodes = [
        NodeRef(p.name, p.rollup or "", p.endpoint)
        for p in manifest.processes
        if p.role == "node" and network.is_running(p)
    ]
    skipped = [p.name for p in manifest.processes if p.role == "node" and not network.is_running(p)]
    journal_path = journal or data_dir / JOURNAL
    records = load_journal(journal_path) if journal_path.exists() else None
    report = run(run_checks(seq.endpoint, nodes, genesis, records, timeout))
    if as_json:
        emit_json({**report.to_json(), "nodes_skipped": skipped})
    else:
        for c in report.checks:
            mark = "[green]ok  [/green]" if c.ok else "[red]FAIL[/red]"
            figures = ", ".join(f"{k} {v}" for k, v in c.figures.items() if k != "assets")
            console.print(f"{mark} {c.name:<13} {figures}")
            for v in c.violations:
                console.print(f"       [red]{v}[/red]")
        if skipped:
            console.print(f"not checked (down): {', '.join(skipped)}")
        console.print(
            "all invariants hold" if report.ok else "[red]invariant violations found[/red]"
        )
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
