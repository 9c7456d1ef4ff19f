"""`python -m devnet.explorer`: the web explorer as a process. Binds its port
(port 0: any free one), starts following the sequencer's blocks, then writes
the ready file {"endpoint": "127.0.0.1:PORT", "url": "http://127.0.0.1:PORT/"}.
Endpoints come from DIR/devnet.json (--data-dir) or --sequencer/--node; genesis
from --genesis, else DIR/genesis.json, else the embedded dev genesis. SIGTERM
(or SIGINT) stops it: in-flight requests finish, the channels close, exit 0."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator
from pathlib import Path

import uvicorn

from devnet.explorer.app import create_app
from devnet.explorer.index import MAX_BLOCKS, ChainIndex
from devnet.explorer.sources import NodeRef, Sources
from devnet.manifest import GENESIS
from xrollup.genesis import Genesis, decode_genesis, dev_genesis

log = logging.getLogger("explorer")


class _Server(uvicorn.Server):
    """uvicorn, but a signal only asks it to stop: uvicorn's own handler re-raises
    the signal after shutting down, and the process would die of it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGTERM, signal.SIGINT)
        for sig in sigs:
            loop.add_signal_handler(sig, self._stop)
        try:
            yield
        finally:
            for sig in sigs:
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        self.should_exit = True


def parse_nodes(specs: list[str]) -> list[NodeRef]:
    """ROLLUP=HOST:PORT each; a second node of a rollup is named ROLLUP-2, ..."""
    out: list[NodeRef] = []
    for spec in specs:
        rollup, sep, endpoint = spec.partition("=")
        if not sep or not rollup or not endpoint:
            raise SystemExit(f"--node {spec!r}: want ROLLUP=HOST:PORT")
        seen = sum(1 for n in out if n.rollup == rollup)
        out.append(NodeRef(rollup if not seen else f"{rollup}-{seen + 1}", rollup, endpoint))
    return out


def read_genesis(path: Path | None, data_dir: Path | None) -> Genesis:
    if path is None and data_dir is not None and (data_dir / GENESIS).exists():
        path = data_dir / GENESIS
    return decode_genesis(path.read_text()) if path is not None else dev_genesis()


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    return sock


async def serve(sources: Sources, index: ChainIndex, listen: str, ready: Path | None) -> None:
    sock = bind(listen)
    host, port = sock.getsockname()[:2]
    endpoint = f"{host}:{port}"
    config = uvicorn.Config(
        create_app(sources, index),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task  # raises what stopped it
            return
        await asyncio.sleep(0.01)
    url = f"http://{endpoint}/"
    if ready is not None:
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": endpoint, "url": url, "pid": os.getpid()}))
        tmp.replace(ready)
    log.info("explorer serving on %s (sequencer %s)", url, sources.sequencer_endpoint())
    await task
    log.info("explorer stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devnet.explorer", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=None, help="the devnet's directory")
    p.add_argument("--sequencer", default=None, help="HOST:PORT (default: from devnet.json)")
    p.add_argument(
        "--node", action="append", default=[], help="ROLLUP=HOST:PORT (default: devnet.json)"
    )
    p.add_argument("--genesis", type=Path, default=None, help="default: DIR/genesis.json")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    p.add_argument("--ready-file", type=Path, default=None)
    p.add_argument("--keep-blocks", type=int, default=MAX_BLOCKS, help="blocks kept in memory")
    args = p.parse_args(argv)
    if args.data_dir is None and args.sequencer is None:
        p.error("give --data-dir (a devnet's directory) or --sequencer HOST:PORT")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s explorer[%(process)d] %(levelname)s %(message)s",
    )
    data_dir = args.data_dir.resolve() if args.data_dir else None
    sources = Sources(
        read_genesis(args.genesis, data_dir), data_dir, args.sequencer, parse_nodes(args.node)
    )
    asyncio.run(
        serve(sources, ChainIndex(max_blocks=args.keep_blocks), args.listen, args.ready_file)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
