"""`python -m devnet.proxy`: the loopback proxy the devnet puts between every
node and the sequencer, so faults can cut a node off, slow it down, or feed it
a byzantine block stream, without touching its process.

One route per node, two layers per route:
- TCP: the node connects to its route's port; the proxy forwards the bytes to
  the sequencer, or to the route's relay while the route has a byzantine mode
  (an honest link pays for no gRPC hop; turning a mode on or off closes the
  route's connections so the node reconnects through the right path). A
  partitioned route closes its connections and refuses new ones; a delayed
  route holds every chunk for delay_ms in each direction (order kept).
  With --target A,B,C (a sequencer's replicas), each new connection goes to
  the first that accepts, tried in order from the last one that did; when
  that replica dies its connections close and the node's reconnect lands on
  the next.
- gRPC relay: a grpc.aio server of this process, one per route, that forwards
  every SequencerService call (and health checks) to the sequencer (on a
  list, the first replica that accepts: pick_first) as raw bytes, except
  that the StreamBlocks responses are decoded and tampered according to
  the route's byzantine mode (devnet/tamper.py).

With --devnet-dir it also keeps the sequencer's prune floor (devnet/retention.py):
it is the one devnet process that always runs beside the sequencer.

The fault state is a JSON file (DIR/faults.json) the proxy re-reads every
50 ms; read_faults / write_faults below are the one place for its format:
    {"routes": {"alpha": {"partitioned": false, "delay_ms": 0, "byzantine": "corrupt"}}}
"byzantine" is null or one of devnet.tamper.MODES. The byzantine modes that
sign as the sequencer use genesis (--genesis, default DIR/genesis.json beside
the fault file) and the dev sequencer key."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from grpc_health.v1 import health_pb2

from devnet.proxy_metrics import ProxyMetrics
from devnet.retention import keep_prune_floor
from devnet.tamper import MODES, Tamperer
from xrollup import serving
from xrollup.client import CHANNEL_OPTIONS, open_channel
from xrollup.endpoints import is_grpc_uri, parse_endpoints, split_endpoint
from xrollup.errors import InvalidInput
from xrollup.genesis import load_genesis
from xrollup.metrics import add_metrics_argument, serve_metrics
from xrollup.v1 import sequencer_pb2

log = logging.getLogger("proxy")
POLL_S = 0.05
CHUNK = 64 * 1024
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # as xrollup/client.py: a block is one message
SEQUENCER_SERVICE = sequencer_pb2.DESCRIPTOR.services_by_name["SequencerService"]
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]
STREAM_BLOCKS = f"/{SEQUENCER_SERVICE.full_name}/StreamBlocks"
TO_SEQUENCER, TO_NODE = "to_sequencer", "to_node"  # the directions bytes are counted in
# With several targets, how long one may take to accept before the next is tried
# (loopback: a dead replica refuses at once; this bounds one that drops SYNs).
CONNECT_TIMEOUT_S = 0.5
# The relay's link to the sequencer is loopback: reconnect quickly after a restart.
# It pings as every client does (CHANNEL_OPTIONS), so it leaves a paused replica.
UPSTREAM_OPTIONS = [
    *(o for o in CHANNEL_OPTIONS if o[0] != "grpc.max_reconnect_backoff_ms"),
    ("grpc.max_reconnect_backoff_ms", 250),
]
# The relay is a server its nodes ping as they ping the sequencer (as xrollup/serving.py).
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    *serving.KEEPALIVE_OPTIONS,
]


@dataclass
class Route:
    name: str
    listen: str
    partitioned: bool = False
    delay_ms: int = 0
    byzantine: str | None = None
    relay: str = ""  # the route's relay endpoint, where its TCP connections go
    connections: set[asyncio.Task[Any]] = field(default_factory=set)
    # For the metrics (devnet/proxy_metrics.py): plain counts, one add per chunk.
    accepted: int = 0  # TCP connections accepted, also those closed at once (partitioned)
    relayed: dict[str, int] = field(default_factory=lambda: {TO_SEQUENCER: 0, TO_NODE: 0})


def read_faults(path: Path) -> dict[str, dict[str, Any]]:
    """The fault state: {route name: {"partitioned": bool, "delay_ms": int,
    "byzantine": MODE or None}} (a missing field is its default)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    routes = doc.get("routes", {})
    return routes if isinstance(routes, dict) else {}


def write_faults(path: Path, routes: dict[str, dict[str, Any]]) -> None:
    """Replace the fault state atomically (the proxy may read it at any moment)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"routes": routes}, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def route_state(doc: dict[str, Any]) -> tuple[bool, int, str | None]:
    """(partitioned, delay_ms, byzantine) of one route's entry, defaults filled in."""
    delay = doc.get("delay_ms", 0)
    mode = doc.get("byzantine")
    return (
        bool(doc.get("partitioned", False)),
        delay if isinstance(delay, int) else 0,
        mode if mode in MODES else None,
    )


# ---------------------------------------------------------------- the gRPC relay


def _stream_rollup(request: bytes) -> str:
    """The rollup a StreamBlocks request filters to ("" for every entry, or when
    the request does not parse: the sequencer answers that one itself)."""
    try:
        return sequencer_pb2.StreamBlocksRequest.FromString(request).rollup
    except DecodeError:
        return ""


class Relay:
    """One route's gRPC layer: a server on 127.0.0.1 that forwards every call to
    the sequencer as raw bytes (identity serializers: nothing is decoded),
    applying the route's byzantine mode, when it has one, to the StreamBlocks
    responses. Statuses and details from the sequencer are passed back as
    they are; deadlines are passed on."""

    def __init__(self, route: Route, target: str, tamperer: Tamperer) -> None:
        self.route = route
        self.tamperer = tamperer
        self.channel = open_channel(target, base=UPSTREAM_OPTIONS)
        self.server = aio.server(options=SERVER_OPTIONS)
        for service in (SEQUENCER_SERVICE, HEALTH_SERVICE):
            handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                if m.client_streaming:
                    continue  # none in these services
                if m.server_streaming:
                    handlers[m.name] = grpc.unary_stream_rpc_method_handler(
                        self._streamer(path, tamper=path == STREAM_BLOCKS)
                    )
                else:
                    handlers[m.name] = grpc.unary_unary_rpc_method_handler(self._forwarder(path))
            self.server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service.full_name, handlers)]
            )

    async def start(self) -> str:
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.route.relay = f"127.0.0.1:{port}"
        return self.route.relay

    async def stop(self) -> None:
        await self.server.stop(grace=0.5)
        await self.channel.close(grace=None)

    def _forwarder(
        self, path: str
    ) -> Callable[[bytes, aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]:
        upstream = self.channel.unary_unary(path, None, None)

        async def forward(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                response: bytes = await upstream(request, timeout=context.time_remaining())
            except aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")
                raise  # not reached: abort raises
            return response

        return forward

    def _streamer(
        self, path: str, tamper: bool
    ) -> Callable[[bytes, aio.ServicerContext[bytes, bytes]], AsyncIterator[bytes]]:
        upstream = self.channel.unary_stream(path, None, None)

        async def stream(
            request: bytes, context: aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            call = upstream(request, timeout=context.time_remaining())
            rollup = _stream_rollup(request) if tamper else ""
            try:
                async for raw in call:
                    mode = self.route.byzantine if tamper else None
                    if mode is None:
                        yield raw
                        continue
                    for out in self._tamper(mode, raw, rollup):
                        yield out
            except aio.AioRpcError as e:
                await context.abort(e.code(), e.details() or "")
            finally:
                call.cancel()

        return stream

    def _tamper(self, mode: str, raw: bytes, rollup: str) -> list[bytes]:
        try:
            return self.tamperer.apply_bytes(mode, raw, rollup)
        except Exception:  # a bug here must not cut the link: say so and pass it on
            log.exception(
                "byzantine %s on %s: tampering failed; block passed on", mode, self.route.name
            )
            return [raw]


# ---------------------------------------------------------------- the TCP layer


def parse_targets(text: str) -> tuple[tuple[str, int], ...]:
    """(host, port) of each sequencer replica in --target "A" or "A,B,C";
    raises InvalidInput (the TCP layer needs HOST:PORT, not a gRPC URI)."""
    if is_grpc_uri(text):
        raise InvalidInput(f"{text!r}: the proxy forwards TCP: want HOST:PORT[,HOST:PORT...]")
    return tuple(split_endpoint(e) for e in parse_endpoints(text))


@dataclass
class Upstream:
    """Where the TCP layer connects: the sequencer, or the first of its replicas
    that accepts, tried in order from the last one that did (`good`)."""

    targets: tuple[tuple[str, int], ...]
    good: int = 0

    def order(self) -> list[int]:
        """The targets' indexes in the order to try them."""
        n = len(self.targets)
        return [(self.good + i) % n for i in range(n)]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the first target that accepts; OSError when none does.
        One target: as a plain connect (no timeout of ours)."""
        timeout = CONNECT_TIMEOUT_S if len(self.targets) > 1 else None
        error: OSError = OSError("no target")
        for i in self.order():
            host, port = self.targets[i]
            try:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except TimeoutError:
                error = OSError(f"{host}:{port} did not accept within {timeout}s")
                continue
            except OSError as e:
                error = e
                continue
            if i != self.good:
                was, was_port = self.targets[self.good]
                log.info("sequencer %s:%d accepts (%s:%d did not)", host, port, was, was_port)
                self.good = i
            return conn
        raise error


async def pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route, direction: str
) -> None:
    """Copy reader to writer, holding each chunk delay_ms; undelayed chunks are
    written at once (when nothing delayed is still queued ahead of them). Bytes
    read are counted in route.relayed[direction]."""
    relayed = route.relayed
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    queued = 0  # chunks put and not yet written

    async def pump() -> None:
        nonlocal queued
        while True:
            item = await queue.get()
            if item is None:
                break
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            queued -= 1
            await writer.drain()

    sender = asyncio.create_task(pump())
    try:
        while data := await reader.read(CHUNK):
            relayed[direction] += len(data)
            if not route.delay_ms and not queued:
                writer.write(data)
                await writer.drain()
                continue
            queued += 1
            await queue.put((loop.time() + route.delay_ms / 1000, data))
        await queue.put(None)
        await sender
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def handle(
    route: Route, upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    route.accepted += 1
    if route.partitioned:
        writer.close()
        return
    try:
        if route.byzantine:
            host, port = split_endpoint(route.relay)
            up_reader, up_writer = await asyncio.open_connection(host, port)
        else:
            up_reader, up_writer = await upstream.connect()
    except OSError:
        writer.close()
        return
    task = asyncio.current_task()
    assert task is not None
    route.connections.add(task)
    try:
        await asyncio.gather(
            pipe(reader, up_writer, route, TO_SEQUENCER), pipe(up_reader, writer, route, TO_NODE)
        )
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        route.connections.discard(task)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()


def apply_faults(routes: list[Route], state: dict[str, dict[str, Any]]) -> None:
    """Bring every route to the fault state just read."""
    for r in routes:
        partitioned, r.delay_ms, byzantine = route_state(state.get(r.name, {}))
        if partitioned and not r.partitioned:
            log.info("partition %s: closing %d connections", r.name, len(r.connections))
            for t in list(r.connections):
                t.cancel()
        elif r.partitioned and not partitioned:
            log.info("heal %s", r.name)
        r.partitioned = partitioned
        if byzantine != r.byzantine:
            log.info("byzantine %s: %s", r.name, byzantine or "off (honest stream)")
            if (byzantine is None) != (r.byzantine is None):
                # Into or out of the relay's path: the node reconnects through it.
                for t in list(r.connections):
                    t.cancel()
        r.byzantine = byzantine


async def serve(
    target: str,
    routes: list[Route],
    faults: Path,
    ready: Path | None,
    genesis: Path | None,
    metrics_listen: str | None = None,
    devnet_dir: Path | None = None,
) -> None:
    tamperer = Tamperer(load_genesis(genesis))
    metrics_server = None
    if metrics_listen:
        metrics_server = serve_metrics(ProxyMetrics(routes).registry, metrics_listen)
    upstream = Upstream(parse_targets(target))
    relays = [Relay(r, target, tamperer) for r in routes]
    for relay in relays:
        await relay.start()
    apply_faults(routes, read_faults(faults))
    servers = []
    endpoints: dict[str, str] = {}
    for r in routes:
        host, _, port = r.listen.rpartition(":")
        server = await asyncio.start_server(functools.partial(handle, r, upstream), host, int(port))
        bound = server.sockets[0].getsockname()[1]
        endpoints[r.name] = f"{host}:{bound}"
        servers.append(server)
    if ready is not None:
        first = next(iter(endpoints.values()), "")
        info: dict[str, Any] = {"endpoint": first, "pid": os.getpid(), "routes": endpoints}
        if metrics_server is not None:
            info["metrics"] = metrics_server.url
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(ready)
    log.info(
        "proxy to %s: %s%s",
        target,
        endpoints,
        f", metrics {metrics_server.url}" if metrics_server is not None else "",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    floor = (
        asyncio.create_task(keep_prune_floor(devnet_dir, target), name="prune-floor")
        if devnet_dir is not None
        else None
    )
    while not stop.is_set():
        apply_faults(routes, read_faults(faults))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    if floor is not None:
        floor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await floor
    for server in servers:
        server.close()
    for relay in relays:
        await relay.stop()
    if metrics_server is not None:
        metrics_server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devnet.proxy", description=__doc__)
    p.add_argument(
        "--target",
        required=True,
        help="the sequencer's HOST:PORT, or its replicas' as a comma-separated list"
        " (each new connection goes to the first that accepts)",
    )
    p.add_argument("--route", action="append", default=[], help="NAME=HOST:PORT (port 0: any)")
    p.add_argument("--faults", type=Path, required=True, help="the fault state file")
    p.add_argument("--genesis", type=Path, default=None, help="default: genesis.json beside it")
    p.add_argument("--ready-file", type=Path, default=None)
    p.add_argument(
        "--devnet-dir",
        type=Path,
        default=None,
        help="keep the sequencer's prune floor at the lowest applied height of this"
        " devnet's nodes and its snapshots' heights (devnet/retention.py)",
    )
    add_metrics_argument(p)
    args = p.parse_args(argv)
    try:
        parse_targets(args.target)
    except InvalidInput as e:
        p.error(f"--target: {e}")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s proxy[%(process)d] %(levelname)s %(message)s",
    )
    genesis = args.genesis or args.faults.parent / "genesis.json"
    routes = []
    for spec in args.route:
        name, _, listen = spec.partition("=")
        routes.append(Route(name, listen))
    asyncio.run(
        serve(
            args.target,
            routes,
            args.faults,
            args.ready_file,
            genesis if genesis.exists() else None,
            args.metrics_listen,
            args.devnet_dir,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
