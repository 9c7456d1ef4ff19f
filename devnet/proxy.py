"""`python -m devnet.proxy`: the loopback TCP proxy the devnet puts between every
node and the sequencer, so faults can cut a node off, or slow it down, without
touching its process.

One route per node: the node connects to its route's port, the proxy forwards
to the sequencer. The fault state is a JSON file (DIR/faults.json) the proxy
re-reads every 50 ms: {"routes": {"alpha": {"partitioned": true, "delay_ms": 0}}}.
A partitioned route closes its connections and refuses new ones; a delayed route
holds every chunk for delay_ms in each direction (order kept)."""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("proxy")
POLL_S = 0.05
CHUNK = 64 * 1024


@dataclass
class Route:
    name: str
    listen: str
    partitioned: bool = False
    delay_ms: int = 0
    connections: set[asyncio.Task[Any]] = field(default_factory=set)


def read_faults(path: Path) -> dict[str, dict[str, Any]]:
    """The fault state: {route name: {"partitioned": bool, "delay_ms": int}}."""
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


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route) -> None:
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def pump() -> None:
        while True:
            item = await queue.get()
            if item is None:
                break
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(pump())
    try:
        while data := await reader.read(CHUNK):
            await queue.put((loop.time() + route.delay_ms / 1000, data))
        await queue.put(None)
        await sender
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def handle(
    route: Route, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if route.partitioned:
        writer.close()
        return
    host, _, port = target.rpartition(":")
    try:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
    except OSError:
        writer.close()
        return
    task = asyncio.current_task()
    assert task is not None
    route.connections.add(task)
    try:
        await asyncio.gather(pipe(reader, up_writer, route), pipe(up_reader, writer, route))
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        route.connections.discard(task)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()


async def serve(target: str, routes: list[Route], faults: Path, ready: Path | None) -> None:
    servers = []
    endpoints: dict[str, str] = {}
    for r in routes:
        host, _, port = r.listen.rpartition(":")
        server = await asyncio.start_server(functools.partial(handle, r, target), host, int(port))
        bound = server.sockets[0].getsockname()[1]
        endpoints[r.name] = f"{host}:{bound}"
        servers.append(server)
    if ready is not None:
        first = next(iter(endpoints.values()), "")
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": first, "pid": os.getpid(), "routes": endpoints}))
        tmp.replace(ready)
    log.info("proxy to %s: %s", target, endpoints)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        state = read_faults(faults)
        for r in routes:
            s = state.get(r.name, {})
            partitioned = bool(s.get("partitioned", False))
            delay = s.get("delay_ms", 0)
            r.delay_ms = int(delay) if isinstance(delay, int) else 0
            if partitioned and not r.partitioned:
                log.info("partition %s: closing %d connections", r.name, len(r.connections))
                for t in list(r.connections):
                    t.cancel()
            elif r.partitioned and not partitioned:
                log.info("heal %s", r.name)
            r.partitioned = partitioned
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devnet.proxy", description=__doc__)
    p.add_argument("--target", required=True, help="the sequencer's HOST:PORT")
    p.add_argument("--route", action="append", default=[], help="NAME=HOST:PORT (port 0: any)")
    p.add_argument("--faults", type=Path, required=True, help="the fault state file")
    p.add_argument("--ready-file", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s proxy[%(process)d] %(levelname)s %(message)s",
    )
    routes = []
    for spec in args.route:
        name, _, listen = spec.partition("=")
        routes.append(Route(name, listen))
    asyncio.run(serve(args.target, routes, args.faults, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
