"""The sequencer's running state: the pending pool, the block sealer and the
head. Sealing takes entries that were already decoded, verified and hashed at
admission, so no signature check or body hashing sits on the sealing path; the
synced LevelDB write runs on its own thread (group commit: one sync per block)
and only then are the submissions in the block acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from sequencer.core.pool import Pending, Pool
from sequencer.core.retention import compute_keep_from
from sequencer.store import BlockStore
from xrollup import codec
from xrollup.blocks import PROTOCOL, compute_decision_id
from xrollup.decisions import BundleMeta, BundleTracker, EntryMeta, VoteMeta
from xrollup.errors import Expired, NotFound, Refused, Unavailable, XrollupError
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair
from xrollup.model import Bundle, Decision, Vote
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import compute_entry_spaces, filter_block, seal_entries

if TYPE_CHECKING:
    from sequencer.metrics import SequencerMetrics

log = logging.getLogger(__name__)

RECENT_BLOCKS = 512  # kept decoded in memory for live followers, at most
RECENT_BYTES = 64 * 1024 * 1024  # and at most this many bytes of entries (header byte_count)
# Heights of blocks (and of ids) deleted at most per pruning step; one step runs
# after each sealed block on its own thread while there is something to prune.
PRUNE_STEP = 64
# Blocks filtered per rollup kept for the streams that ask for them, in bytes.
FILTERED_CACHE_BYTES = 16 * 1024 * 1024
# Admission times kept for GetSubmission (operational, never in blocks): the last this many.
ADMITTED_TIMES = 65_536
# Bytes a decision entry may take in a block (it is ~45): reserved out of the
# block's byte budget for the decisions appended after the pool's entries.
DECISION_BYTES = 64


class Pruned(NotFound):
    """The block asked for was deleted by retention (NOT_FOUND)."""


@dataclass(frozen=True, slots=True)
class Sealable:
    """An admitted entry as the log stores it (re-encoded from the decoded
    submission: no unknown fields) and the namespaces it belongs to."""

    entry: pb.Entry
    namespaces: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Queued:
    """An admitted entry to order: a vote goes to the protocol lane; `meta` is what
    the bundle protocol needs of it (xrollup/decisions.py)."""

    entry: Sealable
    id: bytes
    expiry_height: int
    protocol: bool = False
    meta: EntryMeta | None = None


class ReplicatedLog(Protocol):
    """Where an HA leader commits a block before its own copy (sequencer/etcdlog.py)."""

    def append(self, term: int, height: int, block: bytes, block_hash: bytes) -> bool:
        """Commit block `height` if `term` still leads; False: fenced off."""


class Fenced(Refused):
    """This replica may not append: it is no longer the leader (etcd refused the
    append, or its lease may have expired)."""


class NotLeading(Unavailable):
    """A replica that does not lead was asked to order something."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Where a submission was ordered. `duplicate`: it had been submitted before."""

    id: bytes
    height: int
    index: int
    duplicate: bool = False


class Sequencer:
    def __init__(self, genesis: Genesis, store: BlockStore, key: Keypair) -> None:
        assert key.public_key == genesis.sequencer_key, "the key genesis names signs blocks"
        self.genesis = genesis
        self.genesis_hash = compute_genesis_hash(genesis)
        self.key = key
        self.store = store
        self.pool: Pool[Sealable] = Pool(genesis.limits.max_pool)
        self.head_height, self.head_hash = store.head()
        self._head_timestamp = 0
        self._waiters: dict[bytes, asyncio.Future[Ack]] = {}
        # The last blocks, decoded, bounded in count and in bytes (RECENT_*); each
        # one's entries' namespaces (parallel to _recent); and the blocks filtered
        # per rollup that streams asked for, bounded in bytes.
        self._recent: deque[pb.Block] = deque()
        self._recent_bytes = 0
        self._recent_spaces: deque[list[tuple[str, ...]]] = deque()
        self._filtered: dict[tuple[int, str], tuple[pb.Block, int]] = {}
        self._filtered_bytes = 0
        self._new_block = asyncio.Condition()
        self._wake = asyncio.Event()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal-io")
        self._stopping = False
        self._block_full = False  # the last block stopped at the byte budget
        self.sealer: asyncio.Task[None] | None = None
        self.subscribers = 0
        self.tracker = BundleTracker(genesis.limits.bundle_deadline_blocks)
        self._meta: dict[bytes, EntryMeta] = {}
        self._admitted_ns: dict[bytes, int] = {}
        self.metrics: SequencerMetrics | None = None  # set by __main__ with --metrics-listen
        # Retention (sequencer/core/retention.py): --retain-blocks, set by __main__
        # (0: keep every block), and the floor SetPruneFloor last set (0: none).
        self.retain_blocks = 0
        self.prune_floor = store.load_floor()
        self._pruner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prune")
        self._pruning: Future[tuple[int, int]] | None = None
        # HA (sequencer/ha.py): a replica orders only while it leads, under `term`,
        # committing every block to `log` first; `lease_ok` says whether its lease
        # is surely still valid (None: no check); `on_lost_lead` hears why it stopped.
        # A single sequencer leads for good with term 0 and no log.
        self.leading = True
        self.term = 0
        self.log: ReplicatedLog | None = None
        self.lease_ok: Callable[[], bool] | None = None
        self.on_lost_lead: Callable[[BaseException], None] | None = None
        self.fenced_appends = 0  # appends etcd refused (a superseded leader's)
        self._taking = asyncio.Lock()  # ingest: one block at a time
        if self.head_height:
            raw = store.get_block(self.head_height)
            assert raw is not None
            header = codec.decode_block_bytes(raw).header
            self._head_timestamp = header.timestamp_ms
            # Terms never go down along the log: a single sequencer restarted on an
            # HA replica's copy seals under the last term.
            self.term = header.term
            self._rebuild_tracker()

    def _rebuild_tracker(self) -> None:
        """After a restart: find the bundles still undecided in the last blocks
        (a bundle is decided by its deadline, so older ones all are)."""
        start = max(1, self.head_height - self.genesis.limits.bundle_deadline_blocks)
        for raw in self.store.read_from(start):
            block = codec.decode_block(codec.decode_block_bytes(raw))
            for entry in block.entries:
                if isinstance(entry, Bundle):
                    self.tracker.observe_bundle(entry.id, entry.rollups, block.height)
                elif isinstance(entry, Vote):
                    self.tracker.observe_vote(entry.body.rollup, entry.body.votes)
                elif isinstance(entry, Decision):
                    # Its own log: the decision was valid when sealed. A bundle ordered
                    # before the window may be decided inside it: nothing to track.
                    self.tracker.open.pop(entry.bundle_id, None)
        if self.tracker.open:
            log.info("%d bundles undecided at restart", len(self.tracker.open))

    @property
    def next_height(self) -> int:
        return self.head_height + 1

    @property
    def stopping(self) -> bool:
        return self._stopping

    # ------------------------------------------------------------ admission

    async def enqueue(
        self,
        entry: Sealable,
        entry_id: bytes,
        expiry_height: int,
        protocol: bool = False,
        meta: EntryMeta | None = None,
    ) -> Ack:
        """Queue an admitted entry and wait until its block is on disk. A duplicate
        id gets the first submission's result and is not queued again."""
        pending = self.lookup(entry_id)
        if isinstance(pending, Ack):
            return pending
        if pending is None:
            if self._stopping:
                raise Unavailable("sequencer is shutting down")
            if not self.leading:
                raise NotLeading("this sequencer replica does not lead; resubmit")
            pending_entry = Pending(entry_id, expiry_height, entry, entry.entry.ByteSize())
            self.pool.add(pending_entry, protocol=protocol)
            self._note_admitted(entry_id)
            if meta is not None:
                self._meta[entry_id] = meta
            pending = asyncio.get_running_loop().create_future()
            self._waiters[entry_id] = pending
            if len(self.pool) >= self.genesis.limits.max_block_entries:
                self._wake.set()
            return await asyncio.shield(pending)
        ack = await asyncio.shield(pending)
        return Ack(ack.id, ack.height, ack.index, duplicate=True)

    async def enqueue_many(self, items: Sequence[Queued]) -> list[Ack | XrollupError]:
        """Queue many admitted entries and wait until each is on disk or refused.
        Each is answered as `enqueue` would answer it, in order; one coroutine waits
        for all of them instead of one per entry."""
        results: list[Ack | XrollupError | None] = [None] * len(items)
        waiting: list[tuple[int, asyncio.Future[Ack], bool]] = []
        loop = asyncio.get_running_loop()
        for i, q in enumerate(items):
            pending = self.lookup(q.id)
            if isinstance(pending, Ack):
                results[i] = pending
            elif pending is not None:
                waiting.append((i, pending, True))
            elif self._stopping:
                results[i] = Unavailable("sequencer is shutting down")
            elif not self.leading:
                results[i] = NotLeading("this sequencer replica does not lead; resubmit")
            else:
                try:
                    self.pool.add(
                        Pending(q.id, q.expiry_height, q.entry, q.entry.entry.ByteSize()),
                        protocol=q.protocol,
                    )
                except XrollupError as e:
                    results[i] = e
                    continue
                self._note_admitted(q.id)
                if q.meta is not None:
                    self._meta[q.id] = q.meta
                pending = loop.create_future()
                self._waiters[q.id] = pending
                waiting.append((i, pending, False))
        if len(self.pool) >= self.genesis.limits.max_block_entries:
            self._wake.set()
        if waiting:
            # wait() never cancels what it waits for, so a cancelled call leaves the
            # futures (which duplicates may share) alone, as shield does in enqueue.
            await asyncio.wait([fut for _, fut, _ in waiting])
        for i, fut, duplicate in waiting:
            if fut.cancelled():
                results[i] = Unavailable("the submission was not ordered (cancelled)")
            elif (err := fut.exception()) is not None:
                results[i] = err if isinstance(err, XrollupError) else Unavailable(str(err))
            else:
                ack = fut.result()
                if duplicate:
                    ack = Ack(ack.id, ack.height, ack.index, duplicate=True)
                results[i] = ack
        return cast(list[Ack | XrollupError], results)

    def _note_admitted(self, entry_id: bytes) -> None:
        """Remember when an entry entered the pool, by this process's clock, for
        GetSubmission (what a bundle's timeline calls "submitted") and the
        acknowledgement latency metric. Never part of a block; forgotten after
        ADMITTED_TIMES newer admissions or a restart."""
        times = self._admitted_ns
        times[entry_id] = time.time_ns()
        if len(times) > ADMITTED_TIMES:
            del times[next(iter(times))]

    def admitted_ms(self, entry_id: bytes) -> int:
        """Unix ms at which `entry_id` was admitted here; 0 when not remembered."""
        return self._admitted_ns.get(entry_id, 0) // 1_000_000

    def lookup(self, entry_id: bytes) -> Ack | asyncio.Future[Ack] | None:
        """An ordered id's Ack (marked duplicate), a pending id's future, or None."""
        fut = self._waiters.get(entry_id)
        if fut is not None:
            return fut
        found = self.store.find(entry_id)
        if found is not None:
            return Ack(entry_id, found[0], found[1], duplicate=True)
        return None

    # ------------------------------------------------------------ sealing

    def start(self) -> None:
        self.sealer = asyncio.create_task(self._run_sealer(), name="sealer")

    async def stop(self) -> None:
        """Seal what is pending, stop the sealer and wake every follower."""
        self._stopping = True
        self._wake.set()
        if self.sealer is not None and not self.sealer.done():
            await self.sealer
        async with self._new_block:
            self._new_block.notify_all()
        self._io.shutdown(wait=True)
        self._pruner.shutdown(wait=True)

    async def _run_sealer(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.genesis.block_interval_ms / 1000
        max_entries = self.genesis.limits.max_block_entries
        while True:
            started = loop.time()
            try:
                await self.seal_block()
            except Exception as e:
                if self.log is not None:
                    self._lose_lead(e)
                    return
                log.critical("sealing failed; refusing further submissions", exc_info=True)
                self._stopping = True
                self._fail_all(
                    Unavailable("sequencer storage failed; the submission was not ordered")
                )
                raise
            if self._stopping and not len(self.pool):
                return
            delay = started + interval - loop.time()
            full = self._block_full or len(self.pool) >= max_entries
            if delay > 0 and not full and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def seal_block(self) -> None:
        height = self.next_height
        limits = self.genesis.limits
        # The byte budget leaves room for every decision this block could append.
        budget = limits.max_block_bytes - DECISION_BYTES * len(self.tracker.open)
        taken = self.pool.take(limits.max_block_entries, height, max(0, budget))
        self._block_full = taken.full
        # Wall clock for the header only: informational, never read by state transitions.
        timestamp_ms = max(self._head_timestamp, time.time_ns() // 1_000_000)
        ids = [p.id for p in taken.included]
        entries = [p.payload.entry for p in taken.included]
        spaces = [p.payload.namespaces for p in taken.included]
        for p in taken.expired:
            self._meta.pop(p.id, None)
        # The bundle protocol: observe what this block orders, then append the
        # decisions that follow from it (see xrollup/decisions.py).
        for p in taken.included:
            meta = self._meta.pop(p.id, None)
            if isinstance(meta, BundleMeta):
                self.tracker.observe_bundle(p.id, meta.rollups, height)
            elif isinstance(meta, VoteMeta):
                self.tracker.observe_vote(meta.rollup, meta.votes)
        for d in self.tracker.decide(height):
            entries.append(codec.encode_decision(d.bundle_id, d.commit, d.code))
            ids.append(compute_decision_id(d.bundle_id, d.commit, d.code))
            spaces.append((PROTOCOL,))
        parent = self.head_hash
        loop = asyncio.get_running_loop()
        block = await loop.run_in_executor(
            self._io, self._build_and_append, height, parent, timestamp_ms, entries, spaces, ids
        )
        self.head_height, self.head_hash, self._head_timestamp = (
            height,
            bytes(block.hash),
            timestamp_ms,
        )
        self._remember_recent(block, spaces)
        self._schedule_prune()
        if self.metrics is not None:
            self._observe_block(block, taken.included)
        for index, p in enumerate(taken.included):
            fut = self._waiters.pop(p.id, None)
            if fut is not None and not fut.done():
                fut.set_result(Ack(p.id, height, index))
        for p in taken.expired:
            fut = self._waiters.pop(p.id, None)
            if fut is not None and not fut.done():
                fut.set_exception(
                    Expired(f"expired at height {p.expiry_height} before it could be ordered")
                )
        async with self._new_block:
            self._new_block.notify_all()

    def _remember_recent(self, block: pb.Block, spaces: list[tuple[str, ...]]) -> None:
        """Keep the sealed block decoded for live followers, within RECENT_BLOCKS and
        RECENT_BYTES (the newest block always)."""
        self._recent.append(block)
        self._recent_spaces.append(spaces)
        self._recent_bytes += block.header.byte_count
        while len(self._recent) > 1 and (
            len(self._recent) > RECENT_BLOCKS or self._recent_bytes > RECENT_BYTES
        ):
            self._recent_bytes -= self._recent.popleft().header.byte_count
            self._recent_spaces.popleft()

    # ------------------------------------------------------------ retention

    @property
    def first_height(self) -> int:
        """The first height whose block this sequencer keeps (1: every block)."""
        return self.store.first_height()

    async def set_prune_floor(self, height: int) -> None:
        """Blocks below `height` may go (as --retain-blocks allows): every node and
        snapshot is past them. Kept across restarts (a synced write on the pruner's
        thread); 0 stops pruning."""
        if height == self.prune_floor:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pruner, self.store.save_floor, height)
        except RuntimeError:  # the pruner was shut down: stopping
            raise Unavailable("sequencer is shutting down") from None
        self.prune_floor = height
        self._schedule_prune()

    def _schedule_prune(self) -> None:
        """One pruning step on the pruner thread, unless one is running: the sealer
        never waits for it. Steps follow one another while they delete something."""
        if self.retain_blocks <= 0 or self.prune_floor <= 0 or self._stopping:
            return
        if self._pruning is not None and not self._pruning.done():
            return
        keep = compute_keep_from(
            self.head_height, self.retain_blocks, self.prune_floor, self.genesis.limits
        )
        self._pruning = self._pruner.submit(self.store.prune, keep.blocks, keep.ids, PRUNE_STEP)
        self._pruning.add_done_callback(self._pruned)

    def _pruned(self, done: Future[tuple[int, int]]) -> None:
        if done.cancelled():
            return
        if (err := done.exception()) is not None:
            log.error("pruning failed: %s", err, exc_info=err)

    def describe_pruned(self, height: int) -> str:
        return (
            f"block {height} is pruned: this sequencer keeps blocks from {self.first_height}"
            f" on (head {self.head_height}; --retain-blocks {self.retain_blocks}, prune floor"
            f" {self.prune_floor})"
        )

    def _observe_block(self, block: pb.Block, included: list[Pending[Sealable]]) -> None:
        """Metrics of a block about to be acknowledged: one call per block."""
        assert self.metrics is not None
        now = time.time_ns()
        times = self._admitted_ns
        latencies = [(now - t) * 1e-9 for p in included if (t := times.get(p.id)) is not None]
        header = block.header
        self.metrics.observe_block(
            header.entry_count, header.byte_count, latencies, time.monotonic()
        )

    def _build_and_append(
        self,
        height: int,
        parent: bytes,
        timestamp_ms: int,
        entries: list[pb.Entry],
        spaces: list[tuple[str, ...]],
        ids: list[bytes],
    ) -> pb.Block:
        """Commit to every entry's full bytes per namespace, sign the header, store."""
        block = seal_entries(
            entries,
            spaces,
            height,
            parent,
            timestamp_ms,
            self.genesis.rollup_names,
            self.genesis_hash,
            self.key,
            term=self.term,
        )
        if self.log is not None:
            # HA: committed by etcd's quorum, fenced by the term, before anything else.
            if self.lease_ok is not None and not self.lease_ok():
                raise Fenced(f"lease of term {self.term} may have expired; not appending")
            if not self.log.append(self.term, height, block.SerializeToString(), block.hash):
                self.fenced_appends += 1
                raise Fenced(f"etcd refused block {height} of term {self.term}: superseded")
        self.store.append(block, ids)
        return block

    # ------------------------------------------------------------ HA roles

    def lead(self, term: int) -> None:
        """Start ordering as the leader of `term`, from this replica's head, which
        the caller has brought to the committed head after winning (no other
        replica can append under a lower term any more). Bundles still undecided in
        the last blocks are found again, as after a restart."""
        assert not self.leading and term > self.term, (term, self.term)
        self.term = term
        self.tracker = BundleTracker(self.genesis.limits.bundle_deadline_blocks)
        self._meta.clear()
        if self.head_height:
            raw = self.store.get_block(self.head_height)
            assert raw is not None
            self._head_timestamp = codec.decode_block_bytes(raw).header.timestamp_ms
            self._rebuild_tracker()
        self._stopping = False
        self.leading = True
        self.start()

    def follow(self) -> None:
        """Standby: order nothing; blocks arrive through `ingest`."""
        self.leading = False

    def _lose_lead(self, err: BaseException) -> None:
        """The sealer could not commit a block: another replica leads now, or this
        one cannot reach etcd or renew its lease. Everything waiting here is told
        to resubmit (none of it was acknowledged); the pool is dropped."""
        if isinstance(err, Fenced):
            log.warning("term %d: %s; stepping down", self.term, err)
        else:
            log.error("term %d: appending failed (%s); stepping down", self.term, err)
        self.leading = False
        self._fail_all(NotLeading(f"the leader changed before this was ordered ({err}); resubmit"))
        self.pool = Pool(self.genesis.limits.max_pool)
        self._meta.clear()
        if self.on_lost_lead is not None:
            self.on_lost_lead(err)

    async def ingest(self, raw: bytes | pb.Block) -> None:
        """Standby: take the next committed block (from the replicated log, or the
        leader's stream of its copy, which holds committed blocks only) into this
        replica's copy, and hand it to the streams that wait for it. The write and
        the head move together even when the caller is cancelled meanwhile (a
        stream dropped when the leader changes): shielded, one block at a time, and
        the block just taken, given again, is taken once."""
        block = codec.decode_block_bytes(raw) if isinstance(raw, bytes) else raw
        await asyncio.shield(self._take(block))

    async def _take(self, block: pb.Block) -> None:
        async with self._taking:
            height = block.header.height
            if height == self.head_height and bytes(block.hash) == self.head_hash:
                return  # taken by a call cancelled while it wrote
            if height != self.head_height + 1 or block.header.parent_hash != self.head_hash:
                raise Refused(
                    f"block {height} taken does not extend this replica's head"
                    f" {self.head_height} ({self.head_hash.hex()[:16]})"
                )
            ids = [codec.compute_entry_id(e) for e in block.entries]
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._io, self.store.append, block, ids)
            self.head_height, self.head_hash = height, bytes(block.hash)
            self._head_timestamp = block.header.timestamp_ms
            self.term = max(self.term, block.header.term)
            spaces = compute_entry_spaces(block.entries, self.genesis.rollup_names)
            self._remember_recent(block, spaces)
            self._schedule_prune()
        async with self._new_block:
            self._new_block.notify_all()

    def _fail_all(self, err: Exception) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(err)
        self._waiters.clear()

    # ------------------------------------------------------------ reading

    def _recent_index(self, height: int) -> int | None:
        """Where block `height` is in the recent blocks (and their spaces), if there."""
        if (
            self._recent
            and self._recent[0].header.height <= height <= self._recent[-1].header.height
        ):
            return height - self._recent[0].header.height
        return None

    def get_block(self, height: int) -> pb.Block:
        """Block `height`; NotFound past the head, Pruned below the first kept block."""
        if 1 <= height < self.first_height:
            raise Pruned(self.describe_pruned(height))
        at = self._recent_index(height)
        if at is not None:
            return self._recent[at]
        raw = self.store.get_block(height)
        if raw is None:
            if 1 <= height < self.first_height:  # pruned while we looked
                raise Pruned(self.describe_pruned(height))
            raise NotFound(f"no block at height {height}; the head is {self.head_height}")
        return codec.decode_block_bytes(raw)

    def get_filtered_block(self, height: int, rollup: str) -> pb.Block:
        """Block `height` as streamed to `rollup`'s nodes (xrollup.verify.filter_block):
        built once per rollup and kept while it is recent, so a rollup's primary and
        replicas share it; a block read back from the store is decoded to find its
        entries' namespaces."""
        if 1 <= height < self.first_height:
            raise Pruned(self.describe_pruned(height))
        key = (height, rollup)
        found = self._filtered.get(key)
        if found is not None:
            return found[0]
        block = self.get_block(height)
        at = self._recent_index(height)
        if at is not None:
            spaces = self._recent_spaces[at]
        else:
            spaces = compute_entry_spaces(block.entries, self.genesis.rollup_names)
        out = filter_block(block, spaces, rollup)
        size = out.ByteSize()
        while self._filtered and self._filtered_bytes + size > FILTERED_CACHE_BYTES:
            self._filtered_bytes -= self._filtered.pop(next(iter(self._filtered)))[1]
        if size <= FILTERED_CACHE_BYTES:
            self._filtered[key] = (out, size)
            self._filtered_bytes += size
        return out

    async def wait_for_height(self, height: int) -> bool:
        """Wait until block `height` exists; False when the sequencer is stopping."""
        async with self._new_block:
            await self._new_block.wait_for(lambda: self.head_height >= height or self._stopping)
        return self.head_height >= height
