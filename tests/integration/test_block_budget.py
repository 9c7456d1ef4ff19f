"""The sequencer seals under the block byte budget (`limits.max_block_bytes`), so
a block always fits one stream message: a thousand transfers submitted in one
batch, several times the budget, are all acknowledged, spread over blocks that
each stay within it and verify as nodes verify them."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from chainsupport import read_verified_chain

from xrollup.client import Client, build_transfer
from xrollup.genesis import dev_genesis, encode_genesis
from xrollup.keys import derive_dev_account

BUDGET = 32 * 1024
GENESIS = dataclasses.replace(
    dev_genesis(),
    block_interval_ms=200,  # long enough that one interval's pool is over the budget
    limits=dataclasses.replace(dev_genesis().limits, max_block_bytes=BUDGET),
)


def test_blocks_are_sealed_under_the_byte_budget(start_sequencer, tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(encode_genesis(GENESIS))
    seq = start_sequencer(genesis=path)
    alice, bob = derive_dev_account(0), derive_dev_account(1)

    async def run() -> None:
        async with Client(seq.endpoint) as c:
            expiry = await c.expiry()
            txs = [
                build_transfer(alice, "alpha", bob.address, "USDC", 1, expiry, nonce=n)
                for n in range(1000)
            ]
            total = sum(pb.ByteSize() for pb in txs)
            assert total > 4 * BUDGET
            items = await c.submit_batch(txs)
            assert all(i.ok for i in items), [i.message for i in items if not i.ok][:3]
            heights = {i.height for i in items}
            blocks = await read_verified_chain(c, GENESIS)
        sizes = {b.height: b.header.byte_count for b in blocks if b.height in heights}
        assert len(heights) >= 4, f"{total} bytes fit in {len(heights)} blocks"
        assert max(sizes.values()) <= BUDGET, sizes
        assert sum(b.header.entry_count for b in blocks) == 1000

    asyncio.run(run())
