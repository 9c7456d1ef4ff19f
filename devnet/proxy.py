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
  the next. A paused replica (SIGSTOP) still accepts (into its kernel's
  backlog) and keeps its connections open, so with several targets the proxy
  also probes each one's grpc.health.v1 Check every PROBE_INTERVAL_S (deadline
  PROBE_TIMEOUT_S): a target that fails PROBE_FAILURES probes in a row is down
  until one succeeds; new connections try the targets that are up first (in
  the same order), and the connections piped to a target as it goes down are
  closed, so their nodes reconnect to one that is up. One target: no probes.
- gRPC relay: a grpc.aio server of this process, one per route, that forwards
  every SequencerService call (and health checks) to the sequencer (on a
  list, the first replica that accepts: pick_first) as raw bytes, except
  that the StreamBlocks responses are decoded and tampered according to
  the route's byzantine mode (devnet/tamper.py).

A route given its own target (--route NAME=LISTEN=TARGET) is TCP only: its
connections go to TARGET (any TCP service: the HA sequencers reach their etcd
members this way) with no relay and no byzantine mode, never to --target.
Partition and delay act on it as on any route; a byzantine mode set on it is
refused (write_faults with its targets raises; the proxy logs and ignores one).

With --devnet-dir it also keeps the sequencer's prune floor (devnet/retention.py):
it is the one devnet process that always runs beside the sequencer.

The fault state is a JSON file (DIR/faults.json) the proxy re-reads every
50 ms; read_faults / write_faults below are the one place for its format:
    {"routes": {"alpha": {"partitioned": false, "delay_ms": 0, "byzantine": "corrupt"}}}
"byzantine" is null or one of devnet.tamper.MODES (never on a route with its own
target). The byzantine modes that sign as the sequencer use genesis (--genesis,
default DIR/genesis.json beside the fault file) and the dev sequencer key.

The ready file: {"endpoint", "pid", "routes": {NAME: bound HOST:PORT} for every
route, "targets": {NAME: TARGET} for the routes with their own, "metrics"}."""

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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

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
# With several targets: each one's health is probed this often, each probe with
# this deadline; so many failures in a row and it is down (a paused replica: its
# connections close about PROBE_FAILURES * PROBE_TIMEOUT_S after the pause).
PROBE_INTERVAL_S = 0.25
PROBE_TIMEOUT_S = 0.3
PROBE_FAILURES = 3
# The relay's link to the sequencer is loopback: reconnect quickly after a restart.
# On a list of replicas it pings, as every client on a list does (open_channel),
# so it leaves a paused replica.
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
    target: str = ""  # its own TCP target, HOST:PORT ("": --target, relay and all)
    relay: str = ""  # the route's relay endpoint, where its TCP connections go
    refused: str | None = None  # a byzantine mode asked on a route with a target
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


def write_faults(
    path: Path, routes: dict[str, dict[str, Any]], route_targets: Mapping[str, str] | None = None
) -> None:
    """Replace the fault state atomically (the proxy may read it at any moment).
    `route_targets`: the routes with their own target ({NAME: TARGET}, as the
    proxy's ready file gives them); a byzantine mode on one raises InvalidInput
    and nothing is written."""
    check_faults(routes, route_targets or {})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"routes": routes}, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def check_faults(routes: dict[str, dict[str, Any]], route_targets: Mapping[str, str]) -> None:
    """Raise InvalidInput when a route with its own target has a byzantine mode:
    such a route is plain TCP to a service that is not the sequencer."""
    for name in sorted(routes):
        mode = route_state(routes[name])[2]
        if mode is not None and name in route_targets:
            raise InvalidInput(
                f"route {name} forwards plain TCP to {route_targets[name]}, not the"
                f" sequencer's block stream: no byzantine mode on it (asked: {mode});"
                " partition and delay apply"
            )


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


def parse_route(spec: str) -> tuple[str, str, str]:
    """(name, listen, target) of a --route value, NAME=LISTEN or
    NAME=LISTEN=TARGET (target "" when none); raises InvalidInput."""
    name, _, rest = spec.partition("=")
    listen, _, target = rest.partition("=")
    host, _, port = listen.rpartition(":")
    if not name or not host or not port.isdigit():
        raise InvalidInput(f"--route {spec!r}: want NAME=HOST:PORT[=TARGET_HOST:PORT]")
    if target:
        if "," in target:
            raise InvalidInput(f"--route {spec!r}: its target is one HOST:PORT, not a list")
        split_endpoint(target)
    return name, listen, target


def compute_order(n: int, good: int, down: set[int]) -> list[int]:
    """The indexes of n targets in the order to try them: from `good` round,
    those up before those down, each group in that order."""
    ring = [(good + i) % n for i in range(n)]
    return [i for i in ring if i not in down] + [i for i in ring if i in down]


@dataclass
class Upstream:
    """Where the TCP layer connects: the sequencer, or the first of its replicas
    that accepts, tried in order from the last one that did (`good`), those
    that failed PROBE_FAILURES health probes in a row (probe_targets) last."""

    targets: tuple[tuple[str, int], ...]
    good: int = 0
    failures: list[int] = field(default_factory=list)  # failed probes in a row, per target
    piped: dict[int, set[asyncio.Task[Any]]] = field(default_factory=dict)  # by target

    def __post_init__(self) -> None:
        self.failures = [0] * len(self.targets)
        self.piped = {i: set() for i in range(len(self.targets))}

    def down(self) -> set[int]:
        return {i for i, n in enumerate(self.failures) if n >= PROBE_FAILURES}

    def order(self) -> list[int]:
        """The targets' indexes in the order to try them."""
        return compute_order(len(self.targets), self.good, self.down())

    def record_probe(self, i: int, ok: bool) -> None:
        """Count a probe of target i; when it makes the target down, close the
        connections piped to it (their nodes reconnect, to one that is up)."""
        was_down = self.failures[i] >= PROBE_FAILURES
        self.failures[i] = 0 if ok else self.failures[i] + 1
        host, port = self.targets[i]
        if ok and was_down:
            log.info("sequencer %s:%d answers its health probe again: up", host, port)
        elif not was_down and self.failures[i] >= PROBE_FAILURES:
            log.info(
                "sequencer %s:%d failed %d health probes in a row: down, closing %d connections",
                host,
                port,
                self.failures[i],
                len(self.piped[i]),
            )
            for task in list(self.piped[i]):
                task.cancel()

    async def connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
        """(index, reader, writer) of a connection to the first target that
        accepts; OSError when none does. One target: a plain connect (no
        timeout of ours)."""
        timeout = CONNECT_TIMEOUT_S if len(self.targets) > 1 else None
        error: OSError = OSError("no target")
        for i in self.order():
            host, port = self.targets[i]
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout
                )
            except TimeoutError:
                error = OSError(f"{host}:{port} did not accept within {timeout}s")
                continue
            except OSError as e:
                error = e
                continue
            if i != self.good:
                was, was_port = self.targets[self.good]
                why = "is down" if self.good in self.down() else "did not"
                log.info("sequencer %s:%d accepts (%s:%d %s)", host, port, was, was_port, why)
                self.good = i
            return i, reader, writer
        raise error


async def probe_targets(upstream: Upstream, interval: float = PROBE_INTERVAL_S) -> None:
    """Probe every target's grpc.health.v1 Check (overall health, deadline
    PROBE_TIMEOUT_S) each `interval`, for ever, into upstream.record_probe: not
    SERVING, an error or no answer in time is a failure."""
    channels = [open_channel(f"{h}:{p}", base=UPSTREAM_OPTIONS) for h, p in upstream.targets]
    stubs = [health_pb2_grpc.HealthStub(c) for c in channels]
    request = health_pb2.HealthCheckRequest()
    serving_ = health_pb2.HealthCheckResponse.SERVING

    async def probe(i: int) -> None:
        try:
            r = await stubs[i].Check(request, timeout=PROBE_TIMEOUT_S)
            ok = r.status == serving_
        except aio.AioRpcError:
            ok = False
        upstream.record_probe(i, ok)

    loop = asyncio.get_running_loop()
    try:
        while True:
            start = loop.time()
            await asyncio.gather(*(probe(i) for i in range(len(stubs))))
            await asyncio.sleep(max(0.0, start + interval - loop.time()))
    finally:
        for c in channels:
            await c.close(grace=None)


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
    piped: set[asyncio.Task[Any]] = set()  # the relay's: nobody closes these by target
    try:
        if route.byzantine:
            host, port = split_endpoint(route.relay)
            up_reader, up_writer = await asyncio.open_connection(host, port)
        else:
            i, up_reader, up_writer = await upstream.connect()
            piped = upstream.piped[i]
    except OSError:
        writer.close()
        return
    task = asyncio.current_task()
    assert task is not None
    route.connections.add(task)
    piped.add(task)
    try:
        await asyncio.gather(
            pipe(reader, up_writer, route, TO_SEQUENCER), pipe(up_reader, writer, route, TO_NODE)
        )
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        route.connections.discard(task)
        piped.discard(task)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()


def _plain(route: Route) -> str:
    return f"it forwards plain TCP to {route.target}, not the sequencer's block stream"


def apply_faults(routes: list[Route], state: dict[str, dict[str, Any]]) -> None:
    """Bring every route to the fault state just read."""
    for r in routes:
        partitioned, r.delay_ms, byzantine = route_state(state.get(r.name, {}))
        if byzantine is not None and r.target:
            if r.refused != byzantine:
                log.error("byzantine %s on %s refused: %s", byzantine, r.name, _plain(r))
            r.refused, byzantine = byzantine, None
        else:
            r.refused = None
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
    probes = (
        asyncio.create_task(probe_targets(upstream), name="probe-targets")
        if len(upstream.targets) > 1
        else None
    )
    own = {r.name: Upstream(parse_targets(r.target)) for r in routes if r.target}
    relays = [Relay(r, target, tamperer) for r in routes if not r.target]
    for relay in relays:
        await relay.start()
    apply_faults(routes, read_faults(faults))
    servers = []
    endpoints: dict[str, str] = {}
    for r in routes:
        host, _, port = r.listen.rpartition(":")
        to = own.get(r.name, upstream)
        server = await asyncio.start_server(functools.partial(handle, r, to), host, int(port))
        bound = server.sockets[0].getsockname()[1]
        endpoints[r.name] = f"{host}:{bound}"
        servers.append(server)
    if ready is not None:
        first = next(iter(endpoints.values()), "")
        info: dict[str, Any] = {"endpoint": first, "pid": os.getpid(), "routes": endpoints}
        info["targets"] = {r.name: r.target for r in routes if r.target}
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
    for task in (floor, probes):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
    p.add_argument(
        "--route",
        action="append",
        default=[],
        help="NAME=HOST:PORT (port 0: any), the route's listen address; NAME=HOST:PORT=TARGET:"
        " its connections go to TARGET (HOST:PORT) as plain TCP, no relay, no byzantine mode",
    )
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
    routes = []
    for spec in args.route:
        try:
            name, listen, target = parse_route(spec)
        except InvalidInput as e:
            p.error(str(e))
        routes.append(Route(name, listen, target=target))
    if len({r.name for r in routes}) < len(routes):
        p.error(f"--route: a name given twice: {[r.name for r in routes]}")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s proxy[%(process)d] %(levelname)s %(message)s",
    )
    genesis = args.genesis or args.faults.parent / "genesis.json"
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
