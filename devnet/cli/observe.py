"""Observe commands: what the running devnet is doing. `devnet bundle status`
(each rollup's record of a bundle); `devnet bundle trace` (a bundle's timeline,
devnet/lifecycle.py) is to join the `bundle` group here."""

from __future__ import annotations

from pathlib import Path

import click
from grpc import aio

from devnet.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    fail,
    handle_errors,
    parse_id,
    read_genesis,
    resolve_node,
    run,
)
from devnet.cli.render import bundle_json, emit_json
from xrollup.client import NodeClient
from xrollup.v1 import node_pb2 as npb


@click.group()
def bundle() -> None:
    """Cross-rollup bundles: each rollup's record of one."""


@bundle.command("status")
@click.argument("bundle_id")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def bundle_status(bundle_id: str, data_dir: Path, as_json: bool) -> None:
    """Pending, committed or aborted, with each rollup's vote, legs and heights."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    bid = parse_id(bundle_id)
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


# `devnet bundle trace BUNDLE_ID` (the timeline of devnet/lifecycle.py) goes here:
# `@bundle.command("trace")`, beside `bundle status`.

COMMANDS = (bundle,)
