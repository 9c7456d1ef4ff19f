"""Options commands: `devnet option open | settle | show` (an option on one rollup
against collateral locked on another, in one bundle) and `devnet lien show |
reclaim` (that collateral)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from devnet.amounts import parse_units
from devnet.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    NODE_OPTION,
    SEQUENCER_OPTION,
    asset_decimals,
    fail,
    handle_errors,
    node_or_fail,
    parse_id,
    read_genesis,
    resolve_sequencer,
    run,
)
from devnet.cli.render import bundle_json, emit_json, print_record, receipt_json
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_reclaim_lien,
    build_settle_option,
    node_clients,
    wait_for_decision,
)
from xrollup.genesis import Genesis
from xrollup.keys import derive_dev_account, encode_address
from xrollup.model import OptionKind
from xrollup.options import compute_payout
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb


@click.group()
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
    udec, qdec = asset_decimals(genesis, underlying), asset_decimals(genesis, quote)
    okind = OptionKind.PUT if kind == "put" else OptionKind.CALL
    coll = None
    if collateral is not None:
        coll = parse_units(collateral, qdec if okind == OptionKind.PUT else udec, "--collateral")
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    nodes = {r: node_or_fail(data_dir, r, None) for r in ("alpha", "beta")}

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
    finish_decision(result, as_json)


def finish_decision(result: dict[str, Any], as_json: bool) -> None:
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
    oid = parse_id(option_id)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    nodes = {r: node_or_fail(data_dir, r, None) for r in ("alpha", "beta")}

    async def go() -> dict[str, Any]:
        async with node_clients(nodes) as clients:
            o = await clients["beta"].option(oid)
            px = await clients["beta"].price(o.underlying, o.quote)
            udec = asset_decimals(genesis, o.underlying)
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
    finish_decision(result, as_json)


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
    node = node_or_fail(data_dir, "beta", node_endpoint)

    async def go() -> npb.OptionPosition:
        async with NodeClient(node) as n:
            return await n.option(parse_id(option_id))

    d = option_json(run(go()), genesis)
    emit_json(d) if as_json else print_record("option", d)


@click.group()
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
    node = node_or_fail(data_dir.resolve(), rollup, node_endpoint)

    async def go() -> npb.Lien:
        async with NodeClient(node) as n:
            return await n.lien(parse_id(lien_id))

    d = lien_json(run(go()))
    emit_json(d) if as_json else print_record("lien", d)


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
    node = node_or_fail(data_dir, rollup, node_endpoint)
    lid = parse_id(lien_id)

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


COMMANDS = (option, lien)
