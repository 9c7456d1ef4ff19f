"""Two independent sequencers standing in for replicas (test_multi_endpoint,
test_paused_replica): which chain holds an id says which process answered, and
one scenario, a Client on "a,b" (pick_first) leaving a when a fault hits it, that
both files run with their own fault (SIGKILL, SIGSTOP)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import grpc
from chainsupport import random_transfer
from grpc import aio

from devnet.launcher import Launched
from xrollup.client import Client, Submitted
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb


async def holder(replicas: dict[str, Launched], ack: Submitted) -> str:
    """The name of the one replica whose chain orders `ack.id`, where the ack says."""
    found = []
    for name, proc in replicas.items():
        if proc.popen is not None and proc.popen.poll() is not None:
            continue  # killed
        async with Client(proc.endpoint) as c:
            try:
                r = await c.get_submission(ack.id)
            except aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
                continue
        assert r.state == spb.GetSubmissionResponse.STATE_ORDERED
        assert (r.height, r.index) == (ack.height, ack.index)
        found.append(name)
    assert len(found) == 1, f"{ack.id.hex()} ordered by {found}"
    return found[0]


async def leave_a(
    pair: dict[str, Launched],
    rng: random.Random,
    fault: Callable[[Launched], float],
    bound: float,
    what: str,
    undo: Callable[[Launched], None] = lambda p: None,
) -> None:
    """A Client on a,b (pick_first) is on a; `fault(a)` (returns when it hit) while a
    follow() stream is on a: submit_retrying is acked by b and the stream goes on
    at the next height with b's blocks, every height once, both within `bound`
    seconds. `undo(a)` once measured (resume a paused a)."""
    a, b = pair["a"], pair["b"]
    async with Client(f"{a.endpoint},{b.endpoint}", spread=False) as client:
        expiry = await client.expiry()
        for _ in range(3):  # pick_first: with both up, every call goes to the first
            ack = await client.submit_retrying(random_transfer(rng, expiry), timeout=10)
            assert await holder(pair, ack) == "a"
        seen: list[pb.Block] = []
        arrived: list[float] = []
        five = asyncio.Event()
        stop_at: list[int] = []

        async def follow() -> None:
            async for block in client.follow(1):
                seen.append(block)
                arrived.append(time.monotonic())
                if len(seen) == 5:
                    five.set()
                if stop_at and block.header.height >= stop_at[0]:
                    return

        following = asyncio.create_task(follow())
        await asyncio.wait_for(five.wait(), 10)
        async with Client(a.endpoint) as only_a:
            a_head = int((await only_a.status()).height)
        stop_at.append(a_head + 5)
        hit = fault(a)
        ack = await client.submit_retrying(random_transfer(rng, expiry), timeout=10)
        took = time.monotonic() - hit
        print(f"submit_retrying acked {took * 1000:.0f} ms after the {what}")
        assert took < bound
        await asyncio.wait_for(following, bound + 10)
        undo(a)
        assert await holder(pair, ack) == "b"
    # One stream, every height once in order: a's blocks up to where the fault hit
    # (those it had sent before included), then b's.
    heights = [blk.header.height for blk in seen]
    assert heights == list(range(1, a_head + 6)), f"gap or repeat across the {what}"
    async with Client(b.endpoint) as only_b:
        from_b = [(await only_b.get_block(h)).hash == blk.hash for h, blk in enumerate(seen, 1)]
    switched = from_b.index(True)
    assert not any(from_b[:switched]) and all(from_b[switched:]), from_b
    assert 5 <= switched <= a_head + 1, (switched, a_head)
    resumed = arrived[switched] - hit
    print(f"the stream's first block from b {resumed * 1000:.0f} ms after the {what}")
    assert resumed < bound
