"""The ordered log against a real sequencer process: concurrent clients submit
single transactions and batches; the chain read back through GetBlock and
StreamBlocks is one contiguous hash chain in which every acknowledged id sits
exactly once, where its acknowledgement said. Duplicates get the first result."""

from __future__ import annotations

import asyncio
import random

import grpc
from chainsupport import (
    ORDERED,
    Acked,
    assert_acked_by_get_submission,
    assert_acked_in_chain,
    assert_clean_log,
    id_of,
    index_entries,
    random_transfer,
    read_blocks_by_get,
    read_blocks_by_stream,
    read_verified_chain,
    verify_chain,
)

from xrollup.client import Client

CLIENTS = 6
PER_CLIENT = 60  # 360 transfers in all


async def _submit_load(endpoint: str, rng: random.Random, expiry: int) -> list[Acked]:
    """One client: PER_CLIENT transfers, as single calls and batches of 2..12."""
    acked: list[Acked] = []
    async with Client(endpoint) as client:
        left = PER_CLIENT
        while left:
            if rng.random() < 0.5:
                tx = random_transfer(rng, expiry)
                ack = await client.submit_tx(tx)
                assert ack.id == id_of(tx)
                assert not ack.duplicate
                acked.append(Acked(ack.id, ack.height, ack.index))
                left -= 1
            else:
                txs = [random_transfer(rng, expiry) for _ in range(min(left, rng.randint(2, 12)))]
                items = await client.submit_batch(txs)
                assert len(items) == len(txs)
                for tx, item in zip(txs, items, strict=True):
                    assert item.ok, f"batch item refused: {item.code} {item.message}"
                    assert item.id == id_of(tx)
                    assert not item.duplicate
                    acked.append(Acked(item.id, item.height, item.index))
                left -= len(txs)
    return acked


def test_concurrent_submissions_form_one_verifiable_chain(start_sequencer, seed) -> None:
    seq = start_sequencer()
    rng = random.Random(seed)

    async def run() -> None:
        async with Client(seq.endpoint) as reader:
            expiry = await reader.expiry()
            per_client = await asyncio.gather(
                *(
                    _submit_load(seq.endpoint, random.Random(rng.getrandbits(64)), expiry)
                    for _ in range(CLIENTS)
                )
            )
            acked = [a for part in per_client for a in part]
            assert len(acked) == CLIENTS * PER_CLIENT
            assert len({a.id for a in acked}) == len(acked)

            head = (await reader.status()).height
            assert head >= max(a.height for a in acked)
            by_get = await read_blocks_by_get(reader, 1, head)
            by_stream = await read_blocks_by_stream(reader, 1, head)
            assert [b.SerializeToString() for b in by_get] == [
                b.SerializeToString() for b in by_stream
            ], "GetBlock and StreamBlocks disagree"

            blocks = verify_chain(by_get)
            assert [int(b.height) for b in blocks] == list(range(1, head + 1))
            where = index_entries(blocks)
            assert_acked_in_chain(acked, where)
            # Nothing but what was acknowledged is in the chain.
            assert set(where) == {a.id for a in acked}
            await assert_acked_by_get_submission(reader, acked)

    asyncio.run(run())
    assert_clean_log(seq.log)


def test_duplicate_submission_returns_first_result_and_is_ordered_once(
    start_sequencer, seed
) -> None:
    seq = start_sequencer()
    rng = random.Random(seed)

    async def run() -> None:
        async with Client(seq.endpoint) as client:
            expiry = await client.expiry()

            # Sequential duplicate: the second call comes after the first is ordered.
            tx = random_transfer(rng, expiry)
            first = await client.submit_tx(tx)
            assert not first.duplicate
            again = await client.submit_tx(tx)
            assert again.duplicate
            assert (again.id, again.height, again.index) == (first.id, first.height, first.index)

            # Concurrent duplicates: both wait on the same pending entry.
            tx2 = random_transfer(rng, expiry)
            a, b = await asyncio.gather(client.submit_tx(tx2), client.submit_tx(tx2))
            assert (a.height, a.index) == (b.height, b.index)
            assert sorted([a.duplicate, b.duplicate]) == [False, True]

            # In a batch: an already-ordered id, a fresh one, and the fresh one again.
            tx3 = random_transfer(rng, expiry)
            items = await client.submit_batch([tx, tx3, tx3])
            assert all(i.ok for i in items), [i.message for i in items]
            assert items[0].duplicate and (items[0].height, items[0].index) == (
                first.height,
                first.index,
            )
            assert not items[1].duplicate
            assert items[2].duplicate and (items[2].height, items[2].index) == (
                items[1].height,
                items[1].index,
            )

            # The id first ordered through a batch, submitted again singly.
            single_again = await client.submit_tx(tx3)
            assert single_again.duplicate and single_again.height == items[1].height

            for sub_id, height, index in (
                (first.id, first.height, first.index),
                (a.id, a.height, a.index),
                (items[1].id, items[1].height, items[1].index),
            ):
                r = await client.get_submission(sub_id)
                assert r.state == ORDERED
                assert (r.height, r.index) == (height, index)

            # Let a few more blocks pass, then check each id is in the chain once.
            head = (await client.status()).height
            while (await client.status()).height < head + 3:
                await asyncio.sleep(0.02)
            where = index_entries(await read_verified_chain(client))
            assert_acked_in_chain(
                [
                    Acked(first.id, first.height, first.index),
                    Acked(a.id, a.height, a.index),
                    Acked(items[1].id, items[1].height, items[1].index),
                ],
                where,
            )
            assert sum(len(p) for p in where.values()) == 3

            # An id never submitted is NOT_FOUND.
            missing = random_transfer(rng, expiry)
            try:
                await client.get_submission(id_of(missing))
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
                assert "no submission" in (e.details() or "")
            else:
                raise AssertionError("GetSubmission of an unknown id succeeded")

    asyncio.run(run())
    assert_clean_log(seq.log)
