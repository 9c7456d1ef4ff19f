"""A proxy route with its own target (--route NAME=LISTEN=TARGET), against a
real proxy process: its connections go to that target as plain TCP (here a
small echo server of the test's; in the HA devnet an etcd member), never to
the sequencer, while the other routes still reach the sequencer; partition and
delay act on it; a byzantine mode on it is refused and its bytes pass as they
are. The ready file names every route's bound address and the routes' targets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proxysupport import start_proxy_process

from devnet.launcher import Launched, stop_pid
from devnet.proxy import write_faults
from xrollup.client import Client

POLL_S = 0.05  # the proxy re-reads the fault file this often


@pytest.fixture
def proxies() -> Iterator[list[Launched]]:
    started: list[Launched] = []
    yield started
    for proc in started:
        stop_pid(proc.pid, grace=5, popen=proc.popen)


async def round_trip(endpoint: str, data: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
    """Send `data` through `endpoint` and read as many bytes back: (them, seconds)."""
    host, _, port = endpoint.rpartition(":")
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(data)), timeout)
        return got, time.monotonic() - start
    finally:
        writer.close()


async def refused(endpoint: str, timeout: float = 5.0) -> bool:
    """Whether a connection through `endpoint` is closed without an answer."""
    host, _, port = endpoint.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"anyone?")
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), timeout) == b""
    except ConnectionError:
        return True
    finally:
        writer.close()


def test_a_route_with_its_own_target_forwards_plain_tcp_and_takes_faults(
    start_sequencer: Callable[..., Launched], proxies: list[Launched], tmp_path: Path
) -> None:
    seq = start_sequencer()
    faults = tmp_path / "faults.json"

    async def run() -> None:
        accepted = 0

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        target = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        proc, info = start_proxy_process(
            tmp_path, seq.endpoint, ["node", "etcd"], route_targets={"etcd": target}
        )
        proxies.append(proc)
        assert set(info["routes"]) == {"node", "etcd"}
        assert info["targets"] == {"etcd": target}
        etcd, node = info["routes"]["etcd"], info["routes"]["node"]

        async with Client(node) as c:
            assert (await c.status()).height >= 0  # the node's route reaches the sequencer
            assert (await round_trip(etcd, b"hello etcd"))[0] == b"hello etcd"
            assert accepted == 1

            # Partition: an open connection is closed, a new one refused; the node's
            # route is untouched.
            host, _, port = etcd.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"open")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"open"
            write_faults(faults, {"etcd": {"partitioned": True}})
            assert await asyncio.wait_for(reader.read(100), 5) == b""
            writer.close()
            assert await refused(etcd)
            assert accepted == 2  # the refused one never reached the target
            assert (await c.status()).height >= 0

            # Heal, then a delay of 150 ms each way.
            write_faults(faults, {"etcd": {"delay_ms": 150}})
            await asyncio.sleep(4 * POLL_S)
            got, took = await round_trip(etcd, b"slow")
            print(f"a round trip with 150 ms each way took {took * 1000:.0f} ms")
            assert got == b"slow" and took >= 0.3

            # A byzantine mode on it (written without the targets, which would have
            # refused it) is refused by the proxy: the bytes pass as they are.
            write_faults(faults, {"etcd": {"byzantine": "corrupt"}})
            await asyncio.sleep(4 * POLL_S)
            assert (await round_trip(etcd, b"as is"))[0] == b"as is"

        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), 60))
    log = (tmp_path / "proxy.log").read_text()
    assert "byzantine corrupt on etcd refused: it forwards plain TCP to" in log
