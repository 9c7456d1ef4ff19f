"""A paused sequencer replica (SIGSTOP) is detected and left, against real
processes on loopback. A stopped process keeps its TCP connections open and the
kernel even accepts new ones into its backlog, so only an unanswered ping shows
it: clients on a list of replicas ping every second and drop a connection whose
ping is not answered within a second (xrollup/client.py KEEPALIVE_OPTIONS), and
the proxy probes each target's health and steers its TCP layer away from one
that stops answering.

As in test_multi_endpoint, a and b are two independent sequencers (their chains
differ), so which chain holds an id says which process answered. Every paused
process is resumed before the fixtures stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from proxysupport import start_proxy_process
from replicasupport import leave_a

from devnet.launcher import Launched, stop_pid
from devnet.proxy import PROBE_FAILURES
from xrollup import serving
from xrollup.client import CHANNEL_OPTIONS, KEEPALIVE_OPTIONS, Client
from xrollup.v1 import types_pb2 as pb

# Ping every 1 s, 1 s to answer: a paused replica is left within about 2 s, plus
# the reconnect; the bound leaves room for a loaded 2-core machine.
DETECT_BOUND_S = 5.0


@pytest.fixture
def pair(start_sequencer: Callable[..., Launched]) -> Iterator[dict[str, Launched]]:
    """Two independent sequencers, "a" and "b" (b first: its chain is the longer,
    so a stream that moves to it finds the next height at once). Any that a test
    paused is resumed at teardown, before the shared fixture stops them."""
    b = start_sequencer(name="b")
    procs = {"a": start_sequencer(name="a"), "b": b}
    yield procs
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)


def pause(proc: Launched) -> float:
    """SIGSTOP `proc` by pid; the monotonic time it stopped."""
    os.kill(proc.pid, signal.SIGSTOP)
    return time.monotonic()


def test_a_client_leaves_a_paused_replica(pair: dict[str, Launched], seed: int) -> None:
    """A Client on a,b: with a paused, submit_retrying is acked by b and a
    follow() stream goes on at the next height with b's blocks, both within a
    few seconds of the pause."""
    rng = random.Random(seed)

    def resume(proc: Launched) -> None:
        os.kill(proc.pid, signal.SIGCONT)

    asyncio.run(asyncio.wait_for(leave_a(pair, rng, pause, DETECT_BOUND_S, "pause", resume), 60))


def test_long_streams_and_idle_clients_keep_their_connection(
    pair: dict[str, Launched],
) -> None:
    """The pings do not cost a healthy connection: a client on a,b (so it pings)
    idle for 4 s stays READY (a server that refused pings this often would close
    it with GOAWAY too_many_pings), and a StreamBlocks of 20 ms blocks on another
    runs 4 s unbroken."""
    both = f"{pair['a'].endpoint},{pair['b'].endpoint}"

    async def run() -> None:
        async with Client(both) as idle, Client(both) as streaming:
            await idle.status()
            start = int((await streaming.status()).height) + 1
            heights: list[int] = []
            states = set()
            loop = asyncio.get_running_loop()
            end = loop.time() + 4.0
            async for block in streaming.stream_blocks(start):
                heights.append(block.header.height)
                states.add(idle.channel.get_state(try_to_connect=False))
                if loop.time() > end:
                    break
            assert heights == list(range(start, start + len(heights)))
            assert len(heights) >= 50, len(heights)  # 20 ms blocks, a loaded machine
            assert states == {grpc.ChannelConnectivity.READY}, states

    asyncio.run(asyncio.wait_for(run(), 60))


def test_servers_permit_the_clients_pings() -> None:
    """build_server takes a ping a second from an idle client; a server with
    gRPC's defaults would not (the control: it says GOAWAY too_many_pings after
    two, and the channel drops to IDLE)."""

    async def states_over(server: aio.Server, seconds: float) -> set[grpc.ChannelConnectivity]:
        serving.add_health_and_reflection(server, [])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = aio.insecure_channel(
            f"127.0.0.1:{port}", options=[*CHANNEL_OPTIONS, *KEEPALIVE_OPTIONS]
        )
        try:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            seen = set()
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                seen.add(channel.get_state(try_to_connect=False))
                await asyncio.sleep(0.05)
            return seen
        finally:
            await channel.close(grace=None)
            await server.stop(grace=None)

    async def run() -> None:
        assert await states_over(serving.build_server(1 << 20), 4.0) == {
            grpc.ChannelConnectivity.READY
        }
        assert grpc.ChannelConnectivity.IDLE in await states_over(aio.server(), 4.0)

    asyncio.run(asyncio.wait_for(run(), 30))


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[Launched]]:
    """Proxies a test starts (proxysupport); stopped by pid at teardown."""
    started: list[Launched] = []
    yield started
    for proc in started:
        stop_pid(proc.pid, grace=5, popen=proc.popen)


def test_the_proxy_moves_a_node_stream_off_a_paused_target(
    pair: dict[str, Launched],
    proxies: list[Launched],
    tmp_path: Path,
) -> None:
    """The proxy with --target a,b and a follow() stream through its route, by a
    client on that route alone, as a node is (one endpoint: it does not ping, so
    only the proxy can move it): with a paused, the proxy's probes find a down,
    close the connection piped to it, and the client's reconnect lands on b; the
    stream goes on at the next height."""
    a, b = pair["a"], pair["b"]
    proc, info = start_proxy_process(tmp_path, f"{a.endpoint},{b.endpoint}", ["node"])
    proxies.append(proc)

    async def run() -> None:
        async with Client(info["routes"]["node"]) as client:
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
            paused = pause(a)
            await asyncio.wait_for(following, DETECT_BOUND_S + 10)
            os.kill(a.pid, signal.SIGCONT)

        heights = [blk.header.height for blk in seen]
        assert heights == list(range(1, a_head + 6)), "gap or repeat across the move"
        async with Client(b.endpoint) as only_b:
            from_b = [(await only_b.get_block(h)).hash == blk.hash for h, blk in enumerate(seen, 1)]
        switched = from_b.index(True)
        assert not any(from_b[:switched]) and all(from_b[switched:]), from_b
        resumed = arrived[switched] - paused
        print(f"the stream's first block from b {resumed * 1000:.0f} ms after the pause")
        assert resumed < DETECT_BOUND_S

    asyncio.run(asyncio.wait_for(run(), 60))
    log = (tmp_path / "proxy.log").read_text()
    assert f"sequencer {a.endpoint} failed {PROBE_FAILURES} health probes in a row" in log
    assert f"sequencer {b.endpoint} accepts ({a.endpoint} is down)" in log
