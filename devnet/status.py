"""What `devnet status`, `devnet faults`, `devnet watch` and the explorer read
from the running processes, in one place: each process's liveness and health, the
sequencer's head and each node's applied height, lag, connection and refusal
(GetNodeStatus); and the one wording of a process's health, a node's refusal and a
link's faults (the command line colours it, the explorer shows it as is)."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc import aio

from devnet import launcher, network
from devnet.manifest import Manifest
from xrollup.client import Client, NodeClient
from xrollup.v1 import node_pb2 as npb

REFUSAL_KEYS = ("refusal", "refused_blocks", "equivocation", "stream_error")


async def sequencer_status(endpoint: str) -> dict[str, Any]:
    """Head, hash and pool; an HA replica (devnet up --ha) also its "ha_role" (leader
    or standby), the "term" it knows, the "leader" it follows and "fenced_appends"."""
    async with Client(endpoint) as c:
        try:
            s = await c.status(timeout=2.0)
        except aio.AioRpcError:
            return {"height": None}
    out: dict[str, Any] = {
        "height": s.height,
        "head_hash": s.head_hash.hex(),
        "pending": s.pending,
    }
    if s.role not in ("", "single"):
        out.update(ha_role=s.role, term=s.term, leader=s.leader, fenced_appends=s.fenced_appends)
    return out


def etcd_member_status(endpoint: str) -> dict[str, Any]:
    """An etcd member's raft role and term and its database size (devnet up --ha)."""
    from devnet import etcd  # etcd3gw loads requests: only for devnets that have members

    st = etcd.get_status(endpoint)
    if st is None:
        return {}
    return {"etcd_leader": st.is_leader, "raft_term": st.raft_term, "db_size": st.db_size}


async def node_status(endpoint: str) -> dict[str, Any]:
    """node_status_json of the node at `endpoint`; only height and state_root
    (None) when it does not answer."""
    async with NodeClient(endpoint) as c:
        try:
            s = await c.status(timeout=2.0)
        except aio.AioRpcError:
            return {"height": None, "state_root": None}
    return node_status_json(s)


def node_status_json(s: npb.GetNodeStatusResponse) -> dict[str, Any]:
    """A node's GetNodeStatus as JSON: "height" (applied), "state_root", "lag",
    "connected", "refusal" ({code, height, message} or None), "refused_blocks",
    "equivocation" ({height, first, second} or None), "stream_error" (the
    explorer reads it too)."""
    refusal = (
        {
            "code": npb.Refusal.Code.Name(s.refusal.code).removeprefix("CODE_"),
            "height": s.refusal.height,
            "message": s.refusal.message,
        }
        if s.HasField("refusal")
        else None
    )
    evidence = (
        {
            "height": s.equivocation.height,
            "first": s.equivocation.first.hash.hex(),
            "second": s.equivocation.second.hash.hex(),
        }
        if s.HasField("equivocation")
        else None
    )
    return {
        "height": s.applied_height,
        "state_root": s.state_root.hex(),
        "lag": s.lag,
        "connected": s.connected,
        "refusal": refusal,
        "refused_blocks": s.refused_blocks,
        "equivocation": evidence,
        "stream_error": s.stream_error or None,
    }


def collect_status(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per process of devnet.json, in its order: name, role, rollup, pid
    (None when down), endpoint, running, paused, healthy, height, state_root, log,
    metrics (its Prometheus URL or None), and what the sequencer (head_hash,
    pending) or node (node_status) says."""
    rows = []
    for rec in manifest.processes:
        alive = network.is_running(rec)
        # The proxy and the explorer serve no gRPC health: alive is all we ask of them.
        healthy = alive and (
            rec.role in (network.PROXY, network.EXPLORER) or launcher.check_health(rec.endpoint)
        )
        row: dict[str, Any] = {
            "name": rec.name,
            "role": rec.role,
            "rollup": rec.rollup,
            "pid": rec.pid if alive else None,
            "endpoint": rec.endpoint,
            "running": alive,
            "paused": alive and launcher.process_state(rec.pid) == "paused",
            "healthy": healthy,
            "height": None,
            "state_root": None,
            "log": rec.log,
            # Prometheus metrics URL (xrollup_<process>_*); None when it serves none.
            "metrics": rec.metrics or None,
        }
        if healthy and rec.role == "sequencer":
            row.update(asyncio.run(sequencer_status(rec.endpoint)))
        elif healthy and rec.role == "etcd":
            row.update(etcd_member_status(rec.endpoint))
        elif healthy and rec.role == "node":
            row.update(asyncio.run(node_status(rec.endpoint)))
        rows.append(row)
    return rows


async def node_refusals(endpoints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per node name, the REFUSAL_KEYS of node_status; nothing for a node that
    does not answer."""
    results = await asyncio.gather(*(node_status(e) for e in endpoints.values()))
    return {
        name: {k: r[k] for k in REFUSAL_KEYS if k in r}
        for name, r in zip(endpoints, results, strict=True)
    }


def health_word(r: dict[str, Any]) -> str:
    """SERVING, paused, not serving or down, from a collect_status row."""
    if r["healthy"]:
        return "SERVING"
    if not r["running"]:
        return "down"
    return "paused" if r["paused"] else "not serving"


def node_note(info: dict[str, Any]) -> str:
    """Why a node stopped or refuses, and at which height, from what
    status.node_status read (devnet status, faults and watch): evidence of
    equivocation, a refused block, a block stream that fails. For an HA sequencer
    replica its role and term (and appends etcd refused), for an etcd member its
    raft role, term and database size."""
    if "ha_role" in info:
        if info["ha_role"] == "leader":
            note = f"leader, term {info['term']}"
        else:
            note = f"standby of {info['leader'] or '(no leader)'}, term {info['term']}"
        if info.get("fenced_appends"):
            note += f"; {info['fenced_appends']} appends refused by etcd (superseded)"
        return note
    if "etcd_leader" in info:
        role = "raft leader" if info["etcd_leader"] else "raft follower"
        return f"{role}, term {info['raft_term']}, db {info['db_size'] / 2**20:.1f} MiB"
    r, ev = info.get("refusal"), info.get("equivocation")
    if r and r["code"] == "EQUIVOCATION":
        return f"stopped: the sequencer equivocated at {r['height']} (evidence kept; restart)"
    parts = []
    if r:
        parts.append(f"refusing block {r['height']}: {r['code']} ({info['refused_blocks']}x)")
    if ev:
        parts.append(f"holds evidence of equivocation at {ev['height']}")
    if info.get("stream_error"):
        parts.append(f"stream: {info['stream_error'][:60]}")
    return "; ".join(parts)


def link_text(route: dict[str, Any]) -> str:
    """A link's faults in words: "partitioned, delay 100 ms, byzantine corrupt", or "-"."""
    parts = []
    if route.get("partitioned"):
        parts.append("partitioned")
    if route.get("delay_ms"):
        parts.append(f"delay {route['delay_ms']} ms")
    if route.get("byzantine"):
        parts.append(f"byzantine {route['byzantine']}")
    return ", ".join(parts) or "-"


def explorer_url(manifest: Manifest | None) -> str | None:
    """The web explorer's URL, from devnet.json; None when there is none."""
    rec = manifest.get(network.EXPLORER) if manifest else None
    return f"http://{rec.endpoint}/" if rec else None
