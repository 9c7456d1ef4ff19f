"""I3 durability: no acknowledged submission is lost across kill -9 of the
sequencer. Rounds of concurrent load, a SIGKILL at a seeded random instant, a
restart on the same LevelDB directory, then black-box checks over gRPC."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import grpc
from chainsupport import (
    Acked,
    assert_acked_by_get_submission,
    assert_acked_in_chain,
    id_of,
    index_entries,
    random_transfer,
    read_verified_chain,
)

from devnet.launcher import Launched, kill_pid, sequencer_argv, start_process, stop_pid
from sequencer.store import LevelDBBlockStore
from xrollup.client import Client

ROUNDS = 5
CLIENTS = 8


def _start(tmp_path: Path, data_dir: Path, round_no: int) -> Launched:
    ready = tmp_path / f"seq-{round_no}.ready"
    argv = sequencer_argv("127.0.0.1:0", data_dir, ready, None)
    return start_process(
        f"seq-{round_no}",
        "sequencer",
        None,
        argv,
        data_dir,
        tmp_path / "sequencer.log",
        ready,
        detach=False,
    )


async def _client(endpoint: str, rng: random.Random, expiry: int, acked: list[Acked]) -> None:
    """Submit until the server dies; record every acknowledgement."""
    async with Client(endpoint) as client:
        try:
            while True:
                if rng.random() < 0.5:
                    tx = random_transfer(rng, expiry)
                    ack = await client.submit_tx(tx, timeout=10)
                    assert ack.id == id_of(tx)
                    acked.append(Acked(ack.id, ack.height, ack.index))
                else:
                    txs = [random_transfer(rng, expiry) for _ in range(rng.randint(2, 6))]
                    for item in await client.submit_batch(txs, timeout=10):
                        # While the server runs, nothing is refused; after the kill the
                        # whole call fails, so an item is either acknowledged or absent.
                        assert item.ok, f"{item.code}: {item.message}"
                        acked.append(Acked(item.id, item.height, item.index))
        except grpc.aio.AioRpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e


async def _load_then_kill(
    seq: Launched, rng: random.Random, delay: float
) -> tuple[list[Acked], int]:
    """Run the clients, SIGKILL the sequencer after `delay` seconds, wait for the
    clients to notice. Returns the acknowledgements and the last head seen."""
    acked: list[Acked] = []
    async with Client(seq.endpoint) as probe:
        expiry = await probe.expiry()
        tasks = [
            asyncio.create_task(
                _client(seq.endpoint, random.Random(rng.getrandbits(64)), expiry, acked)
            )
            for _ in range(CLIENTS)
        ]
        # The random delay runs from the first acknowledgement, so a slow start on a
        # loaded machine cannot make a round with nothing to check.
        async with asyncio.timeout(20):
            while not acked:
                await asyncio.sleep(0.005)
        await asyncio.sleep(delay)
        head_seen = (await probe.status()).height
    kill_pid(seq.pid, seq.popen)
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    return acked, head_seen


async def _check_after_restart(
    endpoint: str, acked: list[Acked], stored_height: int, stored_hash: bytes
) -> None:
    async with Client(endpoint) as client:
        assert (await client.status()).height >= stored_height
        while (await client.status()).height < stored_height + 1:
            await asyncio.sleep(0.02)
        blocks = await read_verified_chain(client)  # contiguous from 1, hash-linked
        # New blocks continue from the stored head.
        assert blocks[stored_height - 1].hash == stored_hash
        assert blocks[stored_height].parent_hash == stored_hash
        assert_acked_in_chain(acked, index_entries(blocks))
        await assert_acked_by_get_submission(client, acked)


def test_acknowledged_submissions_survive_sigkill(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "sequencer"
    all_acked: list[Acked] = []
    started: list[Launched] = []
    try:
        seq = _start(tmp_path, data_dir, 0)
        started.append(seq)
        for round_no in range(1, ROUNDS + 1):
            delay = rng.uniform(0.2, 1.0)
            acked, head_seen = asyncio.run(_load_then_kill(seq, rng, delay))
            assert acked, f"round {round_no}: no submission was acknowledged in {delay:.2f}s"
            all_acked.extend(acked)
            print(f"round {round_no}: killed after {delay:.2f}s, {len(acked)} acknowledged")

            # What the killed process left on disk (it is dead, so the directory is free).
            store = LevelDBBlockStore(data_dir)
            try:
                stored_height, stored_hash = store.head()
            finally:
                store.close()
            assert stored_height >= head_seen
            assert stored_height >= max(a.height for a in acked)

            seq = _start(tmp_path, data_dir, round_no)
            started.append(seq)
            asyncio.run(_check_after_restart(seq.endpoint, all_acked, stored_height, stored_hash))
        assert len({a.id for a in all_acked}) == len(all_acked)
    finally:
        for proc in started:
            if proc.popen is not None and proc.popen.poll() is None:
                stop_pid(proc.pid, grace=5, popen=proc.popen)
