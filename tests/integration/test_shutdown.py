"""Graceful shutdown of a real sequencer on SIGTERM while clients submit: health
goes NOT_SERVING, submissions in flight are sealed and acknowledged before the
process exits with code 0, and every acknowledged one is on disk after restart."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import grpc
from chainsupport import (
    Acked,
    assert_acked_by_get_submission,
    assert_acked_in_chain,
    assert_clean_log,
    id_of,
    index_entries,
    random_transfer,
    read_verified_chain,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devnet.launcher import check_health
from xrollup.client import Client

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CLIENTS = 8


async def _client(
    endpoint: str, rng: random.Random, expiry: int, acked: list[tuple[float, Acked]]
) -> None:
    """Submit until refused; record each acknowledgement with the time it arrived."""
    async with Client(endpoint) as client:
        try:
            while True:
                if rng.random() < 0.5:
                    tx = random_transfer(rng, expiry)
                    ack = await client.submit_tx(tx, timeout=10)
                    assert ack.id == id_of(tx)
                    acked.append((time.monotonic(), Acked(ack.id, ack.height, ack.index)))
                else:
                    items = await client.submit_batch(
                        [random_transfer(rng, expiry) for _ in range(rng.randint(2, 6))], timeout=10
                    )
                    now = time.monotonic()
                    for item in items:
                        if item.ok:
                            acked.append((now, Acked(item.id, item.height, item.index)))
                        else:
                            # Admitted while serving, refused once draining began.
                            assert item.code == grpc.StatusCode.UNAVAILABLE, item
                            assert "shutting down" in item.message
                    if not all(i.ok for i in items):
                        return
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, f"{e.code()}: {e.details()}"


def test_sigterm_drains_acknowledges_and_exits_cleanly(start_sequencer, seed: int) -> None:
    # A slow block interval, so submissions are waiting in the pool when SIGTERM lands.
    seq = start_sequencer(block_interval_ms=400)
    assert seq.popen is not None
    rng = random.Random(seed)

    async def run() -> tuple[list[tuple[float, Acked]], float, list[int]]:
        acked: list[tuple[float, Acked]] = []
        health_seen: list[int] = []
        async with Client(seq.endpoint) as probe:
            expiry = await probe.expiry()
            tasks = [
                asyncio.create_task(
                    _client(seq.endpoint, random.Random(rng.getrandbits(64)), expiry, acked)
                )
                for _ in range(CLIENTS)
            ]
            # Watch health over the standard service from before the signal.
            channel = grpc.aio.insecure_channel(seq.endpoint)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            first = await watch.read()
            health_seen.append(first.status)

            await asyncio.sleep(rng.uniform(0.5, 1.0))
            while (await probe.status()).pending < CLIENTS // 2:
                await asyncio.sleep(0.005)
            seq.popen.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            try:
                while health_seen[-1] != NOT_SERVING:
                    update = await asyncio.wait_for(watch.read(), 5)
                    if update is grpc.aio.EOF:
                        break
                    health_seen.append(update.status)
            except grpc.aio.AioRpcError:
                pass  # the server ended the watch as it stopped
            watch.cancel()
            await channel.close()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
        return acked, signalled, health_seen

    acked_timed, signalled, health_seen = asyncio.run(run())
    code = seq.popen.wait(timeout=10)
    exited = time.monotonic()
    assert code == 0, f"exit code {code}"
    assert exited - signalled < 5, f"took {exited - signalled:.1f}s to exit after SIGTERM"
    assert health_seen[0] == SERVING
    assert health_seen[-1] == NOT_SERVING, f"health went {health_seen}, never NOT_SERVING"
    assert not check_health(seq.endpoint), "still answering health after exit"

    acked = [a for _, a in acked_timed]
    after_signal = [a for t, a in acked_timed if t > signalled]
    assert after_signal, "no in-flight submission was acknowledged during the drain"
    print(
        f"{len(acked)} acknowledged, {len(after_signal)} of them after SIGTERM; "
        f"health {health_seen}"
    )

    restarted = start_sequencer(data_dir=seq.data_dir, name="restarted")

    async def check() -> None:
        async with Client(restarted.endpoint) as client:
            where = index_entries(await read_verified_chain(client))
            assert_acked_in_chain(acked, where)
            await assert_acked_by_get_submission(client, acked)

    asyncio.run(check())
    assert_clean_log(seq.log)
