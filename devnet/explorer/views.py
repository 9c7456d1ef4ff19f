"""What each explorer page shows, as JSON-able dicts: the same dict is the page's
/api answer and its template's input. Reads the index, the sequencer and the
nodes; a node that does not answer is marked down and the page still renders.
A bad id raises PageError(400), an unknown one PageError(404)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc import aio

from devnet import launcher, network
from devnet.explorer.describe import compute_positions, entry_json, record_json
from devnet.explorer.follower import describe_error
from devnet.explorer.index import ChainIndex, compute_rates, verify_summary
from devnet.explorer.sources import NODE, SEQUENCER, NodeRef, Sources
from devnet.lifecycle import trace_bundle
from devnet.margin import margin_json, read_margin
from devnet.status import link_text, node_note, node_status_json
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT
from xrollup.client import NodeClient
from xrollup.errors import Unavailable
from xrollup.keys import encode_address
from xrollup.model import Bundle, Entry, Tx
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb

T = TypeVar("T")
CALL_TIMEOUT = 1.5  # seconds for one query: a paused node must not hold a page long
STATUS_TIMEOUT = 1.0
CACHE_S = 0.5  # process health is read at most this often, however many pages poll
ORDERED = spb.GetSubmissionResponse.STATE_ORDERED
HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
HEX40 = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")


class PageError(Exception):
    """A page that cannot be shown: the status and one sentence saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Redirect(Exception):
    """The id names another kind of thing: its page is at `path`."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def parse_id(text: str, what: str) -> bytes:
    if not HEX64.match(text):
        raise PageError(400, f"{text[:80]!r} is not a {what} id: an id is 64 hex digits.")
    return bytes.fromhex(text.removeprefix("0x"))


def parse_address(text: str) -> bytes:
    if not HEX40.match(text):
        raise PageError(400, f"{text[:80]!r} is not an address: an address is 40 hex digits.")
    return bytes.fromhex(text[-40:])


def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_height(text: str) -> int:
    if not is_number(text) or len(text) > 19 or int(text) < 1:
        raise PageError(400, f"{text[:80]!r} is not a block height: heights start at 1.")
    return int(text)


def rpc_page_error(e: aio.AioRpcError, what: str) -> PageError:
    """A failed call to the sequencer as a page: NOT_FOUND is 404, a server that
    does not answer 503."""
    code = e.code()
    if code == grpc.StatusCode.NOT_FOUND:
        return PageError(404, f"No {what}.")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return PageError(400, f"{what}: {e.details()}")
    return PageError(503, f"The sequencer did not answer for {what}: {describe_error(e)}.")


@dataclass(frozen=True)
class NodeStatus:
    ref: NodeRef
    client: NodeClient
    status: npb.GetNodeStatusResponse | None  # None: it did not answer
    error: str

    @property
    def up(self) -> bool:
        return self.status is not None


@dataclass(frozen=True)
class Health:
    """The sequencer's status (as the home page's JSON has it) and every node's."""

    sequencer: dict[str, Any]
    nodes: list[NodeStatus]

    @property
    def live(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.up]

    @property
    def down(self) -> list[str]:
        return [n.ref.name for n in self.nodes if not n.up]


class Explorer:
    """The pages' data: one per explorer process, over one index and one set of
    sources."""

    def __init__(self, sources: Sources, index: ChainIndex) -> None:
        self.sources = sources
        self.index = index
        self._health: tuple[float, Health] | None = None
        self._health_lock = asyncio.Lock()

    # ------------------------------------------------------------ reading nodes

    async def node_statuses(self) -> list[NodeStatus]:
        async def one(ref: NodeRef) -> NodeStatus:
            client = self.sources.node_client(ref)
            try:
                return NodeStatus(ref, client, await client.status(timeout=STATUS_TIMEOUT), "")
            except aio.AioRpcError as e:
                return NodeStatus(ref, client, None, describe_error(e))

        return list(await asyncio.gather(*(one(r) for r in self.sources.nodes())))

    async def health(self) -> Health:
        """The sequencer's status and every node's, read at most every CACHE_S."""
        async with self._health_lock:
            now = time.monotonic()
            if self._health is not None and now - self._health[0] < CACHE_S:
                return self._health[1]
            seq: dict[str, Any] = {"endpoint": self.sources.sequencer_endpoint(), "up": False}
            try:
                s = await self.sources.sequencer().status(timeout=STATUS_TIMEOUT)
                seq.update(
                    up=True,
                    height=s.height,
                    pending=s.pending,
                    head_hash=s.head_hash.hex(),
                    block_interval_ms=s.block_interval_ms,
                )
            except aio.AioRpcError as e:
                seq["error"] = describe_error(e)
            except Unavailable as e:  # no endpoint known
                seq["error"] = str(e)
            value = Health(seq, await self.node_statuses())
            self._health = (time.monotonic(), value)
            return value

    async def _first_found(
        self,
        rollups: list[str] | None,
        fetch: Callable[[Any], Awaitable[T]],
    ) -> tuple[T | None, NodeRef | None, list[str]]:
        """Ask the live nodes (of `rollups`, or every one) in turn: the first answer
        and the node that gave it, and the nodes that are down or failed."""
        health = await self.health()
        down = health.down
        for n in health.live:
            if rollups is not None and n.ref.rollup not in rollups:
                continue
            try:
                return await fetch(n.client), n.ref, down
            except aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    down.append(n.ref.name)
        return None, None, down

    # ------------------------------------------------------------ home

    async def home(self) -> dict[str, Any]:
        health = await self.health()
        idx = self.index
        rates = compute_rates(idx.newest_first(), int(time.time() * 1000))
        statuses = {n.ref.name: n for n in health.nodes}
        processes = [
            self._process_row(rec, health.sequencer, statuses) for rec in self.sources.processes()
        ]
        return {
            "head": idx.head,
            "sequencer": health.sequencer,
            "rates": {
                "blocks_per_s": rates.blocks_per_s,
                "tx_per_s": rates.tx_per_s,
                "bundles_per_s": rates.bundles_per_s,
            },
            "index": {
                "first": idx.first,
                "blocks": len(idx.blocks),
                "entries": len(idx.entries),
                "stream_error": idx.stream_error,
            },
            "processes": processes,
            "faults": self._faults(processes),
            "latest_blocks": [b.to_json() for b in idx.recent(10)],
            "busy_blocks": [b.to_json() for b in idx.recent_busy(10)],
            "latest_bundles": [self._bundle_row(bid) for bid in reversed(idx.recent_bundles)][:10],
        }

    def _process_row(
        self, rec: Any, seq: dict[str, Any], statuses: dict[str, NodeStatus]
    ) -> dict[str, Any]:
        running = network.is_running(rec) if rec.pid else None
        paused = bool(running) and launcher.process_state(rec.pid) == "paused"
        row: dict[str, Any] = {
            "name": rec.name,
            "role": rec.role,
            "rollup": rec.rollup,
            "endpoint": rec.endpoint,
            "pid": rec.pid if running else None,
            "running": running,
            "paused": paused,
            "up": bool(running) and not paused,
            "height": None,
            "lag": None,
            "connected": None,
            "note": "",
        }
        if rec.role == SEQUENCER:
            row.update(up=seq["up"], height=seq.get("height"), note=seq.get("error", ""))
            if seq["up"]:
                row["note"] = f"{seq['pending']} pending"
        elif rec.role == NODE:
            n = statuses.get(rec.name)
            if n is not None and n.status is not None:
                s = n.status
                row.update(
                    up=True,
                    height=s.applied_height,
                    lag=s.lag,
                    connected=s.connected,
                    note=node_note(node_status_json(s)),
                )
            else:
                row.update(up=False, note=n.error if n else "")
        if paused:
            row.update(up=False, note="paused (SIGSTOP)")
        elif running is False:
            row["note"] = "not running"
        return row

    def _faults(self, processes: list[dict[str, Any]]) -> list[str]:
        """What is in force, worded as `devnet faults` words it: each node's link
        (partitioned, delayed, byzantine), then paused and stopped processes."""
        out = []
        for name, route in sorted(self.sources.faults().items()):
            if (text := link_text(route)) != "-":
                out.append(f"{name}: link {text}")
        for p in processes:
            if p["paused"]:
                out.append(f"{p['name']}: paused")
            elif p["running"] is False:
                out.append(f"{p['name']}: not running")
        return out

    def _bundle_row(self, bundle_id: bytes) -> dict[str, Any]:
        ref = self.index.entries.get(bundle_id)
        d = self.index.decisions.get(bundle_id)
        return {
            "id": bundle_id.hex(),
            "height": ref.height if ref else None,
            "rollups": list(ref.rollups) if ref else [],
            "state": self.index.bundle_state(bundle_id),
            "decision_height": d.height if d else None,
            "votes": len(self.index.votes.get(bundle_id, [])),
        }

    # ------------------------------------------------------------ blocks and entries

    async def _block(self, height: int) -> pb.Block:
        try:
            return await self.sources.sequencer().get_block(height, timeout=5.0)
        except aio.AioRpcError as e:
            raise rpc_page_error(e, f"block at height {height}") from None

    async def block(self, height: int) -> dict[str, Any]:
        msg = await self._block(height)
        summary = self.index.blocks.get(height)
        if summary is not None and summary.hash == bytes(msg.hash):
            block = codec.decode_block(msg)
            verified, note = summary.verified, summary.note
        else:
            parent = GENESIS_PARENT if height == 1 else bytes((await self._block(height - 1)).hash)
            block, verified, note = verify_summary(
                msg, self.sources.genesis, self.sources.genesis_hash, parent
            )
        groups: dict[str, list[dict[str, Any]]] = {
            "transactions": [],
            "bundles": [],
            "votes": [],
            "decisions": [],
            "malformed": [],
        }
        group_of = {
            "tx": "transactions",
            "bundle": "bundles",
            "vote": "votes",
            "decision": "decisions",
            "malformed": "malformed",
        }
        for i, entry in enumerate(block.entries):
            e = {"index": i, **entry_json(entry)}
            if e["kind"] == "bundle":
                e["state"] = (
                    self.index.bundle_state(entry.id) if entry.id in self.index.entries else None
                )
            groups[group_of[e["kind"]]].append(e)
        h = block.header
        head = max(self.index.head, height)
        return {
            "height": height,
            "hash": block.hash.hex(),
            "parent_hash": h.parent_hash.hex(),
            "timestamp_ms": h.timestamp_ms,
            "term": int(h.term),
            "entry_count": h.entry_count,
            "byte_count": h.byte_count,
            "namespaces": [
                {"rollup": c.rollup or "protocol", "count": c.count, "root": c.root.hex()}
                for c in h.namespaces
            ],
            "signature": block.signature.hex(),
            "signer": self.sources.genesis.sequencer_key.hex(),
            "verified": verified,
            "note": note,
            "groups": groups,
            "prev": height - 1 if height > 1 else None,
            "next": height + 1 if height < head else None,
        }

    async def _ordered_entry(
        self, entry_id: bytes, what: str
    ) -> tuple[spb.GetSubmissionResponse, Entry | None, pb.Block | None]:
        """GetSubmission, then the entry at its place once ordered."""
        try:
            sub = await self.sources.sequencer().get_submission(entry_id, timeout=5.0)
        except aio.AioRpcError as e:
            raise rpc_page_error(e, f"{what} with id {entry_id.hex()}") from None
        if sub.state != ORDERED:
            return sub, None, None
        msg = await self._block(sub.height)
        return sub, codec.decode_entry_tolerant(msg.entries[sub.index]), msg

    async def tx(self, tx_id: bytes) -> dict[str, Any]:
        sub, entry, msg = await self._ordered_entry(tx_id, "transaction")
        if isinstance(entry, Bundle):
            raise Redirect(f"/bundle/{tx_id.hex()}")
        out: dict[str, Any] = {
            "id": tx_id.hex(),
            "state": "ordered" if sub.state == ORDERED else "pending",
            "height": sub.height if sub.state == ORDERED else None,
            "index": sub.index if sub.state == ORDERED else None,
            "admitted_unix_ms": sub.admitted_unix_ms or None,
            "timestamp_ms": msg.header.timestamp_ms if msg is not None else None,
            "entry": entry_json(entry) if entry is not None else None,
            "receipts": [],
        }
        if isinstance(entry, Tx):
            out["receipts"] = await self._receipts(tx_id, entry.body.rollup)
        return out

    async def _receipts(self, entry_id: bytes, rollup: str) -> list[dict[str, Any]]:
        statuses = (await self.health()).nodes

        async def one(n: NodeStatus) -> dict[str, Any]:
            row: dict[str, Any] = {"node": n.ref.name, "rollup": rollup, "status": "down"}
            if not n.up:
                return row
            try:
                r = await n.client.receipt(entry_id, timeout=CALL_TIMEOUT)
                row.update(status="ok" if r.ok else "failed", reason=r.reason, height=r.height)
            except aio.AioRpcError as e:
                not_yet = e.code() == grpc.StatusCode.NOT_FOUND
                row["status"] = "not applied yet" if not_yet else "down"
            return row

        mine = [n for n in statuses if n.ref.rollup == rollup]
        return list(await asyncio.gather(*(one(n) for n in mine)))

    # ------------------------------------------------------------ bundles

    async def bundle(self, bundle_id: bytes) -> dict[str, Any]:
        sub, entry, _ = await self._ordered_entry(bundle_id, "bundle")
        if isinstance(entry, Tx):
            raise Redirect(f"/tx/{bundle_id.hex()}")
        health = await self.health()  # a node that does not answer would hold the trace
        rollup_of = {n.ref.name: n.ref.rollup for n in health.live}
        trace = await trace_bundle(
            self.sources.sequencer(),
            {n.ref.name: (n.ref.rollup, n.client) for n in health.live},
            bundle_id,
        )
        out: dict[str, Any] = {
            "id": bundle_id.hex(),
            "state": trace.state,
            "height": sub.height if sub.state == ORDERED else None,
            "index": sub.index if sub.state == ORDERED else None,
            "bundle": entry_json(entry) if entry is not None else None,
            "positions": [],
            "trace": trace.to_json(),
            "records": {
                name: {"rollup": rollup_of[name], **record_json(r)}
                for name, r in trace.records.items()
            },
            "down": health.down,
        }
        if entry is not None:
            seen = set()
            for _, kind, pid, rollup in compute_positions(entry):
                if (kind, pid) not in seen:
                    seen.add((kind, pid))
                    out["positions"].append({"kind": kind, "id": pid.hex(), "rollup": rollup})
        return out

    # ------------------------------------------------------------ options and liens

    async def option(self, option_id: bytes) -> dict[str, Any]:
        o, ref, down = await self._first_found(
            None, lambda c: c.option(option_id, timeout=CALL_TIMEOUT)
        )
        if o is None or ref is None:
            raise self._not_found("option", option_id, down)
        liens = []
        for backing in o.liens:  # in payout order
            lien, lref, _ = await self._first_found(
                [backing.rollup], lambda c: c.lien(option_id, timeout=CALL_TIMEOUT)
            )
            liens.append(
                {
                    "rollup": backing.rollup,
                    "lien": record_json(lien) if lien is not None else None,
                    "node": lref.name if lref else None,
                }
            )
        return {
            "id": option_id.hex(),
            "rollup": ref.rollup,
            "node": ref.name,
            "option": record_json(o),
            "liens": liens,
            "down": down,
        }

    async def lien(self, lien_id: bytes) -> dict[str, Any]:
        lien, ref, down = await self._first_found(
            None, lambda c: c.lien(lien_id, timeout=CALL_TIMEOUT)
        )
        if lien is None or ref is None:
            raise self._not_found("lien", lien_id, down)
        return {
            "id": lien_id.hex(),
            "rollup": ref.rollup,
            "node": ref.name,
            "lien": record_json(lien),
            "down": down,
        }

    def _not_found(self, what: str, the_id: bytes, down: list[str]) -> PageError:
        if down:
            return PageError(
                503,
                f"No {what} {the_id.hex()} on the nodes that answered ({', '.join(down)} down).",
            )
        return PageError(404, f"No {what} with id {the_id.hex()} on any rollup.")

    # ------------------------------------------------------------ accounts

    async def account(self, address: bytes) -> dict[str, Any]:
        statuses = (await self.health()).nodes

        async def balances(rollup: str) -> dict[str, Any]:
            row: dict[str, Any] = {"rollup": rollup, "node": None, "up": False, "assets": []}
            for n in statuses:
                if n.ref.rollup != rollup or not n.up:
                    continue
                try:
                    assets = await n.client.balances(address, timeout=CALL_TIMEOUT)
                except aio.AioRpcError:
                    continue
                row.update(
                    node=n.ref.name,
                    up=True,
                    assets=[{"asset": a, "amount": str(v)} for a, v in assets.items()],
                )
                break
            return row

        async def position(kind: str, pid: bytes, rollup: str) -> dict[str, Any]:
            row: dict[str, Any] = {"kind": kind, "id": pid.hex(), "rollup": rollup, "state": None}
            for n in statuses:
                if n.ref.rollup != rollup or not n.up:
                    continue
                with contextlib.suppress(aio.AioRpcError):
                    if kind == "option":
                        o = await n.client.option(pid, timeout=CALL_TIMEOUT)
                        row["state"] = record_json(o)
                    else:
                        row["state"] = record_json(await n.client.lien(pid, timeout=CALL_TIMEOUT))
                    break
            return row

        held = self.index.address_positions(address)[-50:]
        rollups = self.sources.genesis.rollup_names
        bal = await asyncio.gather(*(balances(r) for r in rollups))
        pos = await asyncio.gather(*(position(k, i, r) for k, i, r in reversed(held)))
        return {
            "address": encode_address(address),
            "balances": list(bal),
            "positions": [p for p in pos if p["state"] is not None],
            "entries": [
                {
                    "id": i.hex(),
                    "kind": ref.kind,
                    "height": ref.height,
                    "index": ref.index,
                    "rollups": list(ref.rollups),
                }
                for i, ref in self.index.address_entries(address, 50)
            ],
            "indexed_from": self.index.first,
        }

    async def margin(self, address: bytes) -> dict[str, Any]:
        """The consolidated margin view (devnet.margin), amounts in base units as
        strings; a rollup with no live node is shown down."""
        live = (await self.health()).live
        nodes = {
            rollup: [n.client for n in live if n.ref.rollup == rollup]
            for rollup in self.sources.genesis.rollup_names
        }
        try:
            view = await read_margin(address, nodes, timeout=CALL_TIMEOUT)
        except aio.AioRpcError as e:  # INVALID_ARGUMENT: parse_address lets none through
            raise PageError(400, f"A node refused the address: {describe_error(e)}.") from None
        return margin_json(view, lambda amount, asset: str(amount))

    # ------------------------------------------------------------ search

    async def search(self, q: str) -> str:
        """The page that `q` names: a height, a 64-hex id, or a 40-hex address."""
        q = q.strip()
        if is_number(q):
            return f"/block/{parse_height(q)}"
        if HEX40.match(q):
            return f"/account/{encode_address(parse_address(q))}"
        if not HEX64.match(q):
            raise PageError(
                400, "Search for a block height, a 64-hex id or a 40-hex address (0x optional)."
            )
        the_id = bytes.fromhex(q.removeprefix("0x"))
        try:
            _, entry, _ = await self._ordered_entry(the_id, "entry")
            if isinstance(entry, Bundle):
                return f"/bundle/{the_id.hex()}"
            return f"/tx/{the_id.hex()}"
        except PageError as e:
            if e.status != 404:
                raise
        for kind, fetch in (
            ("option", lambda c: c.option(the_id, timeout=CALL_TIMEOUT)),
            ("lien", lambda c: c.lien(the_id, timeout=CALL_TIMEOUT)),
        ):
            found, _, _ = await self._first_found(None, fetch)
            if found is not None:
                return f"/{kind}/{the_id.hex()}"
        ref = self.index.entries.get(the_id)
        if ref is not None:  # a vote or a decision
            return f"/block/{ref.height}#e{ref.index}"
        raise PageError(
            404, f"Nothing has id {the_id.hex()}: no transaction, bundle, option or lien."
        )
