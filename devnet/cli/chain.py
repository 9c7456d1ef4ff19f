"""Chain commands: `devnet transfer`, `receipt`, `blocks`, `price` (an oracle
price), `load` (a seeded workload) and `demo` (the option story end to end)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from grpc import aio

from devnet.cli.common import (
    BASE_UNITS_OPTION,
    DATA_DIR_OPTION,
    JOURNAL,
    JSON_OPTION,
    NODE_OPTION,
    SEQUENCER_OPTION,
    Units,
    asset_decimals,
    fail,
    handle_errors,
    node_or_fail,
    parse_account,
    parse_dev_index,
    pick_rollup,
    read_genesis,
    resolve_node,
    resolve_sequencer,
    run,
)
from devnet.cli.render import emit_json, receipt_json
from devnet.demo import run_demo
from devnet.load import run_load
from xrollup.client import Client, NodeClient, build_price_update, build_transfer
from xrollup.genesis import compute_option_rollups
from xrollup.keys import derive_dev_account, derive_oracle_key, encode_address
from xrollup.v1 import types_pb2 as pb


@click.command()
@click.option(
    "--rollup", required=True, metavar="ROLLUP", help="A rollup of genesis to transfer on."
)
@click.option(
    "--from", "from_", required=True, metavar="INDEX", help="Sender: a dev account index."
)
@click.option(
    "--to", required=True, metavar="ACCOUNT", help="Recipient: a dev account index or a 0x address."
)
@click.option(
    "--asset",
    required=True,
    metavar="SYMBOL",
    help="An asset of genesis (the dev genesis: USDC, ETH).",
)
@click.option(
    "--amount",
    required=True,
    metavar="AMOUNT",
    help="In the asset's units, e.g. 2.5 (USDC has 6 decimals, ETH 9); with --base-units,"
    " an integer of base units.",
)
@click.option("--wait", is_flag=True, help="Wait for the receipt from the rollup's node.")
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def transfer(
    rollup: str,
    from_: str,
    to: str,
    asset: str,
    amount: str,
    wait: bool,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Sign a transfer with a dev key and submit it; exit 1 if it failed.

    --json gives the amount as a decimal string ("2.5"), or as an integer of base
    units with --base-units; heights and indexes are integers."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    rollup = pick_rollup(genesis, rollup, "--rollup")
    value = units.parse_positive(amount, asset, "--amount")
    signer = derive_dev_account(parse_dev_index(from_, "--from"))
    recipient = parse_account(to, "--to")
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    node = node_or_fail(data_dir, rollup, node_endpoint) if wait else None

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c:
            expiry = await c.expiry()
            tx = build_transfer(signer, rollup, recipient, asset, value, expiry, genesis.chain_id)
            ack = await c.submit_tx(tx)
        result: dict[str, Any] = {
            "id": ack.id.hex(),
            "rollup": rollup,
            "from": encode_address(signer.address),
            "to": encode_address(recipient),
            "asset": asset,
            "amount": units.json(value, asset),
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
        click.echo(f"transfer {units.text(value, asset)} on {rollup}: id {result['id']}")
        click.echo(f"ordered at height {result['ordered_height']} (index {result['index']})")
        if receipt is not None:
            why = f": {receipt['reason']}" if receipt["reason"] else ""
            click.echo(
                f"executed on {rollup} at height {receipt['height']}: {receipt['status']}{why}"
            )
    if receipt is not None and receipt["status"] != "ok":
        sys.exit(1)


@click.command()
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


@click.command()
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


@click.command()
@click.option("--base", default="ETH", show_default=True, help="The asset priced.")
@click.option("--quote", default="USDC", show_default=True, help="The asset it is priced in.")
@click.option(
    "--price",
    "price_text",
    required=True,
    metavar="PRICE",
    help="Quote units per whole base unit, e.g. 3000.5; with --base-units, an integer of"
    " the quote's base units.",
)
@click.option(
    "--rollup",
    default=None,
    metavar="ROLLUP",
    help="A rollup of genesis to post the price on (default: the option rollup, the last"
    " rollup of genesis).",
)
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def price(
    base: str,
    quote: str,
    price_text: str,
    rollup: str | None,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Post an oracle price signed by the dev oracle key, and wait until applied.

    --json gives the price as a decimal string of quote units, or an integer of
    the quote's base units with --base-units."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    # the rule only without --rollup: a genesis of one rollup has no option rollup
    rollup = pick_rollup(genesis, rollup, "--rollup") or compute_option_rollups(genesis)[0]
    asset_decimals(genesis, base)  # an asset of genesis, or exit 2
    value = units.parse_positive(price_text, quote, "--price")
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    node = node_or_fail(data_dir, rollup, node_endpoint)

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
                "price": units.json(value, quote),
                "receipt": receipt_json(r, rollup),
            }

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"{base}/{quote} = {units.text(value, quote)} on {rollup}"
            f" at height {result['receipt']['height']}: {result['receipt']['status']}"
        )
    if result["receipt"]["status"] != "ok":
        sys.exit(1)


@click.command()
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


@click.command()
@DATA_DIR_OPTION
@JSON_OPTION
@click.option("--expiry-blocks", type=int, default=40, show_default=True)
@handle_errors
def demo(data_dir: Path, as_json: bool, expiry_blocks: int) -> None:
    """The option story end to end on the running devnet; exit 1 if any step misbehaves.

    The option lives on the option rollup (the last rollup of genesis), its
    collateral on the first other one."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    endpoint = resolve_sequencer(data_dir, None)
    nodes = {r: node_or_fail(data_dir, r, None) for r in compute_option_rollups(genesis)}
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not as_json:
            click.echo(line)

    result = run(run_demo(endpoint, nodes, genesis, say, expiry_blocks))
    if as_json:
        emit_json({**result.to_json(), "steps": lines})
    elif result.ok:
        click.echo("demo: every step behaved as stated")
    else:
        click.echo(f"demo: {len(result.failures)} step(s) failed: {'; '.join(result.failures)}")
    if not result.ok:
        sys.exit(1)


COMMANDS = (transfer, receipt, blocks, price, load, demo)
