"""Block streaming against a real sequencer: a subscriber that disconnects and
resumes from its last height gets every block exactly once, in order, hash-linked
to what it had; Client.follow() does the same across a sequencer restart."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from chainsupport import Acked, assert_acked_in_chain, index_entries, random_transfer, verify_chain

from devnet.launcher import check_health, stop_pid
from xrollup.client import Client
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb


async def _submit_until(
    endpoint: str, rng: random.Random, stop: asyncio.Event, acked: list[Acked]
) -> None:
    """Keep transfers flowing so blocks carry entries while the test streams."""
    async with Client(endpoint) as client:
        expiry = await client.expiry()
        while not stop.is_set():
            if rng.random() < 0.5:
                ack = await client.submit_tx(random_transfer(rng, expiry))
                acked.append(Acked(ack.id, ack.height, ack.index))
            else:
                items = await client.submit_batch([random_transfer(rng, expiry) for _ in range(4)])
                acked.extend(Acked(i.id, i.height, i.index) for i in items if i.ok)


async def _stream(client: Client, from_height: int, until_height: int) -> list[pb.Block]:
    """Blocks from `from_height` through `until_height`, then cancel the call."""
    out: list[pb.Block] = []
    call = client.stub.StreamBlocks(spb.StreamBlocksRequest(from_height=from_height))
    async for block in call:
        out.append(block)
        if block.header.height >= until_height:
            break
    call.cancel()
    return out


def test_resumed_stream_gets_every_block_once_in_order(start_sequencer, seed: int) -> None:
    seq = start_sequencer()
    rng = random.Random(seed)
    disconnect_at = rng.randint(5, 40)

    async def run() -> None:
        stop = asyncio.Event()
        acked: list[Acked] = []
        submitters = [
            asyncio.create_task(
                _submit_until(seq.endpoint, random.Random(rng.getrandbits(64)), stop, acked)
            )
            for _ in range(3)
        ]
        async with Client(seq.endpoint) as client:
            had = await _stream(client, 1, disconnect_at)
            verify_chain(had)
            assert had[-1].header.height == disconnect_at

            # Blocks keep coming, with submissions, while we are away.
            await asyncio.sleep(0.3)
            while (head_while_away := (await client.status()).height) < disconnect_at + 10:
                await asyncio.sleep(0.02)

            resumed = await _stream(client, disconnect_at, head_while_away + 20)
            stop.set()
            await asyncio.gather(*submitters)

        heights = [b.header.height for b in resumed]
        assert heights == list(range(disconnect_at, head_while_away + 21)), "gap, repeat or reorder"
        # The block we had at the disconnect height is the one the resumed stream starts with,
        # and the rest link onto it.
        assert resumed[0].SerializeToString() == had[-1].SerializeToString()
        blocks = verify_chain(had[:-1] + resumed)
        assert sum(len(b.entries) for b in blocks[disconnect_at:]) > 0, "no entries while away"
        where = index_entries(blocks)
        assert_acked_in_chain([a for a in acked if a.height <= head_while_away + 20], where)

    asyncio.run(run())


def test_follow_resumes_across_a_sequencer_restart(start_sequencer, tmp_path: Path) -> None:
    first = start_sequencer(name="sequencer")
    endpoint = first.endpoint
    restarted: list[int] = []

    async def run() -> list[pb.Block]:
        got: list[pb.Block] = []
        reached = asyncio.Event()
        target = {"height": 15}

        async def follow() -> None:
            async with Client(endpoint) as client:
                async for block in client.follow(1, retry_delay=0.05, max_delay=0.5):
                    got.append(block)
                    if block.header.height >= target["height"]:
                        reached.set()
                        if restarted and block.header.height >= restarted[0] + 20:
                            return

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(reached.wait(), 10)

        # SIGTERM, then restart on the same data directory and the same port.
        assert first.popen is not None
        await asyncio.to_thread(stop_pid, first.pid, 5.0, first.popen, None, signal.SIGTERM)
        assert first.popen.returncode == 0
        assert not await asyncio.to_thread(check_health, endpoint)
        height_at_stop = got[-1].header.height
        second = await asyncio.to_thread(start_sequencer, name="sequencer", listen=endpoint)
        assert second.endpoint == endpoint
        async with Client(endpoint) as c:
            # The follower's channel may be in reconnect backoff to this address, and gRPC
            # shares subchannels between channels: wait for READY rather than fail fast.
            await c.wait_ready()
            restarted.append((await c.status()).height)
        assert restarted[0] >= height_at_stop
        target["height"] = restarted[0] + 20
        await asyncio.wait_for(follower, 20)
        return got

    blocks = asyncio.run(run())
    heights = [b.header.height for b in blocks]
    assert heights == list(range(1, len(blocks) + 1)), (
        "follow() skipped, repeated or reordered a height"
    )
    assert heights[-1] >= restarted[0] + 20
    verify_chain(blocks)
