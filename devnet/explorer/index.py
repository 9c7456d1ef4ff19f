"""The explorer's in-memory index of the block stream: a summary of each recent
block, where each entry was ordered, the entries and positions each address
touches, and the votes and decision of each bundle. Bounded: the oldest blocks
(and everything they added) leave once there are more than `max_blocks` blocks,
`max_entries` entries or `max_bytes` bytes as estimated (compute_index_bytes,
measured with tracemalloc: ~470 bytes per transfer, ~950 per option bundle), so
its memory does not grow with history. Pure: the follower
(devnet/explorer/follower.py) feeds it verified blocks; time is an argument."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from devnet.explorer.describe import (
    compute_addresses,
    compute_kind,
    compute_positions,
    compute_rollups,
)
from xrollup import codec
from xrollup.blocks import BlockRefused
from xrollup.genesis import Genesis
from xrollup.model import Block, Bundle, Decision, Vote
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import verify_block

MAX_BLOCKS = 10_000
MAX_ENTRIES = 200_000
MAX_BYTES = 64 * 1024 * 1024
# What the index holds per block, per entry, and per address, position and vote an
# entry files (Python objects, estimated from tracemalloc on transfers and bundles).
BLOCK_BYTES, ENTRY_BYTES, ADDRESS_BYTES, POSITION_BYTES, VOTE_BYTES = 400, 300, 80, 160, 120
RATE_WINDOW_MS = 10_000
RECENT = 50  # recent bundles and non-empty blocks kept for the home page


@dataclass(frozen=True)
class BlockSummary:
    height: int
    hash: bytes
    parent_hash: bytes
    timestamp_ms: int
    entry_count: int
    byte_count: int
    counts: dict[str, int]  # kind -> entries of that kind
    verified: bool
    note: str  # why verification failed ("" when it passed)
    entry_ids: tuple[bytes, ...]
    index_bytes: int = 0  # what filing it took in the index, as estimated

    def to_json(self) -> dict[str, object]:
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "parent_hash": self.parent_hash.hex(),
            "timestamp_ms": self.timestamp_ms,
            "entry_count": self.entry_count,
            "byte_count": self.byte_count,
            "counts": self.counts,
            "verified": self.verified,
            "note": self.note,
        }


@dataclass(frozen=True)
class EntryRef:
    """Where an entry was ordered, and what the index filed under it."""

    height: int
    index: int
    kind: str
    rollups: tuple[str, ...]
    addresses: frozenset[bytes]
    positions: tuple[tuple[bytes, str, bytes, str], ...]  # see describe.compute_positions


@dataclass(frozen=True)
class VoteRef:
    rollup: str
    height: int
    yes: bool
    code: str


@dataclass(frozen=True)
class DecisionRef:
    height: int
    commit: bool
    code: str


@dataclass(frozen=True)
class Rates:
    blocks_per_s: float
    tx_per_s: float
    bundles_per_s: float


def verify_summary(
    msg: pb.Block, genesis: Genesis, genesis_hash: bytes, parent: bytes
) -> tuple[Block, bool, str]:
    """The decoded block and whether it verifies as a node verifies it against
    genesis and `parent` (the hash of the block before); the reason when not."""
    try:
        block = verify_block(msg, genesis, genesis_hash, msg.header.height, parent)
        return block, True, ""
    except BlockRefused as e:
        return codec.decode_block(msg), False, f"{e.code.name}: {e}"


@dataclass
class ChainIndex:
    max_blocks: int = MAX_BLOCKS
    max_entries: int = MAX_ENTRIES
    max_bytes: int = MAX_BYTES
    held_bytes: int = 0  # the estimated size of what the index holds
    blocks: dict[int, BlockSummary] = field(default_factory=dict)  # oldest first
    entries: dict[bytes, EntryRef] = field(default_factory=dict)
    by_address: dict[bytes, dict[bytes, None]] = field(default_factory=dict)  # ordered sets
    positions: dict[bytes, dict[tuple[str, bytes], str]] = field(default_factory=dict)
    votes: dict[bytes, list[VoteRef]] = field(default_factory=dict)  # bundle id ->
    decisions: dict[bytes, DecisionRef] = field(default_factory=dict)  # bundle id ->
    recent_bundles: deque[bytes] = field(default_factory=lambda: deque(maxlen=RECENT))
    busy_blocks: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT))
    stream_error: str = ""

    @property
    def head(self) -> int:
        return next(reversed(self.blocks)) if self.blocks else 0

    @property
    def head_hash(self) -> bytes | None:
        return self.blocks[self.head].hash if self.blocks else None

    @property
    def first(self) -> int:
        return next(iter(self.blocks)) if self.blocks else 0

    def add_block(self, block: Block, verified: bool, note: str) -> BlockSummary:
        """File a decoded block (the next height after the head)."""
        height = int(block.height)
        assert not self.blocks or height == self.head + 1, f"block {height} after {self.head}"
        counts: dict[str, int] = {}
        size = BLOCK_BYTES
        for index, entry in enumerate(block.entries):
            kind = compute_kind(entry)
            counts[kind] = counts.get(kind, 0) + 1
            ref = EntryRef(
                height,
                index,
                kind,
                compute_rollups(entry),
                compute_addresses(entry),
                compute_positions(entry),
            )
            self.entries.setdefault(entry.id, ref)
            size += compute_index_bytes(ref)
            for a in ref.addresses:
                self.by_address.setdefault(a, {})[entry.id] = None
            for address, what, position, rollup in ref.positions:
                self.positions.setdefault(address, {})[(what, position)] = rollup
            if isinstance(entry, Bundle):
                self.recent_bundles.append(entry.id)
            elif isinstance(entry, Vote):
                for v in entry.body.votes:
                    if v.bundle_id in self.entries:  # bundles before the index are not kept
                        self.votes.setdefault(v.bundle_id, []).append(
                            VoteRef(entry.body.rollup, height, v.yes, v.code.name)
                        )
                        size += VOTE_BYTES
            elif isinstance(entry, Decision) and entry.bundle_id in self.entries:
                self.decisions.setdefault(
                    entry.bundle_id, DecisionRef(height, entry.commit, entry.code.name)
                )
        summary = BlockSummary(
            height,
            block.hash,
            block.parent_hash,
            block.header.timestamp_ms,
            block.header.entry_count,
            block.header.byte_count,
            counts,
            verified,
            note,
            tuple(e.id for e in block.entries),
            size,
        )
        self.blocks[height] = summary
        self.held_bytes += size
        if block.entries:
            self.busy_blocks.append(height)
        while len(self.blocks) > 1 and (
            len(self.blocks) > self.max_blocks
            or len(self.entries) > self.max_entries
            or self.held_bytes > self.max_bytes
        ):
            self._evict_oldest()
        return summary

    def clear(self) -> None:
        """Forget every block (the follower starts again from a new window)."""
        self.blocks.clear()
        self.entries.clear()
        self.by_address.clear()
        self.positions.clear()
        self.votes.clear()
        self.decisions.clear()
        self.recent_bundles.clear()
        self.busy_blocks.clear()
        self.held_bytes = 0

    def _evict_oldest(self) -> None:
        oldest = self.blocks.pop(self.first)
        self.held_bytes -= oldest.index_bytes
        for entry_id in oldest.entry_ids:
            ref = self.entries.get(entry_id)
            if ref is None or ref.height != oldest.height:
                continue
            del self.entries[entry_id]
            for a in ref.addresses:
                ids = self.by_address.get(a)
                if ids is not None:
                    ids.pop(entry_id, None)
                    if not ids:
                        del self.by_address[a]
            for address, what, position, _ in ref.positions:
                held = self.positions.get(address)
                if held is not None:
                    held.pop((what, position), None)
                    if not held:
                        del self.positions[address]
            self.votes.pop(entry_id, None)
            self.decisions.pop(entry_id, None)

    def newest_first(self) -> Iterator[BlockSummary]:
        return reversed(self.blocks.values())

    def recent(self, count: int) -> list[BlockSummary]:
        """The last `count` blocks, newest first."""
        out = []
        for h in range(self.head, max(self.first, self.head - count + 1) - 1, -1):
            if h in self.blocks:
                out.append(self.blocks[h])
        return out

    def recent_busy(self, count: int) -> list[BlockSummary]:
        """The last `count` blocks that carry entries, newest first."""
        heights = [h for h in reversed(self.busy_blocks) if h in self.blocks]
        return [self.blocks[h] for h in heights[:count]]

    def bundle_state(self, bundle_id: bytes) -> str:
        """committed, aborted or pending, as far as the index saw the log."""
        d = self.decisions.get(bundle_id)
        if d is None:
            return "pending"
        return "committed" if d.commit else "aborted"

    def address_entries(self, address: bytes, count: int) -> list[tuple[bytes, EntryRef]]:
        """The last `count` entries naming `address`, newest first."""
        ids = list(self.by_address.get(address, {}))
        return [(i, self.entries[i]) for i in reversed(ids[-count:])]

    def address_positions(self, address: bytes) -> list[tuple[str, bytes, str]]:
        """(kind, id, rollup) of every lien and option the address touches."""
        return [(k, i, r) for (k, i), r in self.positions.get(address, {}).items()]


def compute_index_bytes(ref: EntryRef) -> int:
    """About what filing one entry takes in the index, in bytes."""
    return ENTRY_BYTES + ADDRESS_BYTES * len(ref.addresses) + POSITION_BYTES * len(ref.positions)


def compute_rates(
    newest_first: Iterable[BlockSummary], now_ms: int, window_ms: int = RATE_WINDOW_MS
) -> Rates:
    """Blocks, transactions and bundles per second over the `window_ms` before
    `now_ms`, from the blocks' header timestamps (the sequencer's clock); the
    window is shorter when the index holds less."""
    start = now_ms - window_ms
    n = txs = bundles = 0
    oldest: int | None = None
    for b in newest_first:
        oldest = b.timestamp_ms
        if b.timestamp_ms <= start:
            break
        if b.timestamp_ms <= now_ms:
            n += 1
            txs += b.counts.get("tx", 0)
            bundles += b.counts.get("bundle", 0)
    if oldest is None:
        return Rates(0.0, 0.0, 0.0)
    span_s = (now_ms - max(start, oldest)) / 1000
    if span_s <= 0:
        return Rates(0.0, 0.0, 0.0)
    return Rates(round(n / span_s, 1), round(txs / span_s, 1), round(bundles / span_s, 1))
