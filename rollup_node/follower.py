"""The node's follower: streams blocks from the sequencer from the last applied
height, verifies each (xrollup/verify.py: link, signature, commitments), applies
its rollup's entries with the pure state machine and saves the result in one
write batch. A block that fails verification, or whose decisions contradict the
logged votes, is never applied: the node logs why, shows it in GetNodeStatus,
keeps refusing and resumes by itself once an honest stream returns. Two validly
signed headers for one height, or a signed header for the next height naming
another parent than the one this node applied, are evidence of equivocation: the
node keeps them and stops following until it is restarted. Unless the other
header is of a lower leader term than the one it competes with (the applied
header at its height, or the applied head for the next height): that is a
superseded leader's block (an HA sequencer's old leader), refused as STALE_TERM,
never applied and not evidence. So leader terms never decrease along the
applied chain, and `Follower.term`, the applied head's, is the highest seen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import grpc
from grpc import aio

from rollup_node.core import bundles
from rollup_node.core.execute import apply_block, apply_genesis
from rollup_node.core.root import compute_state_root, update_accumulator
from rollup_node.core.state import BUNDLE
from rollup_node.store import Applied, Frozen, NodeStore
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT, BlockRefused, RefusalCode, validate_term
from xrollup.client import TRANSIENT, Client, sign_vote
from xrollup.errors import Refused
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair
from xrollup.model import BundleVote, VoteBody
from xrollup.numeric import Height
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import is_signed_header, strip_entries, verify_block

if TYPE_CHECKING:
    from rollup_node.metrics import NodeMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    height: int
    message: str


# Apply times kept for GetBundle's timeline (operational, never state): the last this many heights.
APPLIED_TIMES = 65_536


def compute_vote_chunks(
    chain_id: str,
    rollup: str,
    height: int,
    votes: tuple[BundleVote, ...],
    limit: int,
    genesis_hash: bytes,
) -> list[VoteBody]:
    """The votes of one block as few vote bodies as fit the sequencer's body size
    limit (one, unless the block prepared many bundles here): a vote body over the
    limit is refused at admission, and its bundles would abort at their deadline."""

    def body(vs: tuple[BundleVote, ...]) -> VoteBody:
        return VoteBody(chain_id, rollup, Height(height), vs, genesis_hash)

    empty = len(codec.encode_vote_body(body(())))
    chunks: list[list[BundleVote]] = [[]]
    size = empty
    for v in votes:
        # a repeated field's entries encode independently, so sizes add up exactly
        one = len(codec.encode_vote_body(body((v,))))
        if chunks[-1] and size + one - empty > limit:
            chunks.append([])
            size = empty
        chunks[-1].append(v)
        size += one - empty
    return [body(tuple(c)) for c in chunks]


def compute_max_retry_delay(genesis: Genesis) -> float:
    """The longest a node waits between attempts to reach the sequencer again (the
    stream, a vote): a tenth of the bundle deadline in wall time, within 50 ms..1 s.
    A node back from a cut link or a restart is then following again long before a
    bundle ordered during the cut reaches its deadline: with the dev genesis (50
    blocks of 20 ms) 100 ms, where a flat 1 s was the whole deadline (the faults
    experiment found a 30-block cut aborted every bundle ordered in it)."""
    deadline_s = genesis.limits.bundle_deadline_blocks * genesis.block_interval_ms / 1000
    return max(0.05, min(1.0, deadline_s / 10))


class Follower:
    def __init__(
        self,
        store: NodeStore,
        genesis: Genesis,
        rollup: str,
        sequencer: str,
        vote_key: Keypair,
        full_stream: bool = False,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.genesis_hash = compute_genesis_hash(genesis)
        self.rollup = rollup
        # The stream this node asks for: its rollup's entries and the protocol's
        # (the default), or every entry (full_stream; the state reached is the same).
        self.stream_rollup = "" if full_stream else rollup
        self.sequencer = sequencer
        self.vote_key = vote_key
        self.connected = False
        self.sequencer_height = 0
        self.votes_sent = 0
        self.vote_retries = 0
        self.refusal: Refusal | None = None
        self.refused_blocks = 0
        self.stream_error = ""
        self.halted = False  # set on evidence of equivocation, until restarted
        self.max_retry_delay = compute_max_retry_delay(genesis)
        self._apply_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply")
        self._vote_tasks: set[asyncio.Task[None]] = set()
        self._applied_ms: dict[int, int] = {}
        self.metrics: NodeMetrics | None = None  # set by __main__ with --metrics-listen
        self._snapshot_due: tuple[int, Future[tuple[Frozen, Applied, bytes]]] | None = None
        applied = store.applied()
        if applied is None:
            applied = self._apply_genesis()
        self.applied = applied
        self.state_root = store.get_root(applied.height) or b""
        # The leader term of the applied head (0 at genesis and with a single
        # sequencer): a block of a lower term is refused (STALE_TERM).
        self.term = self._applied_term(applied.height)

    def _applied_term(self, height: int) -> int:
        header = self.store.get_header(height) if height else None
        return header.header.term if header is not None else 0

    def _apply_genesis(self) -> Applied:
        outcome = apply_genesis(self.store.state, self.genesis, self.rollup)
        acc = update_accumulator(0, ((k, None, v) for k, v in outcome.writes.items()))
        self.store.save_block(outcome, GENESIS_PARENT, acc, compute_state_root(acc))
        applied = self.store.applied()
        assert applied is not None
        return applied

    def apply(self, msg: pb.Block) -> tuple[Applied, tuple[BundleVote, ...]] | None:
        """Verify and apply one block. Returns the new applied height and this
        rollup's votes, or None for a block at a height already applied (the same
        block again; a different signed one is recorded as equivocation). Raises
        BlockRefused, with nothing applied, for a block that must not be applied."""
        started = time.perf_counter()
        if msg.header.height <= self.applied.height:
            self._check_applied_height(msg)
            return None
        try:
            block = verify_block(
                msg,
                self.genesis,
                self.genesis_hash,
                self.applied.height + 1,
                self.applied.block_hash,
                self.stream_rollup or None,
                self.term,
            )
        except BlockRefused as e:
            if e.code == RefusalCode.BAD_LINK:
                self._check_fork(msg)
            raise
        outcome = apply_block(self.store.state, block, self.rollup, self.genesis)
        base = self.store.state
        acc = update_accumulator(
            self.applied.accumulator, ((k, base.get(k), v) for k, v in outcome.writes.items())
        )
        root = compute_state_root(acc)
        if self.metrics is not None:  # before the save: the escrows as they were
            changed = [v.bundle_id for v in outcome.votes] + [r.id for r in outcome.finished]
            escrow = bundles.compute_escrow_change(base, outcome.writes, changed)
        self.store.save_block(outcome, block.hash, acc, root, strip_entries(msg))
        self.applied = Applied(block.height, block.hash, acc)
        self.state_root = root
        self.term = block.header.term  # verify_block refused a lower one
        self._note_applied(block.height)
        self._take_due_snapshot()
        if self.metrics is not None:
            self.metrics.observe_block(outcome, escrow, time.perf_counter() - started)
        if self.refusal is not None and block.height >= self.refusal.height:
            log.info("block %d verified and applied: no longer refusing", block.height)
            self.refusal = None
        return self.applied, outcome.votes

    def _note_applied(self, height: int) -> None:
        """Remember when this node applied `height`, by its own clock: for a bundle's
        timeline (GetBundle), never part of state. Bounded to APPLIED_TIMES heights."""
        times = self._applied_ms
        times[height] = time.time_ns() // 1_000_000
        if len(times) > APPLIED_TIMES:
            del times[next(iter(times))]

    def applied_ms(self, height: int) -> int:
        """Unix ms at which this node applied `height`; 0 when not remembered."""
        return self._applied_ms.get(height, 0)

    def request_snapshot(self, height: int) -> Future[tuple[Frozen, Applied, bytes]]:
        """The store frozen right after `height` is applied, with that height and
        root: taken on the apply thread between two blocks (at once when `height`
        is the applied height), so it costs a block only the time to take a LevelDB
        snapshot. Fails with Refused when the node is past `height`. One request
        at a time (rollup_node/snapshots.py bounds them); cancel it to drop it."""
        due: Future[tuple[Frozen, Applied, bytes]] = Future()
        self._snapshot_due = (height, due)
        self._apply_thread.submit(self._take_due_snapshot)
        return due

    def _take_due_snapshot(self) -> None:
        """On the apply thread, after each block: serve a snapshot request due now."""
        pending = self._snapshot_due  # read once: the loop thread may replace it
        if pending is None or pending[0] > self.applied.height:
            return
        height, due = pending
        if self._snapshot_due is pending:
            self._snapshot_due = None
        if not due.set_running_or_notify_cancel():
            return
        if height < self.applied.height:
            due.set_exception(
                Refused(
                    f"{self.rollup} node has applied up to height {self.applied.height}, past"
                    f" {height}: a node snapshots its state right after applying the height"
                    " asked, so ask for a height it has not applied yet"
                )
            )
            return
        self.store.pin_root(height)  # retention keeps it: nodes started from it check it
        due.set_result((self.store.freeze(), self.applied, self.state_root))

    def _check_fork(self, msg: pb.Block) -> None:
        """A sequencer-signed header for the next height naming another parent than
        the signed header this node applied there: the sequencer signed two blocks
        for that height (it may have served this node one and others the other).
        Reached only for a header of the applied head's term or above: verify_block
        refuses a lower one as STALE_TERM before looking at its link."""
        height = self.applied.height
        mine = self.store.get_header(height)
        if (
            mine is None
            or msg.header.height != height + 1
            or msg.header.parent_hash == mine.hash
            or not is_signed_header(msg, self.genesis, self.genesis_hash)
        ):
            return
        self._halt_on_evidence(
            height,
            mine,
            msg,
            f"the sequencer signed block {height + 1} on a parent"
            f" {bytes(msg.header.parent_hash).hex()[:16]} other than the block"
            f" {bytes(mine.hash).hex()[:16]} it signed at {height} and this node applied",
        )

    def _halt_on_evidence(
        self, height: int, mine: pb.Block, other: pb.Block, what: str
    ) -> NoReturn:
        self.store.save_equivocation(height, mine, strip_entries(other))
        self.halted = True
        raise BlockRefused(
            RefusalCode.EQUIVOCATION,
            height,
            f"{what}; evidence kept, following stopped until restart",
        )

    def _check_applied_height(self, msg: pb.Block) -> None:
        """A block at a height already applied: the same block again is ignored; a
        signed one of a lower term than the applied one there is a superseded
        leader's (STALE_TERM); another signed one is evidence of equivocation."""
        height = msg.header.height
        mine = self.store.get_header(height)
        if mine is None or mine.hash == msg.hash:
            return
        if not is_signed_header(msg, self.genesis, self.genesis_hash):
            raise BlockRefused(
                RefusalCode.BAD_SIGNATURE,
                height,
                "a second header for an applied height, not signed by the sequencer key",
            )
        validate_term(codec.decode_header(msg.header), mine.header.term)
        self._halt_on_evidence(
            height,
            mine,
            msg,
            f"two headers signed by the sequencer key: {bytes(mine.hash).hex()[:16]} (applied)"
            f" and {bytes(msg.hash).hex()[:16]}",
        )

    async def run(self) -> None:
        """Follow the sequencer until cancelled."""
        loop = asyncio.get_running_loop()
        poller = asyncio.create_task(self._poll_head())
        delay = 0.05
        try:
            async with Client(self.sequencer) as client:
                for height, votes in self._undecided_votes():
                    self._send_vote(client, height, votes)
                while True:
                    if self.halted:
                        await asyncio.sleep(1.0)
                        continue
                    try:
                        stream = client.stream_blocks(self.applied.height + 1, self.stream_rollup)
                        async for msg in stream:
                            self.connected = True
                            self.stream_error = ""
                            self.sequencer_height = max(self.sequencer_height, msg.header.height)
                            done = await loop.run_in_executor(self._apply_thread, self.apply, msg)
                            delay = 0.05  # back off again only after a block that applied
                            if done is not None and done[1]:
                                self._send_vote(client, done[0].height, done[1])
                    except BlockRefused as e:
                        self._refuse(e)
                    except aio.AioRpcError as e:
                        self._stream_failed(e)
                    self.connected = False
                    await asyncio.sleep(delay)
                    delay = min(self.max_retry_delay, delay * 2)
        finally:
            self.connected = False
            for task in list(self._vote_tasks):
                task.cancel()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            self._apply_thread.shutdown(wait=True)

    def _refuse(self, e: BlockRefused) -> None:
        """Never apply it; say so (log and status) and retry from our height."""
        refusal = Refusal(e.code, e.height, str(e))
        self.refused_blocks += 1
        if self.metrics is not None:
            self.metrics.count_refused(e.code)
        if refusal != self.refusal or self.refused_blocks % 50 == 0:
            log.error(
                "refusing block %d (%s): %s [%d refused so far]",
                e.height,
                e.code.name,
                e,
                self.refused_blocks,
            )
        self.refusal = refusal

    def _stream_failed(self, e: aio.AioRpcError) -> None:
        """A stream that cannot deliver the next block is an alarm, not a silent retry."""
        what = f"{e.code().name}: {e.details()}"
        if what != self.stream_error:
            # UNAVAILABLE is the sequencer restarting or a link cut; the rest is an alarm.
            level = logging.WARNING if e.code() == grpc.StatusCode.UNAVAILABLE else logging.ERROR
            log.log(level, "block stream from height %d failed: %s", self.applied.height + 1, what)
        self.stream_error = what

    # ------------------------------------------------------------ votes

    def _undecided_votes(self) -> list[tuple[int, tuple[BundleVote, ...]]]:
        """Votes on bundles prepared here but not yet decided, grouped by the
        height they were prepared at: sent again after a restart, in case the
        first sending died with the process."""
        by_height: dict[int, list[BundleVote]] = {}
        for _key, raw in self.store.state.iterate(BUNDLE, BUNDLE + b"\xff" * 33):
            record = bundles.decode_bundle_record(raw)
            if record.status == bundles.PREPARED:
                by_height.setdefault(record.prepare_height, []).append(
                    BundleVote(record.id, record.vote, record.code, Height(record.prepare_height))
                )
        return [
            (h, tuple(sorted(v, key=lambda x: x.bundle_id))) for h, v in sorted(by_height.items())
        ]

    def _send_vote(self, client: Client, height: int, votes: tuple[BundleVote, ...]) -> None:
        deadline = height + self.genesis.limits.bundle_deadline_blocks
        if deadline < self.sequencer_height:
            return  # too late to count: the sequencer aborts at the deadline anyway
        limit = self.genesis.limits.max_body_bytes
        chunks = compute_vote_chunks(
            self.genesis.chain_id, self.rollup, height, votes, limit, self.genesis_hash
        )
        for chunk in chunks:
            msg = sign_vote(self.vote_key, chunk)
            task = asyncio.create_task(self._submit_vote(client, msg, deadline))
            self._vote_tasks.add(task)
            task.add_done_callback(self._vote_tasks.discard)

    async def _submit_vote(self, client: Client, msg: pb.SignedVote, deadline: int) -> None:
        delay = 0.02
        while True:
            try:
                await client.submit_vote(msg, timeout=5.0)
                self.votes_sent += 1
                return
            except aio.AioRpcError as e:
                if e.code() not in TRANSIENT:
                    log.error("vote refused: %s: %s", e.code().name, e.details())
                    return
                if self.sequencer_height > deadline:
                    log.warning("vote for height %d dropped: its deadline passed", deadline)
                    return
                self.vote_retries += 1
            await asyncio.sleep(delay)
            delay = min(self.max_retry_delay, delay * 2)

    async def _poll_head(self) -> None:
        async with Client(self.sequencer) as client:
            while True:
                try:
                    status = await client.status(timeout=2.0)
                    self.sequencer_height = max(self.sequencer_height, status.height)
                except aio.AioRpcError as e:
                    self.connected = False
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        log.warning("sequencer status: %s", e.details())
                await asyncio.sleep(0.5)
