"""Every hold has an exit (docs/exits.md): with beta, the option's rollup,
stopped for good, the writer reclaims the option's lien on alpha once the
option's expiry plus the grace period has passed, with a transaction on alpha
alone. Before that the reclaim is refused; supply on alpha is conserved."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from devnet.launcher import node_argv, start_process, stop_pid
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_reclaim_lien,
    wait_for_decision,
)
from xrollup.genesis import dev_genesis, encode_genesis
from xrollup.keys import derive_dev_account
from xrollup.model import OptionKind
from xrollup.options import compute_collateral
from xrollup.v1 import node_pb2 as npb

GRACE = 25
GENESIS = dataclasses.replace(
    dev_genesis(), limits=dataclasses.replace(dev_genesis().limits, lien_grace_blocks=GRACE)
)
WRITER, HOLDER = derive_dev_account(5), derive_dev_account(6)


def test_lien_is_reclaimed_by_its_owner_after_grace_with_beta_gone(
    start_sequencer, tmp_path: Path
) -> None:
    genesis_path = tmp_path / "genesis.json"
    genesis_path.write_text(encode_genesis(GENESIS))
    seq = start_sequencer(genesis=genesis_path)
    nodes = {}
    for rollup in ("alpha", "beta"):
        argv = node_argv(
            rollup,
            seq.endpoint,
            "127.0.0.1:0",
            tmp_path / rollup,
            tmp_path / f"{rollup}.ready",
            genesis_path,
        )
        nodes[rollup] = start_process(
            rollup,
            "node",
            rollup,
            argv,
            tmp_path / rollup,
            tmp_path / f"{rollup}.log",
            tmp_path / f"{rollup}.ready",
            detach=False,
        )

    try:

        async def open_option() -> tuple[bytes, int, int]:
            async with Client(seq.endpoint) as c:
                a, b = NodeClient(nodes["alpha"].endpoint), NodeClient(nodes["beta"].endpoint)
                head = (await c.status()).height
                expiry = head + 10
                bundle = build_open_option(
                    WRITER,
                    HOLDER,
                    OptionKind.PUT,
                    3_000 * 10**6,
                    10**9,
                    expiry,
                    50 * 10**6,
                    head + 100,
                )
                ack = await c.submit_bundle(bundle)
                records = await wait_for_decision({"alpha": a, "beta": b}, ack.id)
                assert all(r.status == npb.BundleRecord.STATUS_COMMITTED for r in records.values())
                before = (await a.balances(WRITER.address))["USDC"]
                await a.close()
                await b.close()
                return ack.id, expiry, before

        lien_id, option_expiry, writer_before = asyncio.run(open_option())
        locked = compute_collateral(OptionKind.PUT, 3_000 * 10**6, 10**9, 9)
        stop_pid(nodes["beta"].pid, 5.0, nodes["beta"].popen)  # beta is gone for good

        async def reclaim() -> None:
            async with Client(seq.endpoint) as c, NodeClient(nodes["alpha"].endpoint) as a:
                lien = await a.lien(lien_id)
                assert lien.status == npb.Lien.STATUS_LOCKED
                assert lien.reclaimable_height == option_expiry + GRACE
                early = await c.submit_tx(
                    build_reclaim_lien(WRITER, lien_id, (await c.status()).height + 50)
                )
                r = await a.wait_for_receipt(early.id)
                assert not r.ok and "reclaimable from height" in r.reason
                assert (await a.lien(lien_id)).status == npb.Lien.STATUS_LOCKED

                await a.wait_for_height(option_expiry + GRACE, timeout=30)
                thief = await c.submit_tx(
                    build_reclaim_lien(HOLDER, lien_id, (await c.status()).height + 50)
                )
                assert not (await a.wait_for_receipt(thief.id)).ok
                done = await c.submit_tx(
                    build_reclaim_lien(WRITER, lien_id, (await c.status()).height + 50)
                )
                r = await a.wait_for_receipt(done.id)
                assert r.ok, r.reason
                lien = await a.lien(lien_id)
                assert lien.status == npb.Lien.STATUS_RECLAIMED
                assert (await a.balances(WRITER.address))["USDC"] == writer_before + locked
                supply = await a.supply()
                for asset in supply.assets:
                    assert asset.minted == asset.balances + asset.escrowed + asset.liened, asset

        asyncio.run(reclaim())
    finally:
        for n in nodes.values():
            stop_pid(n.pid, 5.0, n.popen)
