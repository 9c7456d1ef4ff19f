"""The invariant checker (DESIGN.md I1-I5), as code that tests and users call.
It reads the sequencer's log and every node over gRPC and reports, per check,
its figures and every violation, naming the bundle, asset or height.

- chain: every block verifies as a node verifies it (xrollup/verify.py): heights
  contiguous from 1, parent links, the sequencer's signature, and every entry's
  full bytes against the header's namespace commitments.
- decisions (I1 in the log, I5, I7): every logged decision is the one the shared
  rule (xrollup/decisions.py) gives from the counted votes before it, none is
  missing where the rule gives one, and every bundle past its deadline is decided.
- equivocation (I7): any node holding two sequencer-signed headers for one height
  has them re-verified here and reported as evidence.
- terms (I7, HA sequencer): the leader term in the log's headers never decreases
  (a superseded leader's block in the log would be a fork of it), and each node's
  term (GetNodeStatus.term, below which it refuses blocks) is the log's term at
  the height it applied.
- copies (HA sequencer, given several replica endpoints "A,B,C"): every replica
  that answers holds the same block at the highest height they all hold; each
  copy is a hash chain (a replica takes a block only on its head's hash), so the
  same block there is the same chain below it: no replica holds a fork.
- atomicity (I1): every node that has applied a decision shows the same
  outcome for that bundle as the log.
- conservation (I2): per rollup and asset, genesis supply = balances + escrows
  + liens.
- replicas (I4): nodes of the same rollup have equal state roots at every
  height both have applied.
- journal (I3): every acknowledged id in a load journal is in the log at the
  acknowledged height.

With retention (README, Retention) the sequencer keeps blocks from some height F
on and nodes keep roots and finished records for a window: the checks then cover
what is left, and the report says so in its notes. From F: the chain (block F's
own parent link cannot be checked: it is trusted as a checkpoint once its
signature and commitments verify), decisions of bundles ordered from F on (a
bundle ordered before F is unknown, so its decision and votes are not judged),
atomicity of decisions whose records the nodes still keep (decision height +
limits.record_retention_blocks past their applied height: pruned, skipped),
replicas at heights every node of the rollup still keeps, and journal entries
acknowledged at F or later. Conservation and equivocation evidence are whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from xrollup import codec
from xrollup.blocks import GENESIS_PARENT, BlockRefused
from xrollup.client import Client, NodeClient
from xrollup.decisions import BundleTracker, is_counted_vote
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.model import Block, Bundle, Decision, Vote
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import is_signed_header, verify_block

MAX_VIOLATIONS = 50  # per check, so one systematic fault does not flood the report


@dataclass
class CheckResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def fail(self, message: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(message)
        self.figures["violations"] = self.figures.get("violations", 0) + 1


@dataclass
class Report:
    checks: list[CheckResult]
    notes: list[str] = field(default_factory=list)  # what the checks could not cover

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": {
                c.name: {"ok": c.ok, **c.figures, "violations": c.violations} for c in self.checks
            },
            "notes": self.notes,
        }


@dataclass(frozen=True)
class NodeRef:
    name: str
    rollup: str
    endpoint: str


@dataclass
class LogSummary:
    head: int
    bundles: dict[bytes, tuple[int, tuple[str, ...]]]  # id -> (height, rollups)
    decisions: dict[bytes, tuple[int, bool]]  # bundle id -> (height, commit)


async def read_log(
    client: Client, to_height: int | None = None, from_height: int = 1
) -> list[pb.Block]:
    """Blocks from `from_height` (the first the sequencer keeps) to the head."""
    head = to_height if to_height is not None else (await client.status()).height
    blocks: list[pb.Block] = []
    if head < from_height:
        return blocks
    async for msg in client.stream_blocks(from_height):
        blocks.append(msg)
        if msg.header.height >= head:
            break
    return blocks


def check_chain(msgs: list[pb.Block], genesis: Genesis) -> tuple[CheckResult, list[Block]]:
    """Verify every block as a node does; the decoded blocks that verified. A log
    that starts above height 1 (retention) starts from its first block as a
    checkpoint: verified but for its own parent link."""
    first = msgs[0].header.height if msgs else 1
    r = CheckResult("chain", {"blocks": len(msgs), "from_height": first})
    genesis_hash = compute_genesis_hash(genesis)
    parent = GENESIS_PARENT if first <= 1 else bytes(msgs[0].header.parent_hash)
    blocks: list[Block] = []
    for expected, msg in enumerate(msgs, start=first):
        try:
            block = verify_block(msg, genesis, genesis_hash, expected, parent)
        except BlockRefused as e:
            r.fail(f"{e} ({e.code.name})")
            block = codec.decode_block(msg)
        blocks.append(block)
        parent = block.hash
    return r, blocks


def check_terms(msgs: list[pb.Block], node_terms: dict[str, tuple[int, int]]) -> CheckResult:
    """The leader term never decreases along the log (`msgs`, contiguous heights),
    and each node's term is the log's at its applied height (`node_terms`: name ->
    (applied height, GetNodeStatus.term); heights the log does not hold are skipped:
    the node's chain is the log's prefix, which check_equivocation checks). Figures:
    the first height of each term the log holds, and the nodes compared."""
    r = CheckResult("terms")
    starts: dict[str, int] = {}  # term -> its first height in the log (str: JSON keys)
    last: pb.Block | None = None
    for msg in msgs:
        term = msg.header.term
        if last is not None and term < last.header.term:
            r.fail(
                f"block {msg.header.height} has term {term}, below term {last.header.term}"
                f" of block {last.header.height}: a superseded leader's block in the log"
            )
        starts.setdefault(str(term), msg.header.height)
        last = msg
    first = msgs[0].header.height if msgs else 1
    compared = 0
    for name, (height, term) in sorted(node_terms.items()):
        if not first <= height < first + len(msgs):
            continue
        compared += 1
        logged = msgs[height - first].header.term
        if term != logged:
            r.fail(
                f"{name} at height {height} says term {term}, the log's block there has term"
                f" {logged}: it would refuse (or accept) the wrong leader's blocks"
            )
    r.figures.update(term_starts=starts, nodes_compared=compared)
    return r


def check_decisions(blocks: list[Block], genesis: Genesis) -> tuple[CheckResult, LogSummary]:
    """Replay the log through the shared decision rule, as every node does."""
    r = CheckResult("decisions")
    deadline = genesis.limits.bundle_deadline_blocks
    tracker = BundleTracker(deadline)
    summary = LogSummary(blocks[-1].height if blocks else 0, {}, {})
    pruned = bool(blocks) and blocks[0].height > 1  # bundles before the log are unknown
    before = 0
    for b in blocks:
        for e in b.entries:
            if isinstance(e, Bundle):
                if e.id in summary.bundles:
                    first = summary.bundles[e.id][0]
                    r.fail(f"bundle {e.id.hex()} ordered twice (heights {first}, {b.height})")
                summary.bundles[e.id] = (b.height, e.rollups)
                tracker.observe_bundle(e.id, e.rollups, b.height)
            elif isinstance(e, Vote):
                if is_counted_vote(e, genesis):
                    tracker.observe_vote(e.body.rollup, e.body.votes)
            elif isinstance(e, Decision):
                if pruned and e.bundle_id not in summary.bundles:
                    before += 1  # ordered before the first kept block: not judged
                    continue
                try:
                    tracker.observe_decision(e, b.height)
                except BlockRefused as x:
                    r.fail(str(x))
                    continue
                summary.decisions[e.bundle_id] = (b.height, e.commit)
        # What the rule gives at the end of the block and the log did not carry:
        # nodes derive it themselves, but an honest sequencer logs it.
        for d in tracker.decide(b.height):
            r.fail(f"block {b.height}: bundle {d.bundle_id.hex()} should have been decided here")
            summary.decisions[d.bundle_id] = (b.height, d.commit)
    undecided_late = [
        bid
        for bid, (h, _) in summary.bundles.items()
        if bid not in summary.decisions and h + deadline <= summary.head
    ]
    for bid in undecided_late:
        at = summary.bundles[bid][0]
        r.fail(f"bundle {bid.hex()} ordered at {at} is undecided past its deadline (I5)")
    commits = sum(1 for _, c in summary.decisions.values() if c)
    r.figures.update(
        bundles=len(summary.bundles),
        committed=commits,
        aborted=len(summary.decisions) - commits,
        pending=len(summary.bundles) - len(summary.decisions),
    )
    if before:
        r.figures["decisions_of_pruned_bundles"] = before
    return r, summary


async def check_copies(endpoints: list[str], chain_id: str) -> CheckResult:
    """The HA replicas' copies of the log agree (module docstring: copies). A replica
    that does not answer is listed, not failed (a fault may have it down)."""
    r = CheckResult("copies")

    async def head(endpoint: str) -> int | None:
        try:
            async with Client(endpoint, chain_id) as c:
                return int((await c.status(timeout=2.0)).height)
        except aio.AioRpcError:
            return None

    heads = dict(zip(endpoints, await asyncio.gather(*map(head, endpoints)), strict=True))
    up = [e for e, h in heads.items() if h is not None]
    r.figures.update(replicas=len(endpoints), answered=len(up))
    if len(up) < 2:
        return r
    at = min(h for h in heads.values() if h is not None)
    if at < 1:
        return r

    async def block_hash(endpoint: str) -> bytes | None:
        try:
            async with Client(endpoint, chain_id) as c:
                return bytes((await c.get_block(at, timeout=5.0)).hash)
        except aio.AioRpcError:  # gone since (a fault), or pruned there
            return None

    got = dict(zip(up, await asyncio.gather(*map(block_hash, up)), strict=True))
    hashes = {e: h for e, h in got.items() if h is not None}
    r.figures.update(height=at, compared=len(hashes))
    if len(set(hashes.values())) > 1:
        told = ", ".join(f"{e} {h.hex()[:16]}" for e, h in hashes.items())
        r.fail(f"the sequencer replicas hold different blocks at height {at}: {told}")
    return r


async def check_atomicity(
    summary: LogSummary, nodes: list[NodeRef], from_height: int = 0, record_retention: int = 0
) -> CheckResult:
    """I1: every node that has applied a decision (logged at `from_height` or
    later) agrees with the log. A record the node has pruned (its decision
    `record_retention` blocks or more before the node's applied height) is skipped."""
    r = CheckResult("atomicity")
    checked = pruned = 0

    def is_pruned(height: int, applied: int) -> bool:
        return record_retention > 0 and height + record_retention <= applied

    for node in nodes:
        async with NodeClient(node.endpoint) as n:
            applied = (await n.status()).applied_height
            for bundle_id, (height, commit) in summary.decisions.items():
                rollups = summary.bundles.get(bundle_id, (0, ()))[1]
                if node.rollup not in rollups or height > applied or height < from_height:
                    continue
                if is_pruned(height, applied):
                    pruned += 1
                    continue
                try:
                    rec = await n.bundle(bundle_id)
                except Exception as e:
                    if is_pruned(height, (await n.status()).applied_height):
                        pruned += 1  # pruned while we looked
                        continue
                    r.fail(f"{node.name}: bundle {bundle_id.hex()} unknown ({e})")
                    continue
                want = (
                    npb.BundleRecord.STATUS_COMMITTED if commit else npb.BundleRecord.STATUS_ABORTED
                )
                checked += 1
                if rec.status != want:
                    got = npb.BundleRecord.Status.Name(rec.status)
                    r.fail(
                        f"{node.name}: bundle {bundle_id.hex()} is {got}, the log says"
                        f" {'commit' if commit else 'abort'} at height {height}"
                    )
    r.figures["bundle_records_checked"] = checked
    if pruned:
        r.figures["bundle_records_pruned"] = pruned
    return r


async def check_conservation(nodes: list[NodeRef]) -> CheckResult:
    """I2: per rollup and asset, supply = balances + escrows + liens."""
    r = CheckResult("conservation")
    totals: dict[str, dict[str, int]] = {}
    for node in nodes:
        async with NodeClient(node.endpoint) as n:
            s = await n.supply()
        for a in s.assets:
            held = a.balances + a.escrowed + a.liened
            if held != a.minted:
                r.fail(
                    f"{node.name} at height {s.height}: {a.asset} minted {a.minted}, held {held}"
                    f" (balances {a.balances} + escrowed {a.escrowed} + liened {a.liened})"
                )
            t = totals.setdefault(a.asset, {"minted": 0, "escrowed": 0, "liened": 0})
            if node.name == node.rollup:  # count each rollup once, from its primary
                t["minted"] += a.minted
                t["escrowed"] += a.escrowed
                t["liened"] += a.liened
    r.figures["assets"] = totals
    return r


async def check_replicas(nodes: list[NodeRef], from_height: int = 0) -> CheckResult:
    """I4: nodes of one rollup have equal state roots at every common height
    from `from_height`."""
    r = CheckResult("replicas")
    by_rollup: dict[str, list[NodeRef]] = {}
    for node in nodes:
        by_rollup.setdefault(node.rollup, []).append(node)
    compared = 0
    for rollup, group in sorted(by_rollup.items()):
        if len(group) < 2:
            continue
        clients = [NodeClient(n.endpoint) for n in group]
        try:
            statuses = [await c.status() for c in clients]
            top = min(s.applied_height for s in statuses)
            # Retention: only heights every node of the rollup still keeps.
            low = max([from_height, *(s.retained_from for s in statuses)])
            heights = range(low, top + 1)
            # Many calls in flight: one at a time, a long chain takes minutes.
            by_node = [await _state_roots(c, heights) for c in clients]
            for h, roots in zip(heights, zip(*by_node, strict=True), strict=True):
                if None in roots:
                    continue  # pruned by a node while we compared
                compared += 1
                if len(set(roots)) > 1:
                    names = ", ".join(
                        f"{n.name}={(root or b'').hex()[:16]}"
                        for n, root in zip(group, roots, strict=True)
                    )
                    r.fail(f"{rollup} at height {h}: roots differ ({names})")
        finally:
            for c in clients:
                await c.close()
    r.figures["heights_compared"] = compared
    return r


async def _state_roots(client: NodeClient, heights: range, window: int = 64) -> list[bytes | None]:
    """The node's root at each height; None where retention pruned it."""

    async def one(h: int) -> bytes | None:
        try:
            return await client.state_root(h)
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND and "pruned" in (e.details() or ""):
                return None
            raise

    out: list[bytes | None] = []
    for start in range(0, len(heights), window):
        chunk = heights[start : start + window]
        out.extend(await asyncio.gather(*(one(h) for h in chunk)))
    return out


def check_journal(journal: Iterable[dict[str, Any]], blocks: list[Block]) -> CheckResult:
    """I3: every acknowledged id is in the log at its acknowledged height and index."""
    r = CheckResult("durability")
    ids = {e.id: (b.height, i) for b in blocks for i, e in enumerate(b.entries)}
    first = blocks[0].height if blocks else 1
    n = pruned = 0
    for record in journal:
        n += 1
        entry_id = bytes.fromhex(record["id"])
        where = ids.get(entry_id)
        want = (int(record["height"]), int(record["index"]))
        if want[0] < first:
            pruned += 1  # acknowledged in a block retention deleted
            continue
        if where != want:
            r.fail(f"acknowledged {record['id']} at {want}, the log has it at {where}")
    r.figures["acknowledged"] = n
    if pruned:
        r.figures["before_first_block"] = pruned
    return r


def load_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line from a killed writer
    return out


async def run_checks(
    sequencer: str,
    nodes: list[NodeRef],
    genesis: Genesis,
    journal: Iterable[dict[str, Any]] | None = None,
    settle_timeout: float = 30.0,
    from_height: int = 0,
) -> Report:
    """Run every check. Nodes are first given time to apply the sequencer's head.
    The log checks always read the whole chain; the per-node checks (atomicity,
    replicas) look only at heights from `from_height`, so a long-lived devnet
    checked after every round of faults checks each height once."""
    evidence = await check_equivocation(nodes, genesis, sequencer)
    halted = set(evidence.figures.get("halted", []))
    nodes = [n for n in nodes if n.name not in halted]  # stopped by design until restarted
    async with Client(sequencer, genesis.chain_id) as client:
        head = (await client.status()).height
        await _wait_applied(nodes, head, settle_timeout)
        first = max(1, (await client.status()).first_height)
        try:
            msgs = await read_log(client, head, first)
        except aio.AioRpcError as e:  # pruned further while we started: from there
            if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            first = max(1, (await client.status()).first_height)
            msgs = await read_log(client, head, first)
    chain, blocks = check_chain(msgs, genesis)
    checks = [chain, evidence, check_terms(msgs, await _node_terms(nodes))]
    if "," in sequencer:
        checks.append(await check_copies(sequencer.split(","), genesis.chain_id))
    decisions, summary = check_decisions(blocks, genesis)
    checks.append(decisions)
    retention = genesis.limits.record_retention_blocks
    checks.append(await check_atomicity(summary, nodes, from_height, retention))
    checks.append(await check_conservation(nodes))
    checks.append(await check_replicas(nodes, from_height))
    if journal is not None:
        checks.append(check_journal(journal, blocks))
    notes = []
    if first > 1:
        notes.append(
            f"history pruned below {first}: checked from {first} (block {first} trusted as a"
            " checkpoint for its parent link; bundles ordered before it not judged; journal"
            " entries before it not looked up)"
        )
    return Report(checks, notes)


async def check_equivocation(
    nodes: list[NodeRef], genesis: Genesis, sequencer: str | None = None
) -> CheckResult:
    """I7: evidence of equivocation, re-verified here: what a node holds (two
    signed headers that cannot be on one chain), and, with `sequencer`, a node
    whose applied header is signed but is not the log's block at that height
    (served a fork). Figures: `nodes` with evidence; `halted` nodes stopped on it
    (until restarted) or on a fork, left out of the per-node checks."""
    r = CheckResult("equivocation", {"nodes": [], "halted": []})
    genesis_hash = compute_genesis_hash(genesis)
    for node in nodes:
        async with NodeClient(node.endpoint) as n:
            status = await n.status()
        if status.HasField("equivocation"):
            ev = status.equivocation
            if is_evidence(ev, genesis, genesis_hash):
                r.figures["nodes"].append(node.name)
                if ev.second.header.height == ev.height:
                    what = f"two headers for height {ev.height}: {ev.first.hash.hex()} and"
                else:
                    what = (
                        f"header {ev.first.hash.hex()} for height {ev.height} and a header for"
                        f" {ev.height + 1} whose parent is not it:"
                    )
                r.fail(
                    f"the sequencer signed {what} {ev.second.hash.hex()}"
                    f" (evidence held by {node.name})"
                )
            if status.refusal.code == npb.Refusal.CODE_EQUIVOCATION:
                r.figures["halted"].append(node.name)
        elif sequencer is not None and status.HasField("applied_header"):
            mine = status.applied_header
            async with Client(sequencer, genesis.chain_id) as client:
                try:
                    logged = await _logged_block(client, mine.header.height)
                except aio.AioRpcError as e:
                    if "pruned" in (e.details() or ""):
                        r.figures["unchecked_pruned"] = r.figures.get("unchecked_pruned", 0) + 1
                        continue  # the log no longer holds that height
                    r.fail(f"{node.name} applied height {mine.header.height}: {e.details()}")
                    continue
            if mine.hash != logged.hash and is_signed_header(mine, genesis, genesis_hash):
                r.figures["nodes"].append(node.name)
                r.figures["halted"].append(node.name)
                r.fail(
                    f"the sequencer signed two headers for height {mine.header.height}:"
                    f" {logged.hash.hex()} in its log and {mine.hash.hex()}, which"
                    f" {node.name} applied (evidence held by {node.name})"
                )
    return r


async def _logged_block(client: Client, height: int, wait: float = 5.0) -> pb.Block:
    """The log's block at `height`. With HA replicas the one asked may not hold it
    yet (a standby a block behind the leader, which a node may have streamed from):
    NOT_FOUND is asked again, of the next replica, for up to `wait` seconds."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        try:
            return await client.get_block(height)
        except aio.AioRpcError as e:
            late = e.code() == grpc.StatusCode.NOT_FOUND and "pruned" not in (e.details() or "")
            if not late or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.05)


def is_evidence(ev: npb.Equivocation, genesis: Genesis, genesis_hash: bytes) -> bool:
    """Both headers are the sequencer's and cannot be on one chain: two for one
    height, or one for the next height naming another parent."""
    first, second = ev.first, ev.second
    if not all(is_signed_header(h, genesis, genesis_hash) for h in (first, second)):
        return False
    if first.header.height != ev.height:
        return False
    if second.header.height == ev.height:
        return first.hash != second.hash
    return second.header.height == ev.height + 1 and second.header.parent_hash != first.hash


async def _node_terms(nodes: list[NodeRef]) -> dict[str, tuple[int, int]]:
    """Each node's applied height and the term it refuses blocks below."""
    out = {}
    for node in nodes:
        async with NodeClient(node.endpoint) as n:
            s = await n.status()
        out[node.name] = (int(s.applied_height), int(s.term))
    return out


async def _wait_applied(nodes: list[NodeRef], height: int, timeout: float) -> None:
    async def one(node: NodeRef) -> None:
        async with NodeClient(node.endpoint) as n:
            await n.wait_for_height(height, timeout=timeout)

    try:
        await asyncio.gather(*(one(n) for n in nodes))
    except TimeoutError as e:
        raise InvalidInput(f"nodes did not catch up to height {height}: {e}") from None
