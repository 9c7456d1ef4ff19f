"""The HA sequencer seen from the devnet (devnet up --ha; sequencer/ha.py): each
replica's role, term and head as it reports them, which one leads, and the names
`leader` and `standby` that fault commands take for "whichever replica has that
role now"."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from grpc import aio

from devnet import network
from devnet.manifest import Manifest
from xrollup.client import Client
from xrollup.errors import NotFound, Unavailable

LEADER, STANDBY = "leader", "standby"
ROLE_NAMES = (LEADER, STANDBY)


@dataclass(frozen=True)
class ReplicaStatus:
    """What one sequencer replica says of itself (role "down": it did not answer)."""

    name: str
    endpoint: str
    role: str
    term: int = 0
    leader: str = ""
    height: int = 0
    fenced_appends: int = 0


async def read_replicas(manifest: Manifest, timeout: float = 1.0) -> list[ReplicaStatus]:
    """Every sequencer process of the devnet, in devnet.json's order."""
    recs = [p for p in manifest.processes if p.role == network.SEQUENCER]

    async def one(name: str, endpoint: str, running: bool) -> ReplicaStatus:
        if not running:
            return ReplicaStatus(name, endpoint, "down")
        try:
            async with Client(endpoint, manifest.chain_id) as client:
                s = await client.status(timeout=timeout)
        except aio.AioRpcError:
            return ReplicaStatus(name, endpoint, "down")
        return ReplicaStatus(name, endpoint, s.role, s.term, s.leader, s.height, s.fenced_appends)

    return list(
        await asyncio.gather(*(one(p.name, p.endpoint, network.is_running(p)) for p in recs))
    )


def pick_leader(replicas: list[ReplicaStatus]) -> ReplicaStatus | None:
    """The replica that leads: of those that say so, the highest term (a paused old
    leader may still believe it leads until it runs again)."""
    leading = [r for r in replicas if r.role == LEADER]
    return max(leading, key=lambda r: r.term) if leading else None


async def wait_for_leader(
    manifest: Manifest, timeout: float, above_term: int = 0, poll: float = 0.05
) -> ReplicaStatus:
    """The leader once one with a term above `above_term` answers; TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        found = pick_leader(await read_replicas(manifest, timeout=0.5))
        if found is not None and found.term > above_term:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"no sequencer replica led with a term above {above_term}")
        await asyncio.sleep(poll)


def resolve_replica(manifest: Manifest, name: str) -> str:
    """A process name for `name`: `leader` or `standby` (the first standby) name the
    replica that has that role now; anything else is returned as it is."""
    if name not in ROLE_NAMES:
        return name
    if not network.is_ha(manifest):
        raise NotFound(f"{name!r} names an HA sequencer replica: this devnet has no --ha")
    replicas = asyncio.run(read_replicas(manifest))
    if name == LEADER:
        found = pick_leader(replicas)
        if found is None:
            raise Unavailable("no sequencer replica leads right now")
        return found.name
    for r in replicas:
        if r.role == STANDBY:
            return r.name
    raise Unavailable("no sequencer replica is a running standby right now")
