"""A list of sequencer endpoints, "A,B" (issue 12), against real sequencer
processes on loopback: a Client on the list stays on A, and when A is killed
(SIGKILL) its next calls, submit_retrying and a resumed block stream reach B
within a bounded time; with spread=True submissions go to both; the devnet
proxy given --target A,B moves its TCP connections and its relay's channel to
B; the prune floor is set on every replica of the list.

A and B here are two independent single sequencers (same dev genesis, separate
data directories), not replicas of one log: their chains differ. That is what
these tests want: they pin the client-side mechanics (which process answered,
how fast the channel moved), and "which process" is readable from which chain
holds an id. The replicated log and its failover are the sequencer's tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from chainsupport import random_transfer
from grpc import aio
from proxysupport import start_proxy_process
from replicasupport import holder, leave_a

from devnet import retention
from devnet.launcher import Launched, stop_pid
from devnet.proxy import write_faults
from devnet.tamper import CORRUPT
from xrollup.client import Client

# Failover is a reconnect on loopback (a dead replica refuses at once): well under
# a second on a quiet machine. The bound leaves room for a loaded 2-core machine.
FAILOVER_BOUND_S = 3.0


def kill(proc: Launched) -> float:
    """SIGKILL `proc` by pid and reap it; the monotonic time it was gone."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.popen is not None
    proc.popen.wait(timeout=10)
    return time.monotonic()


@pytest.fixture
def pair(start_sequencer: Callable[..., Launched]) -> dict[str, Launched]:
    """Two independent sequencers, "a" and "b" (stopped by the shared fixture).
    b starts first, so its chain is the longer one: a stream that moves to it
    finds the next height there at once instead of waiting for b to seal it."""
    b = start_sequencer(name="b")
    return {"a": start_sequencer(name="a"), "b": b}


def test_submit_retrying_and_a_stream_move_to_the_next_replica(
    pair: dict[str, Launched], seed: int
) -> None:
    rng = random.Random(seed)
    asyncio.run(asyncio.wait_for(leave_a(pair, rng, kill, FAILOVER_BOUND_S, "kill"), 60))


def test_every_call_after_the_kill_reaches_the_next_replica_quickly(
    pair: dict[str, Launched],
) -> None:
    """No call in flight at the kill: the next call goes to b. One started before
    gRPC's I/O thread has read the dead connection's end may still fail
    UNAVAILABLE (it was sent on a), so one such failure is allowed."""
    a, b = pair["a"], pair["b"]

    async def run() -> None:
        async with (
            Client(f"{a.endpoint},{b.endpoint}", spread=False) as client,
            Client(b.endpoint) as only_b,
        ):
            b_first = (await only_b.get_block(1)).hash
            assert (await client.get_block(1)).hash != b_first  # on a
            killed = kill(a)
            failed = 0
            while True:
                try:
                    block = await client.get_block(1, timeout=FAILOVER_BOUND_S)
                    break
                except aio.AioRpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                    failed += 1
            took = time.monotonic() - killed
            print(f"first call answered {took * 1000:.0f} ms after the kill, {failed} failed")
            assert block.hash == b_first
            assert failed <= 1
            assert took < 1.0

    asyncio.run(asyncio.wait_for(run(), 60))


def test_spread_sends_submissions_to_every_replica(pair: dict[str, Launched], seed: int) -> None:
    a, b = pair["a"], pair["b"]
    rng = random.Random(seed)

    async def run() -> None:
        async with Client(f"{a.endpoint},{b.endpoint}", spread=True) as client:
            await client.wait_ready()
            expiry = 3_000
            holders = [
                await holder(pair, await client.submit_tx(random_transfer(rng, expiry)))
                for _ in range(20)
            ]
        print({n: holders.count(n) for n in pair})
        assert set(holders) == {"a", "b"}, holders
        # round_robin alternates between ready replicas.
        assert min(holders.count("a"), holders.count("b")) >= 5, holders

    asyncio.run(asyncio.wait_for(run(), 60))


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[[str, list[str]], dict[str, str]]]:
    """Start the devnet proxy to --target `target` with `routes`; its route
    endpoints. Stopped by pid at teardown."""
    started: list[Launched] = []

    def start(target: str, routes: list[str]) -> dict[str, str]:
        proc, info = start_proxy_process(tmp_path, target, routes)
        started.append(proc)
        endpoints: dict[str, str] = info["routes"]
        return endpoints

    yield start
    for proc in started:
        stop_pid(proc.pid, grace=5, popen=proc.popen)


def test_proxy_with_a_target_list_moves_both_paths_to_the_next_replica(
    pair: dict[str, Launched], start_proxy: Callable[..., dict[str, str]], tmp_path: Path, seed: int
) -> None:
    """Route "plain" is the TCP path, route "relay" the gRPC relay's (a byzantine
    mode on: only StreamBlocks is tampered, submissions pass as they are)."""
    a, b = pair["a"], pair["b"]
    rng = random.Random(seed)
    write_faults(tmp_path / "faults.json", {"relay": {"byzantine": CORRUPT}})
    routes = start_proxy(f"{a.endpoint},{b.endpoint}", ["plain", "relay"])

    async def run() -> None:
        async with Client(routes["plain"]) as plain, Client(routes["relay"]) as relay:
            expiry = await plain.expiry()
            for c in (plain, relay):
                ack = await c.submit_retrying(random_transfer(rng, expiry), timeout=10)
                assert await holder(pair, ack) == "a"
            killed = kill(a)
            for name, c in (("plain", plain), ("relay", relay)):
                ack = await c.submit_retrying(random_transfer(rng, expiry), timeout=10)
                took = time.monotonic() - killed
                print(f"{name}: acked by b {took * 1000:.0f} ms after the kill")
                assert await holder(pair, ack) == "b"
                assert took < FAILOVER_BOUND_S

    asyncio.run(asyncio.wait_for(run(), 60))
    log = (tmp_path / "proxy.log").read_text()
    assert f"sequencer {b.endpoint} accepts ({a.endpoint} did not)" in log


def test_proxy_with_one_target_as_before(
    pair: dict[str, Launched], start_proxy: Callable[..., dict[str, str]], tmp_path: Path, seed: int
) -> None:
    """--target A alone: both paths reach A, and nothing else."""
    a = pair["a"]
    rng = random.Random(seed)
    write_faults(tmp_path / "faults.json", {"relay": {"byzantine": CORRUPT}})
    routes = start_proxy(a.endpoint, ["plain", "relay"])

    async def run() -> None:
        async with Client(routes["plain"]) as plain, Client(routes["relay"]) as relay:
            expiry = await plain.expiry()
            for c in (plain, relay):
                ack = await c.submit_retrying(random_transfer(rng, expiry), timeout=10)
                assert await holder(pair, ack) == "a"
            kill(a)
            for c in (plain, relay):
                with pytest.raises(aio.AioRpcError) as e:
                    await c.status(timeout=2.0)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(asyncio.wait_for(run(), 60))


def test_prune_floor_is_set_on_every_replica(
    pair: dict[str, Launched], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keep_prune_floor with "A,B": both get the floor; a dead A holds up nobody."""
    a, b = pair["a"], pair["b"]
    lowest = [3]

    async def node_heights(data_dir: Path, timeout: float = 2.0) -> list[int | None]:
        return list(lowest)

    monkeypatch.setattr(retention, "read_node_heights", node_heights)

    async def floors() -> dict[str, int]:
        out = {}
        for name, proc in pair.items():
            if proc.popen is not None and proc.popen.poll() is not None:
                continue
            async with Client(proc.endpoint) as c:
                out[name] = int((await c.status()).prune_floor)
        return out

    async def until(want: dict[str, int]) -> None:
        deadline = time.monotonic() + 10
        while (got := await floors()) != want:
            assert time.monotonic() < deadline, f"floors {got}, want {want}"
            await asyncio.sleep(0.05)

    async def run() -> None:
        keeper = asyncio.create_task(
            retention.keep_prune_floor(tmp_path, f"{a.endpoint},{b.endpoint}", interval=0.05)
        )
        try:
            await until({"a": 3, "b": 3})
            kill(a)
            lowest[0] = 4
            await until({"b": 4})
        finally:
            keeper.cancel()
            with pytest.raises(asyncio.CancelledError):
                await keeper

    asyncio.run(asyncio.wait_for(run(), 60))


def test_a_list_spreads_by_default_so_a_retry_reaches_another_replica(
    pair: dict[str, Launched],
) -> None:
    """A Client given a list sends each call to the next replica (round_robin), so
    a replica that keeps answering UNAVAILABLE (an HA standby cut off from etcd)
    is never the only one a retry tries."""
    a, b = pair["a"], pair["b"]

    async def run() -> None:
        async with Client(f"{a.endpoint},{b.endpoint}") as client:
            await client.wait_ready()
            firsts = {bytes((await client.get_block(1)).hash) for _ in range(8)}
        assert len(firsts) == 2, "every call went to one replica"

    asyncio.run(run())
