"""`devnet margin ACCOUNT`: the consolidated margin view of one account (devnet.margin):
per rollup and asset what is free, locked in liens and held in escrow, each lien's
option on its controlling rollup, the options it writes or holds, and the totals
per asset across rollups."""

from __future__ import annotations

from pathlib import Path

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
    parse_account,
    pick_rollup,
    read_genesis,
    read_manifest,
    run,
)
from devnet.cli.render import console, emit_json
from devnet.margin import MarginView, margin_json, read_margin_from
from xrollup.genesis import Genesis
from xrollup.keys import encode_address


def short(hex_id: str) -> str:
    return f"{hex_id[:10]}…{hex_id[-6:]}"


def parse_node_overrides(specs: tuple[str, ...], genesis: Genesis) -> dict[str, str]:
    """--node ROLLUP=HOST:PORT options."""
    out: dict[str, str] = {}
    for spec in specs:
        rollup, sep, endpoint = spec.partition("=")
        if not sep or not endpoint.strip():
            fail(f"--node {spec!r}: want ROLLUP=HOST:PORT, e.g. alpha=127.0.0.1:50061", 2)
        out[pick_rollup(genesis, rollup.strip(), "--node")] = endpoint.strip()
    return out


def resolve_endpoints(
    data_dir: Path, genesis: Genesis, overrides: dict[str, str]
) -> dict[str, list[str]]:
    """Each rollup of genesis and the endpoints to ask, its primary node first (a
    --node override alone); none for a rollup with no running node."""
    manifest = read_manifest(data_dir)
    if manifest is None and len(overrides) < len(genesis.rollup_names):
        fail(
            f"no devnet in {data_dir} (run `devnet up`, or pass --node ROLLUP=HOST:PORT"
            " for every rollup)"
        )
    out: dict[str, list[str]] = {}
    for rollup in genesis.rollup_names:
        if rollup in overrides:
            out[rollup] = [overrides[rollup]]
            continue
        assert manifest is not None
        nodes = [p for p in manifest.processes if p.role == "node" and p.rollup == rollup]
        nodes.sort(key=lambda p: p.name != rollup)  # the primary, then replicas
        out[rollup] = [p.endpoint for p in nodes if network.is_running(p)]
    return out


@click.command("margin")
@click.argument("account")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="ROLLUP=HOST:PORT",
    help="A rollup's node, repeated (default: each rollup's running nodes from devnet.json).",
)
@DATA_DIR_OPTION
@BASE_UNITS_OPTION
@JSON_OPTION
@handle_errors
def margin(
    account: str, nodes: tuple[str, ...], data_dir: Path, base_units: bool, as_json: bool
) -> None:
    """An account's margin on every rollup: free, locked, in escrow, and totals.

    Per rollup and asset the account's free balance, what its liens lock and what
    undecided bundles hold in escrow for it;
    each lien with the option it backs (on the option's rollup: status, kind, size,
    strike, the lien's place in the payout order); the options it writes or holds;
    and per asset the totals across rollups.

    ACCOUNT is a dev account index (0, 1, ...) or a 0x address. A rollup whose node
    does not answer is shown down and left out of the totals (marked partial).
    Amounts are decimals in each asset's units (--json: decimal strings), or
    integers of base units with --base-units."""
    data_dir = data_dir.resolve()
    address = parse_account(account, "ACCOUNT")
    genesis = read_genesis(data_dir)
    units = Units(genesis, base_units)
    endpoints = resolve_endpoints(data_dir, genesis, parse_node_overrides(nodes, genesis))
    view = run(read_margin_from(address, endpoints))
    if as_json:
        emit_json(margin_json(view, units.json))
    else:
        print_margin(view, units)


def print_margin(view: MarginView, units: Units) -> None:
    address = encode_address(view.address)
    d = margin_json(view, lambda amount, asset: units.text(amount, asset, symbol=False))
    per = Table(
        "rollup",
        "asset",
        "free",
        "locked",
        "escrowed",
        "total",
        title=f"margin of {address}",
    )
    for r in d["rollups"]:
        if not r["up"]:
            per.add_row(r["rollup"], "[red]down[/red]", "-", "-", "-", "-")
            continue
        for asset, h in r["assets"].items():
            per.add_row(r["rollup"], asset, h["free"], h["locked"], h["escrowed"], h["total"])
    console.print(per)
    for r in d["rollups"]:
        if not r["up"]:
            console.print(f"[red]{r['rollup']} is down[/red]: {r['error']}", highlight=False)

    liens = Table(
        "rollup", "lien", "locks", "status", "backs", "payout order", "reclaimable", title="liens"
    )
    for r in d["rollups"]:
        for lien in r["liens"]:
            b = lien["backs"]
            o = b["option"]
            if o is None:
                backs = f"option {short(b['option_id'])} on {b['rollup']}: {b['error']}"
            else:
                backs = (
                    f"{o['kind']} {o['size']} {o['underlying']} at {o['strike']} {o['quote']}"
                    f" on {b['rollup']}, {o['status']}, expiry {o['expiry_height']}"
                )
            place = f"{b['place']} of {b['of']}" if b["place"] is not None else "-"
            liens.add_row(
                r["rollup"],
                short(lien["id"]),
                f"{lien['amount']} {lien['asset']}",
                lien["status"],
                backs,
                place,
                f"from {lien['reclaimable_height']}",
            )
    if liens.row_count:
        console.print(liens)

    escrows = Table("rollup", "bundle", "holds", "prepared", "deadline", title="escrows")
    for r in d["rollups"]:
        for e in r["escrows"]:
            held = ", ".join(f"{amount} {asset}" for asset, amount in e["held"].items())
            escrows.add_row(
                r["rollup"],
                short(e["bundle_id"]),
                held,
                str(e["prepare_height"]),
                str(e["deadline_height"]),
            )
    if escrows.row_count:
        console.print(escrows)

    positions = Table("rollup", "option", "role", "what", "status", "liens", title="options")
    for r in d["rollups"]:
        for o in r["options"]:
            positions.add_row(
                r["rollup"],
                short(o["id"]),
                o["role"],
                f"{o['kind']} {o['size']} {o['underlying']} at {o['strike']} {o['quote']},"
                f" expiry {o['expiry_height']}",
                o["status"],
                " + ".join(f"{x['amount']} on {x['rollup']}" for x in o["liens"]),
            )
    if positions.row_count:
        console.print(positions)

    caption = f"partial: {', '.join(d['down'])} down" if d["down"] else None
    totals = Table("asset", "free", "locked", "escrowed", "total", title="totals", caption=caption)
    for asset, h in d["totals"].items():
        totals.add_row(asset, h["free"], h["locked"], h["escrowed"], h["total"])
    console.print(totals)
    if any(r["truncated"] for r in d["rollups"]):
        console.print("[yellow]some lists are cut at 1000 entries per rollup[/yellow]")


COMMANDS = (margin,)
