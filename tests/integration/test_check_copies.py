"""`devnet check`'s copies check (devnet/checker.py) catches sequencer replicas
that hold different chains: two independent sequencers of one genesis seal
different first blocks (their timestamps differ), which no HA replica set may
ever hold. (Agreeing copies pass: tests/integration/test_ha.py runs the checker on
a real HA devnet.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from devnet.checker import check_copies
from devnet.launcher import Launched
from xrollup.client import Client
from xrollup.genesis import DEV_CHAIN_ID


async def _wait_height(endpoint: str, height: int) -> None:
    deadline = time.monotonic() + 20
    async with Client(endpoint) as c:
        while (await c.status()).height < height:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


def test_copies_of_two_different_chains_are_reported(
    start_sequencer: Callable[..., Launched],
) -> None:
    a = start_sequencer(name="a")
    b = start_sequencer(name="b")

    async def run() -> None:
        await asyncio.gather(_wait_height(a.endpoint, 3), _wait_height(b.endpoint, 3))
        bad = await check_copies([a.endpoint, b.endpoint], DEV_CHAIN_ID)
        assert not bad.ok and "hold different blocks at height" in bad.violations[0]
        assert bad.figures["compared"] == 2

    asyncio.run(run())
