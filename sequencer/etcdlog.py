"""The HA sequencer's replicated log and election on etcd (devnet up --ha).

etcd (Raft, from Debian's etcd-server) is the log engine; this module is the one
place that speaks to it, through etcd's JSON gateway (etcd3gw). Every call is
synchronous: the sequencer runs them on its own threads.

Keys, under /xrollup/<chain id>/ (heights as 20 decimal digits, so they sort):
    leader          "<name> <endpoint>", attached to the leader's lease. Its create
                    revision is the leader's **term**: etcd revisions only grow, so a
                    later election always has a higher term.
    log/<height>    the encoded block at that height, committed by etcd's quorum.
    head            height u64 | block hash (32 bytes) of the last block appended.
    replica/<name>  height u64: the last block that replica holds durably in its own
                    LevelDB copy (old blocks leave etcd once every replica holds them).

Safety does not rest on the lease (etcd's "Notes on the usage of lock and lease";
Jepsen's etcd 3.4.3 analysis): a lease only says who should lead. Every append is
one transaction that compares the leader key's create revision with the appender's
term and that the height is not taken yet, so a leader that lost its key (a pause
past its lease, a partition from etcd) can never append, whatever it believes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.client import Etcd3Client
from etcd3gw.utils import _decode, _encode

from xrollup.errors import Unavailable

_HEAD = struct.Struct(">Q")
HEIGHT_DIGITS = 20
READ_LIMIT = 64  # blocks per range read (at most 64 x 2 MiB in one response)


@dataclass(frozen=True, slots=True)
class Leader:
    name: str
    endpoint: str
    term: int  # the leader key's create revision


class EtcdUnavailable(Unavailable):
    """No etcd member answered (or none had a quorum) within the timeout."""


def _key_of(height: int) -> str:
    return f"{height:0{HEIGHT_DIGITS}d}"


class EtcdLog:
    """One connection (per thread that uses it) to an etcd cluster: tries each member
    in turn, starting from the one that answered last."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], chain_id: str, timeout: float) -> None:
        self._clients = [Etcd3Client(h, p, timeout=timeout, api_path="/v3/") for h, p in endpoints]
        self._at = 0
        self.prefix = f"/xrollup/{chain_id}/"
        self.leader_key = self.prefix + "leader"
        self.head_key = self.prefix + "head"
        self.log_prefix = self.prefix + "log/"
        self.replica_prefix = self.prefix + "replica/"

    # ------------------------------------------------------------ transport

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        last: Exception | None = None
        for i in range(len(self._clients)):
            client = self._clients[(self._at + i) % len(self._clients)]
            try:
                out = client.post(client.get_url(path), json=body)
            except (etcd_errors.Etcd3Exception, requests.RequestException, ValueError) as e:
                # Down, timed out, without a quorum ("etcdserver: request timed out",
                # "no leader"), or cut mid-answer (requests' ChunkedEncodingError, which
                # etcd3gw does not wrap; broken JSON): try the next member.
                last = e
                continue
            self._at = (self._at + i) % len(self._clients)
            return out
        raise EtcdUnavailable(f"no etcd member answered {path}: {last}")

    def _txn(self, compare: list[Any], success: list[Any], failure: list[Any] | None = None) -> Any:
        body = {"compare": compare, "success": success, "failure": failure or []}
        return self._post("/kv/txn", body)

    def _range(
        self, key: str, range_end: str | None = None, limit: int = 0, local: bool = False
    ) -> list[Any]:
        """`local`: a serializable read, answered by the member from what it has
        applied (all of it committed, maybe not all that is committed) without a
        quorum round; else linearizable."""
        body: dict[str, Any] = {"key": _encode(key), "serializable": local}
        if range_end is not None:
            body["range_end"] = _encode(range_end)
        if limit:
            body["limit"] = limit
        return list(self._post("/kv/range", body).get("kvs", []))

    # ------------------------------------------------------------ leases and election

    def grant_lease(self, ttl_s: int) -> int:
        return int(self._post("/lease/grant", {"TTL": ttl_s})["ID"])

    def keep_alive(self, lease: int) -> int:
        """Renew `lease`: its TTL in seconds, or 0 once it has expired."""
        result = self._post("/lease/keepalive", {"ID": lease}).get("result", {})
        return max(0, int(result.get("TTL", 0)))

    def revoke(self, lease: int) -> None:
        self._post("/kv/lease/revoke", {"ID": lease})

    def leader(self, local: bool = False) -> Leader | None:
        kvs = self._range(self.leader_key, local=local)
        if not kvs:
            return None
        name, _, endpoint = _decode(kvs[0]["value"]).decode().partition(" ")
        return Leader(name, endpoint, int(kvs[0]["create_revision"]))

    def campaign(self, name: str, endpoint: str, lease: int) -> Leader | None:
        """Become leader if nobody is: the new term, or None when another leads."""
        key = _encode(self.leader_key)
        value = _encode(f"{name} {endpoint}")
        out = self._txn(
            [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
            [{"request_put": {"key": key, "value": value, "lease": lease}}],
        )
        if not out.get("succeeded"):
            return None
        return Leader(name, endpoint, int(out["header"]["revision"]))

    def resign(self, term: int) -> None:
        """Delete the leader key if it is still ours (so a standby need not wait for
        the lease to expire)."""
        key = _encode(self.leader_key)
        self._txn(
            [{"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": term}],
            [{"request_delete_range": {"key": key}}],
        )

    # ------------------------------------------------------------ the log

    def append(self, term: int, height: int, block: bytes, block_hash: bytes) -> bool:
        """Commit block `height` if `term` still leads and the height is free: one
        transaction, answered once etcd's quorum has it. False: fenced off.

        A request that timed out on one member may have committed before it is sent
        again to the next: then the height is taken by this very block while the
        term still leads, which is a success, not a fence."""
        leader = _encode(self.leader_key)
        key = _encode(self.log_prefix + _key_of(height))
        value = _encode(block)
        out = self._txn(
            [
                {"key": leader, "result": "EQUAL", "target": "CREATE", "create_revision": term},
                {"key": key, "result": "EQUAL", "target": "CREATE", "create_revision": 0},
            ],
            [
                {"request_put": {"key": key, "value": value}},
                {
                    "request_put": {
                        "key": _encode(self.head_key),
                        "value": _encode(_HEAD.pack(height) + block_hash),
                    }
                },
            ],
            [{"request_range": {"key": leader}}, {"request_range": {"key": key}}],
        )
        if out.get("succeeded"):
            return True
        ranges = [r.get("response_range", {}).get("kvs", []) for r in out.get("responses", [])]
        if len(ranges) != 2 or not ranges[0] or not ranges[1]:
            return False
        ours = int(ranges[0][0].get("create_revision", 0)) == term
        return ours and ranges[1][0].get("value") == value

    def head(self) -> tuple[int, bytes]:
        """(height, hash) of the last block committed; (0, b"") when none."""
        kvs = self._range(self.head_key)
        if not kvs:
            return 0, b""
        raw = _decode(kvs[0]["value"])
        return _HEAD.unpack(raw[:8])[0], raw[8:]

    def read(
        self, from_height: int, limit: int = READ_LIMIT, local: bool = False
    ) -> list[tuple[int, bytes]]:
        """Committed blocks from `from_height` on, in order, at most `limit`
        (`local`: as far as the member answering has applied)."""
        kvs = self._range(
            self.log_prefix + _key_of(from_height), self.log_prefix + "~", limit, local
        )
        out = []
        for kv in kvs:
            height = int(_decode(kv["key"]).decode()[len(self.log_prefix) :])
            out.append((height, _decode(kv["value"])))
        return out

    def first_height(self) -> int:
        """The lowest height still in etcd (0: none)."""
        kvs = self._range(self.log_prefix, self.log_prefix + "~", limit=1)
        if not kvs:
            return 0
        return int(_decode(kvs[0]["key"]).decode()[len(self.log_prefix) :])

    def watch_leader(self, on_change: Callable[[], None]) -> None:
        """Call `on_change` whenever the leader key changes (elected, resigned, its
        lease expired), until the stream breaks: then return (or raise
        EtcdUnavailable when no member takes the watch). Blocks its thread."""
        body = {"create_request": {"key": _encode(self.leader_key)}}
        for i in range(len(self._clients)):
            client = self._clients[(self._at + i) % len(self._clients)]
            try:
                response = client.session.post(
                    client.get_url("/watch"), json=body, stream=True, timeout=(1.0, None)
                )
            except requests.RequestException:
                continue
            with response:
                try:
                    for line in response.iter_lines():
                        if b'"events"' in line:
                            on_change()
                except requests.RequestException:
                    pass
            return
        raise EtcdUnavailable("no etcd member took the watch")

    # ------------------------------------------------------------ replicas and compaction

    def report(self, name: str, height: int) -> None:
        """Replica `name` holds blocks up to `height` durably on its own disk."""
        self._post(
            "/kv/put",
            {"key": _encode(self.replica_prefix + name), "value": _encode(_HEAD.pack(height))},
        )

    def replicas(self) -> dict[str, int]:
        kvs = self._range(self.replica_prefix, self.replica_prefix + "~")
        return {
            _decode(kv["key"]).decode()[len(self.replica_prefix) :]: _HEAD.unpack(
                _decode(kv["value"])
            )[0]
            for kv in kvs
        }

    def trim(self, term: int, below: int) -> int:
        """Delete the log's blocks below `below` (fenced by `term`, like an append) and
        compact etcd's history up to now: the revision compacted at, 0 when fenced."""
        leader = _encode(self.leader_key)
        out = self._txn(
            [{"key": leader, "result": "EQUAL", "target": "CREATE", "create_revision": term}],
            [
                {
                    "request_delete_range": {
                        "key": _encode(self.log_prefix),
                        "range_end": _encode(self.log_prefix + _key_of(below)),
                    }
                }
            ],
        )
        if not out.get("succeeded"):
            return 0
        revision = int(out["header"]["revision"])
        self._post("/kv/compaction", {"revision": revision, "physical": False})
        return revision

    def defragment_all(self) -> None:
        """Return the space compaction freed to the file system, member by member
        (each blocks its member briefly)."""
        for client in self._clients:
            try:
                client.post(client.get_url("/maintenance/defragment"), json={})
            except etcd_errors.Etcd3Exception:
                continue

    def db_sizes(self) -> list[int]:
        """Each member's database size in bytes (0: did not answer)."""
        out = []
        for client in self._clients:
            try:
                out.append(int(client.status().get("dbSize", 0)))
            except etcd_errors.Etcd3Exception:
                out.append(0)
        return out
