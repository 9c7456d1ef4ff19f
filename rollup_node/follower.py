"""The node's follower: streams blocks from the sequencer from the last applied
height, checks each links to the chain it has, applies its rollup's entries
with the pure state machine and saves the result in one write batch.
Reconnects by itself with backoff (xrollup.client.Client.follow)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import blake3
import grpc
from grpc import aio

from rollup_node.core import bundles
from rollup_node.core.execute import apply_block, apply_genesis
from rollup_node.core.root import compute_state_root, update_accumulator
from rollup_node.store import Applied, NodeStore
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT
from xrollup.client import TRANSIENT, Client
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, encode_genesis
from xrollup.keys import Keypair
from xrollup.model import BundleVote, Signature, VoteBody
from xrollup.numeric import Height
from xrollup.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


def compute_genesis_hash(genesis: Genesis) -> bytes:
    return blake3.blake3(encode_genesis(genesis).encode()).digest()


def compute_vote_chunks(
    chain_id: str, rollup: str, height: int, votes: tuple[BundleVote, ...], limit: int
) -> list[VoteBody]:
    """The votes of one block as few vote bodies as fit the sequencer's body size
    limit (one, unless the block prepared many bundles here): a vote body over the
    limit is refused at admission, and its bundles would abort at their deadline."""
    empty = len(codec.encode_vote_body(VoteBody(chain_id, rollup, Height(height), ())))
    chunks: list[list[BundleVote]] = [[]]
    size = empty
    for v in votes:
        # a repeated field's entries encode independently, so sizes add up exactly
        one = len(codec.encode_vote_body(VoteBody(chain_id, rollup, Height(height), (v,))))
        if chunks[-1] and size + one - empty > limit:
            chunks.append([])
            size = empty
        chunks[-1].append(v)
        size += one - empty
    return [VoteBody(chain_id, rollup, Height(height), tuple(c)) for c in chunks]


class Follower:
    def __init__(
        self, store: NodeStore, genesis: Genesis, rollup: str, sequencer: str, vote_key: Keypair
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.rollup = rollup
        self.sequencer = sequencer
        self.vote_key = vote_key
        self.connected = False
        self.sequencer_height = 0
        self.votes_sent = 0
        self._apply_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply")
        self._vote_tasks: set[asyncio.Task[None]] = set()
        applied = store.applied()
        if applied is None:
            applied = self._apply_genesis()
        self.applied = applied
        self.state_root = store.get_root(applied.height) or b""

    def _apply_genesis(self) -> Applied:
        outcome = apply_genesis(self.store.state, self.genesis, self.rollup)
        acc = update_accumulator(0, ((k, None, v) for k, v in outcome.writes.items()))
        self.store.save_block(outcome, GENESIS_PARENT, acc, compute_state_root(acc))
        applied = self.store.applied()
        assert applied is not None
        return applied

    def apply(self, msg: pb.Block) -> tuple[Applied, tuple[BundleVote, ...]]:
        """Apply one block; raises InvalidInput when it does not extend our chain.
        Returns the new applied height and this rollup's votes on its bundles."""
        block = codec.decode_block(msg)
        if block.height != self.applied.height + 1:
            raise InvalidInput(f"got block {block.height}, next is {self.applied.height + 1}")
        if block.parent_hash != self.applied.block_hash:
            raise InvalidInput(f"block {block.height} does not extend the chain this node applied")
        outcome = apply_block(self.store.state, block, self.rollup, self.genesis)
        base = self.store.state
        acc = update_accumulator(
            self.applied.accumulator, ((k, base.get(k), v) for k, v in outcome.writes.items())
        )
        root = compute_state_root(acc)
        self.store.save_block(outcome, block.hash, acc, root)
        self.applied = Applied(block.height, block.hash, acc)
        self.state_root = root
        return self.applied, outcome.votes

    async def run(self) -> None:
        """Follow the sequencer until cancelled."""
        loop = asyncio.get_running_loop()
        poller = asyncio.create_task(self._poll_head())
        try:
            async with Client(self.sequencer) as client:
                for height, votes in self._undecided_votes():
                    self._send_vote(client, height, votes)
                while True:
                    try:
                        async for msg in client.follow(self.applied.height + 1):
                            self.connected = True
                            self.sequencer_height = max(self.sequencer_height, msg.header.height)
                            applied, votes = await loop.run_in_executor(
                                self._apply_thread, self.apply, msg
                            )
                            if votes:
                                self._send_vote(client, applied.height, votes)
                    except InvalidInput as e:
                        # A block that does not link: never apply it; retry from our height.
                        log.error("refusing block: %s", e)
                        self.connected = False
                        await asyncio.sleep(1.0)
        finally:
            self.connected = False
            for task in list(self._vote_tasks):
                task.cancel()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            self._apply_thread.shutdown(wait=True)

    # ------------------------------------------------------------ votes

    def _undecided_votes(self) -> list[tuple[int, tuple[BundleVote, ...]]]:
        """Votes on bundles prepared here but not yet decided, grouped by the
        height they were prepared at: sent again after a restart, in case the
        first sending died with the process."""
        by_height: dict[int, list[BundleVote]] = {}
        for _key, raw in self.store.state.iterate(bundles.BUNDLE, bundles.BUNDLE + b"\xff" * 33):
            record = bundles.decode_record(raw)
            if record.status == bundles.PREPARED:
                by_height.setdefault(record.prepare_height, []).append(
                    BundleVote(record.id, record.vote, record.reason)
                )
        return [
            (h, tuple(sorted(v, key=lambda x: x.bundle_id))) for h, v in sorted(by_height.items())
        ]

    def _send_vote(self, client: Client, height: int, votes: tuple[BundleVote, ...]) -> None:
        deadline = height + self.genesis.limits.bundle_deadline_blocks
        if deadline < self.sequencer_height:
            return  # too late to count: the sequencer aborts at the deadline anyway
        limit = self.genesis.limits.max_body_bytes
        for chunk in compute_vote_chunks(self.genesis.chain_id, self.rollup, height, votes, limit):
            body_bytes = codec.encode_vote_body(chunk)
            signature = Signature(self.vote_key.public_key, self.vote_key.sign(body_bytes))
            msg = codec.encode_signed_vote(body_bytes, signature)
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
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)

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
