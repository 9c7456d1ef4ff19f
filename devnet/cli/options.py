"""Options commands: `devnet option open | settle | show` (an option on one rollup
against collateral locked on another, in one bundle) and `devnet lien show |
reclaim` (that collateral). Which rollups: --option-rollup, --collateral-rollup,
by default xrollup.genesis.compute_option_rollups (the last rollup of genesis holds the
option, the first other one the collateral)."""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from devnet.cli.common import (
    BASE_UNITS_OPTION,
    DATA_DIR_OPTION,
    JSON_OPTION,
    NODE_OPTION,
    SEQUENCER_OPTION,
    Units,
    asset_decimals,
    fail,
    handle_errors,
    node_or_fail,
    parse_dev_index,
    parse_id,
    pick_rollup,
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
    option_liens,
    wait_for_decision,
)
from xrollup.genesis import Genesis, compute_option_rollups
from xrollup.keys import derive_dev_account, encode_address
from xrollup.model import OptionKind
from xrollup.options import (
    BASIS_POINTS,
    collateral_asset,
    compute_collateral,
    compute_payout,
    split_collateral,
)
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

ROLLUP_RULE = (
    "By default the option lives on the last rollup of genesis and its collateral on the"
    " first other rollup of genesis."
)
AMOUNTS = (
    "Amounts are decimals in each asset's units (--json: decimal strings), or integers of"
    " base units with --base-units."
)
OPTION_ROLLUP_OPTION = click.option(
    "--option-rollup",
    default=None,
    metavar="ROLLUP",
    help="The rollup of genesis the option lives on (default: the last rollup of genesis).",
)
LIEN_ROLLUP_OPTION = click.option(
    "--rollup",
    default=None,
    metavar="ROLLUP",
    help="The lien's rollup (default: the collateral rollup, the first rollup of genesis"
    " other than the option rollup).",
)


@click.group(help=f"Open, settle and show options. {ROLLUP_RULE}")
def option() -> None:
    pass


def option_json(o: npb.OptionPosition, units: Units) -> dict[str, Any]:
    """An option position; strike, premium and settle price in the quote asset, size
    in the underlying, collateral and payout in the collateral asset (Units)."""
    settled = bool(o.settled_height)
    return {
        "id": o.id.hex(),
        "kind": "put" if o.kind == pb.OPTION_KIND_PUT else "call",
        "underlying": o.underlying,
        "quote": o.quote,
        "strike": units.json(o.strike, o.quote),
        "size": units.json(o.size, o.underlying),
        "expiry_height": o.expiry_height,
        "premium": units.json(o.premium, o.quote),
        "writer": encode_address(o.writer),
        "holder": encode_address(o.holder),
        "collateral_rollups": [lien.rollup for lien in o.liens],
        "liens": [
            {
                "rollup": lien.rollup,
                "amount": units.json(lien.amount, o.collateral_asset),
                "paid": units.json(lien.paid, o.collateral_asset) if settled else None,
            }
            for lien in o.liens
        ],
        "collateral_asset": o.collateral_asset,
        "collateral": units.json(o.collateral, o.collateral_asset),
        "status": npb.OptionPosition.Status.Name(o.status).removeprefix("STATUS_").lower(),
        "opened_height": o.opened_height,
        "settled_height": o.settled_height or None,
        "settle_price": units.json(o.settle_price, o.quote) if settled else None,
        "payout": units.json(o.payout, o.collateral_asset) if settled else None,
    }


def lien_json(lien: npb.Lien, units: Units) -> dict[str, Any]:
    """A lien; amount and paid_out in its asset (Units)."""
    released = bool(lien.released_height)
    return {
        "id": lien.id.hex(),
        "owner": encode_address(lien.owner),
        "asset": lien.asset,
        "amount": units.json(lien.amount, lien.asset),
        "controller_rollup": lien.controller_rollup,
        "controller_position": lien.controller_position.hex(),
        "status": npb.Lien.Status.Name(lien.status).removeprefix("STATUS_").lower(),
        "locked_height": lien.locked_height,
        "released_height": lien.released_height or None,
        "paid_out": units.json(lien.paid_out, lien.asset) if released else None,
        "payee": encode_address(lien.payee) if lien.payee else None,
        "option_expiry_height": lien.option_expiry_height,
        "reclaimable_height": lien.reclaimable_height,
    }


def parse_liens(
    specs: tuple[str, ...], genesis: Genesis, units: Units, asset: str, total: int
) -> list[tuple[str, int]] | None:
    """--lien ROLLUP=SHARE options as (rollup, amount) in order; None without any.
    Percentages split `total` (xrollup.options.split_collateral)."""
    if not specs:
        return None
    named: list[tuple[str, str]] = []
    for spec in specs:
        rollup, sep, share = spec.partition("=")
        if not sep or not share.strip():
            fail(f"--lien {spec!r}: want ROLLUP=SHARE, e.g. alpha=60% or alpha=4000")
        named.append((pick_rollup(genesis, rollup.strip(), "--lien"), share.strip()))
    if len({r for r, _ in named}) != len(named):
        fail("--lien: a rollup named twice (one lien per rollup)")
    percents = [s.endswith("%") for _, s in named]
    if any(percents) and not all(percents):
        fail("--lien: give every share as a percentage or every share as an amount")
    if not all(percents):
        return [(r, units.parse_positive(s, asset, "--lien")) for r, s in named]
    weights = []
    for _, s in named:
        try:
            bps = Decimal(s[:-1]) * 100
        except InvalidOperation:
            fail(f"--lien: {s!r} is not a percentage")
        if bps != bps.to_integral_value() or bps <= 0:
            fail(f"--lien: {s!r}: a positive percentage with at most two decimals")
        weights.append(int(bps))
    if sum(weights) != BASIS_POINTS:
        fail(f"--lien: the percentages sum to {Decimal(sum(weights)) / 100}%, not 100%")
    return list(zip([r for r, _ in named], split_collateral(total, weights), strict=True))


@option.command("open", epilog=AMOUNTS)
@click.option("--writer", required=True, help="Dev account index of the writer (locks collateral).")
@click.option("--holder", required=True, help="Dev account index of the holder (pays the premium).")
@click.option("--kind", type=click.Choice(["put", "call"]), required=True)
@click.option(
    "--strike", required=True, metavar="PRICE", help="Quote units per whole underlying, e.g. 2800."
)
@click.option("--size", required=True, metavar="AMOUNT", help="Underlying units, e.g. 2 (ETH).")
@click.option("--premium", required=True, metavar="AMOUNT", help="Quote units, e.g. 50.")
@click.option(
    "--expiry-blocks",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Option expiry, blocks from now.",
)
@click.option(
    "--collateral",
    default=None,
    metavar="AMOUNT",
    help="Collateral to lock, in the quote (put) or underlying (call) asset (default: what"
    " the margin rule needs).",
)
@click.option("--underlying", default="ETH", show_default=True)
@click.option("--quote", default="USDC", show_default=True)
@OPTION_ROLLUP_OPTION
@click.option(
    "--collateral-rollup",
    default=None,
    metavar="ROLLUP",
    help="The rollup of genesis the collateral is locked on (default: the first rollup of"
    " genesis other than the option rollup).",
)
@click.option(
    "--lien",
    "liens",
    multiple=True,
    metavar="ROLLUP=SHARE",
    help="Collateral on several rollups, one lien each, repeated in payout order (settlement"
    " pays from the first lien first): SHARE is a percentage of the collateral (alpha=60%"
    " --lien gamma=40%, the last lien takes the rounding) or an amount (alpha=4000)."
    " Replaces --collateral-rollup.",
)
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@BASE_UNITS_OPTION
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
    option_rollup: str | None,
    collateral_rollup: str | None,
    liens: tuple[str, ...],
    data_dir: Path,
    sequencer_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Write an option on one rollup against collateral locked on another (or on
    several, --lien), in one bundle: all of it happens or none."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    default_option, default_collateral = compute_option_rollups(genesis)
    on = pick_rollup(genesis, option_rollup, "--option-rollup", default_option)
    locked_on = pick_rollup(genesis, collateral_rollup, "--collateral-rollup", default_collateral)
    writer_key = derive_dev_account(parse_dev_index(writer, "--writer"))
    holder_key = derive_dev_account(parse_dev_index(holder, "--holder"))
    okind = OptionKind.PUT if kind == "put" else OptionKind.CALL
    strike_value = units.parse_positive(strike, quote, "--strike")
    size_value = units.parse_positive(size, underlying, "--size")
    premium_value = units.parse(premium, quote, "--premium")
    coll = None
    asset = collateral_asset(okind, underlying, quote)
    if collateral is not None:
        coll = units.parse(collateral, asset, "--collateral")
    if liens and collateral_rollup is not None:
        fail("give either --collateral-rollup or --lien, not both")
    need = compute_collateral(okind, strike_value, size_value, asset_decimals(genesis, underlying))
    split = parse_liens(liens, genesis, units, asset, coll if coll is not None else need)
    if split is None:
        split = [(locked_on, coll if coll is not None else need)]
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    nodes = {
        r: node_or_fail(data_dir, r, None) for r in dict.fromkeys([*(r for r, _ in split), on])
    }

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c:
            head = (await c.status()).height
            bundle = build_open_option(
                writer_key,
                holder_key,
                okind,
                strike_value,
                size_value,
                head + expiry_blocks,
                premium_value,
                head + 1000,
                underlying=underlying,
                quote=quote,
                underlying_decimals=asset_decimals(genesis, underlying),
                option_rollup=on,
                chain_id=genesis.chain_id,
                liens=split,
            )
            ack = await c.submit_bundle(bundle)
        async with node_clients(nodes) as clients:
            records = await wait_for_decision(clients, ack.id)
        return {
            "id": ack.id.hex(),
            "option_rollup": on,
            "collateral_rollups": [r for r, _ in split],
            "liens": [{"rollup": r, "amount": units.json(a, asset)} for r, a in split],
            "ordered_height": ack.height,
            **bundle_json(records),
        }

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"option {result['id']} on {on}, collateral on"
            f" {' + '.join(f'{units.text(a, asset)} on {r}' for r, a in split)}: {result['status']}"
            f" (ordered at {result['ordered_height']})"
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


@option.command("settle", epilog=AMOUNTS)
@click.argument("option_id")
@click.option("--from", "from_", default="0", show_default=True, help="Dev account that submits.")
@OPTION_ROLLUP_OPTION
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def option_settle(
    option_id: str,
    from_: str,
    option_rollup: str | None,
    data_dir: Path,
    sequencer_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Settle an expired option at the oracle price (anyone may); the payout comes
    from its lien on the collateral rollup the option names."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    on = pick_rollup(genesis, option_rollup, "--option-rollup", compute_option_rollups(genesis)[0])
    submitter = derive_dev_account(parse_dev_index(from_, "--from"))
    oid = parse_id(option_id)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)

    async def go() -> dict[str, Any]:
        async with NodeClient(node_or_fail(data_dir, on, None)) as n:
            o = await n.option(oid)
            px = await n.price(o.underlying, o.quote)
        udec = asset_decimals(genesis, o.underlying)
        payout = compute_payout(OptionKind(o.kind), o.strike, o.size, px.price, udec)
        liens = option_liens(o)
        nodes = {
            r: node_or_fail(data_dir, r, None) for r in dict.fromkeys([on, *(r for r, _ in liens)])
        }
        async with node_clients(nodes) as clients:
            async with Client(endpoint, genesis.chain_id) as c:
                bundle = build_settle_option(
                    submitter,
                    oid,
                    payout,
                    o.holder,
                    await c.expiry(),
                    option_rollup=on,
                    chain_id=genesis.chain_id,
                    liens=liens,
                )
                ack = await c.submit_bundle(bundle)
            records = await wait_for_decision(clients, ack.id)
        return {
            "bundle_id": ack.id.hex(),
            "option_id": oid.hex(),
            "price": units.json(px.price, o.quote),
            "payout": units.json(payout, o.collateral_asset),
            "payout_asset": o.collateral_asset,
            **bundle_json(records),
        }

    result = run(go())
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"settle {result['bundle_id']}: {result['status']}"
            f" (payout {result['payout']} {result['payout_asset']}"
            f"{' base units' if base_units else ''})"
        )
    finish_decision(result, as_json)


@option.command("show", epilog=AMOUNTS)
@click.argument("option_id")
@OPTION_ROLLUP_OPTION
@DATA_DIR_OPTION
@NODE_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def option_show(
    option_id: str,
    option_rollup: str | None,
    data_dir: Path,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """An option position, from the node of the rollup it lives on."""
    _show_position(
        "option",
        option_id,
        option_rollup,
        "--option-rollup",
        0,
        data_dir,
        node_endpoint,
        base_units,
        as_json,
    )


@click.group()
def lien() -> None:
    """Liens: collateral locked on one rollup for a position on another."""


@lien.command("show", epilog=AMOUNTS)
@click.argument("lien_id")
@LIEN_ROLLUP_OPTION
@DATA_DIR_OPTION
@NODE_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def lien_show(
    lien_id: str,
    rollup: str | None,
    data_dir: Path,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """A lien (its id is the id of the bundle that opened the option)."""
    _show_position(
        "lien", lien_id, rollup, "--rollup", 1, data_dir, node_endpoint, base_units, as_json
    )


def _show_position(
    kind: str,
    position_id: str,
    rollup: str | None,
    flag: str,
    default_role: int,
    data_dir: Path,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """`option show` and `lien show`: the position `kind` from the node of `rollup`
    (default: compute_option_rollups(genesis)[default_role], the option's rollup or
    its collateral's)."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    on = pick_rollup(genesis, rollup, flag, compute_option_rollups(genesis)[default_role])
    pid = parse_id(position_id)
    node = node_or_fail(data_dir, on, node_endpoint)
    units = Units(genesis, base_units)

    async def go() -> dict[str, Any]:
        async with NodeClient(node) as n:
            if kind == "option":
                return option_json(await n.option(pid), units)
            return lien_json(await n.lien(pid), units)

    d = run(go())
    emit_json(d) if as_json else print_record(kind, d)


@lien.command("reclaim", epilog=AMOUNTS)
@click.argument("lien_id")
@click.option("--from", "from_", required=True, help="The lien's owner: a dev account index.")
@LIEN_ROLLUP_OPTION
@DATA_DIR_OPTION
@SEQUENCER_OPTION
@NODE_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def lien_reclaim(
    lien_id: str,
    from_: str,
    rollup: str | None,
    data_dir: Path,
    sequencer_endpoint: str | None,
    node_endpoint: str | None,
    base_units: bool,
    as_json: bool,
) -> None:
    """Take back a lien its option did not settle by expiry + grace (docs/exits.md).

    A plain transaction on the lien's own rollup: it needs neither the option's
    rollup nor the oracle. Exit 1 if the rollup refused it."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    on = pick_rollup(genesis, rollup, "--rollup", compute_option_rollups(genesis)[1])
    owner = derive_dev_account(parse_dev_index(from_, "--from"))
    lid = parse_id(lien_id)
    endpoint = resolve_sequencer(data_dir, sequencer_endpoint)
    node = node_or_fail(data_dir, on, node_endpoint)

    async def go() -> dict[str, Any]:
        async with Client(endpoint, genesis.chain_id) as c, NodeClient(node) as n:
            tx = build_reclaim_lien(owner, lid, await c.expiry(), on, genesis.chain_id)
            ack = await c.submit_tx(tx)
            receipt = receipt_json(await n.wait_for_receipt(ack.id), on)
            lien = lien_json(await n.lien(lid), units) if receipt["status"] == "ok" else None
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
