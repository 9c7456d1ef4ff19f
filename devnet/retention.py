"""The devnet's prune floor: the sequencer deletes historic blocks only below a
floor that every node and every snapshot is past (sequencer/core/retention.py),
and only the devnet knows them all, offline ones included. The fault proxy, the
one devnet process that always runs beside the sequencer, runs `keep_prune_floor`
(python -m devnet.proxy --devnet-dir DIR): about once a second it asks every node
of devnet.json for its applied height, reads each snapshot's height in
DIR/snapshots/*/snapshot.json, and sets the sequencer's floor to the lowest
(SetPruneFloor; every replica's, when the proxy's --target lists several). A
node that does not answer (stopped, paused, restarting, cut off) holds the floor
where it was, so a stopped node finds every block it needs when it comes back;
the floor never moves while any node is unheard of.

A snapshot being saved holds the floor from before its processes are asked
(`hold_floor`: DIR/snapshots/.hold-NAME names its height) until it is complete
or has failed (`release_floor`); a hold left by a save that died holds for
HOLD_SECONDS. What this cannot protect: a node that is not in devnet.json
(started by hand against the sequencer): only the sequencer's --retain-blocks
window covers it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from grpc import aio

from devnet.manifest import load_manifest
from xrollup.client import Client, NodeClient
from xrollup.endpoints import parse_endpoints
from xrollup.snapshots import SNAPSHOTS

log = logging.getLogger("proxy")
INTERVAL_S = 1.0
SNAPSHOT_FILE = "snapshot.json"  # as devnet/snapshot.py writes it
HOLD = ".hold-"
HOLD_SECONDS = 600.0  # a hold older than this is a save that died


def hold_floor(data_dir: Path, name: str, height: int) -> None:
    """Snapshot `name` of height `height` is being saved: keep blocks after it."""
    root = data_dir / SNAPSHOTS
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{HOLD}{name}.tmp"
    tmp.write_text(str(height))
    tmp.replace(root / f"{HOLD}{name}")


def release_floor(data_dir: Path, name: str) -> None:
    (data_dir / SNAPSHOTS / f"{HOLD}{name}").unlink(missing_ok=True)


def compute_prune_floor(
    node_heights: Sequence[int | None], snapshot_heights: Sequence[int] | None
) -> int | None:
    """The lowest height a node has applied or a snapshot was taken at, or None
    (keep the floor where it is) when a node is unheard of, there is no node, or
    the snapshots could not all be read."""
    if not node_heights or snapshot_heights is None:
        return None
    known = [h for h in node_heights if h is not None]
    if len(known) != len(node_heights):
        return None
    return min([*known, *snapshot_heights])


def read_snapshot_heights(data_dir: Path, now: float | None = None) -> list[int] | None:
    """The height of every snapshot of the devnet (its staging folders too, once
    they hold snapshot.json) and of every one being saved (its hold, younger than
    HOLD_SECONDS at `now`, time.time()); None when one does not read."""
    root = data_dir / SNAPSHOTS
    heights: list[int] = []
    if not root.is_dir():
        return heights
    now = time.time() if now is None else now
    try:
        for path in sorted(root.iterdir()):
            file = path / SNAPSHOT_FILE
            if file.is_file():
                heights.append(int(json.loads(file.read_text())["height"]))
            elif (
                path.name.startswith(HOLD)
                and not path.name.endswith(".tmp")
                and now - path.stat().st_mtime < HOLD_SECONDS
            ):
                heights.append(int(path.read_text()))
    except FileNotFoundError:
        return None  # renamed or released while we looked: next time
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return heights


async def read_node_heights(data_dir: Path, timeout: float = 2.0) -> list[int | None]:
    """Each node's applied height as it answers now (None: it does not answer)."""
    manifest = load_manifest(data_dir)
    nodes = [p for p in manifest.processes if p.role == "node"] if manifest else []

    async def one(endpoint: str) -> int | None:
        try:
            async with NodeClient(endpoint) as n:
                return int((await n.status(timeout=timeout)).applied_height)
        except (aio.AioRpcError, OSError):
            return None

    return list(await asyncio.gather(*(one(p.endpoint) for p in nodes)))


async def keep_prune_floor(data_dir: Path, sequencer: str, interval: float = INTERVAL_S) -> None:
    """Set the sequencer's prune floor every `interval` seconds until cancelled.
    `sequencer` may list replicas, "A,B,C": each keeps its own copy of the
    blocks, so each is told the floor (one that does not answer is told again
    next time, without holding up the others)."""
    last: dict[str, int] = {}
    clients = [Client(replica) for replica in parse_endpoints(sequencer)]

    async def tell(client: Client, floor: int) -> None:
        try:
            await client.set_prune_floor(floor, timeout=5.0)
            last[client.endpoint] = floor
        except aio.AioRpcError as e:  # the sequencer restarting: next time
            log.debug("prune floor of %s: %s", client.endpoint, e.details())

    try:
        while True:
            try:
                floor = compute_prune_floor(
                    await read_node_heights(data_dir), read_snapshot_heights(data_dir)
                )
            except (OSError, ValueError, KeyError, TypeError) as e:  # devnet.json unreadable
                log.warning("prune floor: devnet.json: %s", e)
                floor = None
            if floor is not None:
                await asyncio.gather(
                    *(tell(c, floor) for c in clients if last.get(c.endpoint) != floor)
                )
            await asyncio.sleep(interval)
    finally:
        for c in clients:
            await c.close()
