"""The HA devnet's etcd cluster (issue 12): three etcd members as real OS
processes on loopback ports, each with its data directory under the devnet's
folder (DIR/etcd-1/ ...) and its log in DIR/logs/, started beside the other
processes (devnet/starter.py), recorded in devnet.json and stopped by pid like
them. The one place for etcd's command line and the cluster's shape.

A member's peer address is part of the cluster's membership, stored in every
member's data directory: it never changes once the cluster exists, so it is read
back from devnet.json on every start. Its client address may move (a taken port)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devnet import launcher, starter
from devnet.manifest import Manifest

if TYPE_CHECKING:
    from etcd3gw.client import Etcd3Client

ETCD = "/usr/bin/etcd"  # Debian's etcd-server 3.4; `make system-deps` installs it
ROLE = "etcd"
MEMBERS = ("etcd-1", "etcd-2", "etcd-3")
QUORUM = len(MEMBERS) // 2 + 1

# Loopback round trips take well under a millisecond, so raft's timers can be ten
# times shorter than etcd's defaults (100 ms, 1000 ms): a new etcd leader within
# about a second of losing one. etcd's shortest lease is 1.5 x the election
# timeout, rounded up to a second: leases of TTL 1 s can be granted.
HEARTBEAT_MS = 50
ELECTION_MS = 500
# One request carries a block: 2 MiB of it must fit (etcd's default is 1.5 MiB).
MAX_REQUEST_BYTES = 8 * 1024 * 1024
QUOTA_BACKEND_BYTES = 1024**3  # 1 GiB: compaction and defragmentation keep it far below
# Raft entries kept in memory between snapshots; etcd 3.4's default (100,000) holds
# half an hour of 20 ms blocks in every member's memory. etcd 3.6 lowered it to this.
SNAPSHOT_COUNT = 10_000

PROBE_TIMEOUT_S = 0.25  # one /health request while a member starts (the starter waits on it)


def is_installed() -> bool:
    """True when the etcd binary the devnet runs is there."""
    return os.access(ETCD, os.X_OK)


@dataclass(frozen=True)
class Member:
    """One member: its name, data directory and HOST:PORT for clients and peers."""

    name: str
    data_dir: Path
    client: str
    peer: str


def _url(address: str) -> str:
    return f"http://{address}"


def compute_cluster_token(chain_id: str, data_dir: Path) -> str:
    """The --initial-cluster-token: the chain id and the devnet's folder, so that
    two devnets' members never take each other for one cluster."""
    digest = hashlib.blake2b(str(data_dir).encode(), digest_size=4).hexdigest()
    return f"xrollup-{chain_id}-{digest}"


def member_argv(member: Member, cluster: Sequence[Member], token: str) -> list[str]:
    """The member's etcd command line. --data-dir comes first: launcher.is_alive
    recognises a pid as ours by argv[1:4]. --initial-cluster* only matter on the
    first start: a member whose data directory holds one restarts as that member
    and rejoins the cluster its data directory names."""
    initial = ",".join(f"{m.name}={_url(m.peer)}" for m in cluster)
    return [
        ETCD,
        "--data-dir",
        str(member.data_dir),
        "--name",
        member.name,
        "--listen-client-urls",
        _url(member.client),
        "--advertise-client-urls",
        _url(member.client),
        "--listen-peer-urls",
        _url(member.peer),
        "--initial-advertise-peer-urls",
        _url(member.peer),
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
        "--heartbeat-interval",
        str(HEARTBEAT_MS),
        "--election-timeout",
        str(ELECTION_MS),
        # A member back from a partition or a restart does not depose a working leader.
        "--pre-vote=true",  # a boolean flag: its value only after "="
        "--snapshot-count",
        str(SNAPSHOT_COUNT),
        "--max-request-bytes",
        str(MAX_REQUEST_BYTES),
        "--quota-backend-bytes",
        str(QUOTA_BACKEND_BYTES),
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
    ]


def get_flag_address(argv: list[str], flag: str) -> str | None:
    """HOST:PORT of the URL given to `flag` in an etcd command line (its first
    one), None when absent."""
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[i + 1].split(",")[0].removeprefix("http://")
    return None


def _free_addresses(n: int) -> list[str]:
    """`n` distinct loopback HOST:PORTs free right now: all bound at once, so the
    kernel cannot hand out one port twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in socks]


def get_members(data_dir: Path, previous: Manifest | None) -> list[Member]:
    """The three members, on the addresses devnet.json recorded last time, else on
    ports chosen free now. LaunchError when a member's data directory exists but
    devnet.json does not record its peer address: the cluster could not form again
    (wipe the devnet, or restore devnet.json)."""
    fresh = iter(_free_addresses(2 * len(MEMBERS)))
    out = []
    for name in MEMBERS:
        rec = previous.get(name) if previous else None
        member_dir = data_dir / name
        peer = get_flag_address(rec.argv, "--listen-peer-urls") if rec else None
        if peer is None and (member_dir / "member").exists():
            raise launcher.LaunchError(
                f"{member_dir} holds an etcd member but devnet.json does not record its"
                f" peer address, which the cluster knows it by: `devnet down --wipe` first"
            )
        client = rec.endpoint if rec and peer else next(fresh)
        out.append(Member(name, member_dir, client, peer or next(fresh)))
    return out


def probe_member(s: launcher.Starting) -> dict[str, Any] | None:
    """A starting member is up once its /health says so, which takes a quorum
    running (launcher.Probe). It serves Prometheus metrics on its client URL."""
    client = get_flag_address(s.argv, "--listen-client-urls")
    if client is None or not check_health(client, PROBE_TIMEOUT_S):
        return None
    return {"endpoint": client, "metrics": f"{_url(client)}/metrics"}


def etcd_starts(data_dir: Path, chain_id: str, previous: Manifest | None) -> list[starter.Start]:
    """The three members as Starts, none after another (a member is only healthy
    once a quorum runs, so all three start side by side). Each offers its client
    address under its own name (`known["etcd-1"]` ...) for the argv of those that
    use the cluster. A member whose client port is taken starts again on another;
    its peer port cannot move. List them before the processes that use them, so
    that stop_devnet, which stops in reverse order, stops them last."""
    data_dir = data_dir.resolve()
    members = get_members(data_dir, previous)
    token = compute_cluster_token(chain_id, data_dir)
    return [_start(data_dir, m, members, token) for m in members]


def _start(data_dir: Path, member: Member, cluster: list[Member], token: str) -> starter.Start:
    def argv_for(known: Mapping[str, str], any_port: bool) -> list[str]:
        moved = replace(member, client=_free_addresses(1)[0]) if any_port else member
        return member_argv(moved, cluster, token)

    return starter.Start(
        member.name,
        ROLE,
        None,
        member.data_dir,
        data_dir / "logs" / f"{member.name}.log",
        data_dir / f"{member.name}.ready",  # etcd writes none: probe_member says when it is up
        argv_for=argv_for,
        offers={member.name: member.client},
        offered=lambda p: {p.name: p.endpoint},
        movable=True,
        probe=probe_member,
    )


def client_endpoints(manifest: Manifest) -> list[str]:
    """HOST:PORT of each member's client URL, in member order (a sequencer's
    --etcd); [] for a devnet without etcd."""
    return [rec.endpoint for name in MEMBERS if (rec := manifest.get(name)) is not None]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def check_health(endpoint: str, timeout: float = 1.0) -> bool:
    """True when the member at HOST:PORT answers {"health": "true"} on /health:
    it is up and its cluster has a leader and a quorum."""
    try:
        with _opener.open(f"{_url(endpoint)}/health", timeout=timeout) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError):  # refused, timed out, 503 (HTTPError), not JSON
        return False
    return isinstance(doc, dict) and doc.get("health") == "true"


def open_client(endpoint: str, timeout: float = 2.0) -> Etcd3Client:
    """An etcd3gw client of the member at HOST:PORT: each request fails after
    `timeout` seconds (Etcd3Exception), never blocks longer."""
    from etcd3gw.client import Etcd3Client  # here: requests would slow every devnet command

    host, _, port = endpoint.rpartition(":")
    client = Etcd3Client(host, int(port), timeout=timeout, api_path="/v3/")
    client.session.trust_env = False  # loopback: never through an HTTP proxy
    return client


@dataclass(frozen=True)
class MemberStatus:
    """What a member says of itself (etcd's maintenance Status). Ids as etcd
    prints them in its logs (hex); db sizes in bytes."""

    member_id: str
    leader_id: str
    raft_term: int
    raft_index: int
    db_size: int
    db_size_in_use: int
    version: str
    errors: tuple[str, ...]

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id


def get_status(endpoint: str, timeout: float = 1.0) -> MemberStatus | None:
    """The member's status, None when it does not answer within `timeout`."""
    from etcd3gw.exceptions import Etcd3Exception  # as in open_client

    client = open_client(endpoint, timeout)
    try:
        r = client.status()
    except (Etcd3Exception, ValueError):  # unreachable, timed out, or not JSON
        return None
    finally:
        client.session.close()
    return MemberStatus(
        member_id=f"{int(r['header']['member_id']):x}",
        leader_id=f"{int(r['leader']):x}",
        raft_term=int(r["raftTerm"]),
        raft_index=int(r["raftIndex"]),
        db_size=int(r["dbSize"]),
        db_size_in_use=int(r.get("dbSizeInUse", 0)),
        version=r["version"],
        errors=tuple(r.get("errors", ())),
    )
