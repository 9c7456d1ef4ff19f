"""The SequencerService gRPC servicer: a thin shell that runs admission off the
event loop, hands admitted entries to the runtime and converts results back to
the wire. Errors reach clients through xrollup.grpc_status, never inline."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc import aio

from sequencer.admitter import Admitter
from sequencer.core import admission
from sequencer.metrics import BUNDLE, TX, VOTE, SequencerMetrics
from sequencer.runtime import Ack, Pruned, Queued, Sealable, Sequencer
from xrollup import codec
from xrollup.blocks import PROTOCOL
from xrollup.decisions import BundleMeta, VoteMeta
from xrollup.errors import (
    InvalidInput,
    LimitExceeded,
    NotFound,
    Refused,
    Unavailable,
    XrollupError,
)
from xrollup.grpc_status import compute_status_value, grpc_method
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc
from xrollup.v1 import types_pb2 as pb

if TYPE_CHECKING:
    from sequencer.ha import Replica

Context = aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)
_OK = grpc.StatusCode.OK.value[0]


def _submit_response(ack: Ack) -> spb.SubmitResponse:
    return spb.SubmitResponse(
        id=ack.id, height=ack.height, index=ack.index, duplicate=ack.duplicate
    )


class SequencerService(spb_grpc.SequencerServiceServicer):
    def __init__(
        self,
        sequencer: Sequencer,
        admitter: Admitter | None = None,
        metrics: SequencerMetrics | None = None,
        replica: Replica | None = None,
    ) -> None:
        self.seq = sequencer
        self.metrics = metrics
        # HA (sequencer/ha.py): a standby admits as the leader does, then forwards.
        self.replica = replica
        self.genesis = sequencer.genesis
        # Batches are admitted in worker processes (sequencer/admitter.py says why);
        # bundles and votes, and batches when no worker runs, on threads beside the
        # loop (signature checks release the GIL); single transactions on the loop.
        self.admitter = admitter
        self._verify = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="admit"
        )

    def close(self) -> None:
        if self.admitter is not None:
            self.admitter.close()
        self._verify.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._verify, fn, *args)

    async def _order(self, q: Queued) -> Ack:
        """Order one admitted entry here (leading) or through the leader (standby)."""
        if self.replica is None or self.seq.leading:
            return await self.seq.enqueue(q.entry, q.id, q.expiry_height, q.protocol, q.meta)
        (result,) = await self.replica.forwarder.submit([q])
        if isinstance(result, XrollupError):
            raise result
        return result

    async def _order_many(self, items: list[Queued]) -> list[Ack | XrollupError]:
        if self.replica is None or self.seq.leading:
            return await self.seq.enqueue_many(items)
        return await self.replica.forwarder.submit(items)

    @grpc_method
    async def SubmitTransaction(
        self, request: spb.SubmitTransactionRequest, context: Context
    ) -> spb.SubmitResponse:
        try:
            if not request.HasField("tx"):
                raise InvalidInput("request.tx: missing field")
            # On the loop: a hand-off to a thread or a worker process costs more CPU per
            # call than the ~80 us check itself (bench/sequencer.py: 1,760/s through the
            # thread pool, 2,250/s inline, the same inline as through the workers).
            tx = admission.admit_tx(request.tx, self.genesis, self.seq.next_height)
            entry = Sealable(codec.encode_canonical_tx(request.tx), (tx.body.rollup,))
            ack = await self._order(Queued(entry, tx.id, tx.body.expiry_height))
        except Exception as e:
            if self.metrics is not None:
                self.metrics.count_refused(TX, e)
            raise
        if self.metrics is not None:
            self.metrics.count_accepted(TX)
        return _submit_response(ack)

    @grpc_method
    async def SubmitBundle(
        self, request: spb.SubmitBundleRequest, context: Context
    ) -> spb.SubmitResponse:
        try:
            if not request.HasField("bundle"):
                raise InvalidInput("request.bundle: missing field")
            bundle = await self._run(
                admission.admit_bundle, request.bundle, self.genesis, self.seq.next_height
            )
            ack = await self._order(
                Queued(
                    Sealable(codec.encode_canonical_bundle(request.bundle), bundle.rollups),
                    bundle.id,
                    bundle.body.expiry_height,
                    meta=BundleMeta(bundle.rollups),
                )
            )
        except Exception as e:
            if self.metrics is not None:
                self.metrics.count_refused(BUNDLE, e)
            raise
        if self.metrics is not None:
            self.metrics.count_accepted(BUNDLE)
        return _submit_response(ack)

    @grpc_method
    async def SubmitVote(
        self, request: spb.SubmitVoteRequest, context: Context
    ) -> spb.SubmitResponse:
        try:
            if not request.HasField("vote"):
                raise InvalidInput("request.vote: missing field")
            vote = await self._run(admission.admit_vote, request.vote, self.genesis)
            meta = VoteMeta(vote.body.rollup, vote.body.votes)
            entry = Sealable(codec.encode_canonical_vote(request.vote), (PROTOCOL,))
            ack = await self._order(Queued(entry, vote.id, 0, protocol=True, meta=meta))
        except Exception as e:
            if self.metrics is not None:
                self.metrics.count_refused(VOTE, e)
            raise
        if self.metrics is not None:
            self.metrics.count_accepted(VOTE)
        return _submit_response(ack)

    @grpc_method
    async def SubmitBatch(
        self, request: spb.SubmitBatchRequest, context: Context
    ) -> spb.SubmitBatchResponse:
        refused: list[int] = []  # the status codes of the transactions not ordered
        try:
            response = await self._submit_batch(request, refused)
        except Exception as e:
            if self.metrics is not None:
                self.metrics.count_refused(TX, e, len(request.txs))
            raise
        if self.metrics is not None:
            self.metrics.count_batch(len(request.txs), refused)
        return response

    async def _submit_batch(
        self, request: spb.SubmitBatchRequest, refused: list[int]
    ) -> spb.SubmitBatchResponse:
        txs = request.txs
        limit = self.genesis.limits.max_batch
        if len(txs) > limit:
            raise LimitExceeded(f"batch has {len(txs)} transactions, limit is {limit}")
        if self.seq.stopping:
            raise Unavailable("sequencer is shutting down")
        next_height = self.seq.next_height
        if self.admitter is not None and self.admitter.available:
            raw = [msg.SerializeToString() for msg in txs]
            admitted = await self.admitter.admit_many(raw, next_height)
        else:
            # A few chunks, one per thread, so verification uses every core.
            chunks = max(1, min(len(txs) // 64, 4))
            bounds = [len(txs) * i // chunks for i in range(chunks + 1)]
            parts = await asyncio.gather(
                *(
                    self._run(
                        admission.admit_each,
                        txs[bounds[i] : bounds[i + 1]],
                        self.genesis,
                        next_height,
                    )
                    for i in range(chunks)
                )
            )
            admitted = [item for part in parts for item in part]

        results: list[spb.BatchResult | None] = [None] * len(txs)
        queued: list[Queued] = []
        where: list[int] = []
        for i, (msg, item) in enumerate(zip(txs, admitted, strict=True)):
            if isinstance(item, XrollupError):
                code, message = compute_status_value(item)
                results[i] = spb.BatchResult(id=b"", code=code, message=message)
                refused.append(code)
            else:
                entry_id, expiry, rollup, canonical = item
                # Re-encoded only when it carries more than its fields (padding).
                entry = pb.Entry(tx=msg) if canonical else codec.encode_canonical_tx(msg)
                queued.append(Queued(Sealable(entry, (rollup,)), entry_id, expiry))
                where.append(i)
        acks = await self._order_many(queued)
        for i, q, ack in zip(where, queued, acks, strict=True):
            if isinstance(ack, Ack):
                results[i] = spb.BatchResult(
                    id=ack.id, code=_OK, height=ack.height, index=ack.index, duplicate=ack.duplicate
                )
            else:
                code, message = compute_status_value(ack)
                results[i] = spb.BatchResult(id=q.id, code=code, message=message)
                refused.append(code)
        return spb.SubmitBatchResponse(results=cast(list[spb.BatchResult], results))

    @grpc_method
    async def GetBlock(self, request: spb.GetBlockRequest, context: Context) -> pb.Block:
        return self.seq.get_block(request.height)

    @grpc_method
    async def StreamBlocks(
        self, request: spb.StreamBlocksRequest, context: Context
    ) -> AsyncIterator[pb.Block]:
        limit = self.genesis.limits.max_subscribers
        if self.seq.subscribers >= limit:
            raise LimitExceeded(f"{limit} block subscribers already; retry later")
        rollup = request.rollup
        if rollup and rollup not in self.genesis.rollup_names:
            raise InvalidInput(
                f"rollup {rollup[:64]!r} is not a rollup of genesis"
                f" ({', '.join(self.genesis.rollup_names)}); empty for every entry"
            )
        self.seq.subscribers += 1
        try:
            height = max(1, request.from_height)
            while True:
                if height > self.seq.head_height and not await self.seq.wait_for_height(height):
                    return  # shutting down: the stream ends, the client resumes elsewhere
                try:
                    block = (
                        self.seq.get_filtered_block(height, rollup)
                        if rollup
                        else self.seq.get_block(height)
                    )
                except Pruned as e:
                    raise Refused(
                        f"{e}: a follower that needs it cannot catch up from this sequencer"
                        " and must start from a snapshot (python -m rollup_node"
                        " --from-snapshot, devnet snapshot load)"
                    ) from None
                size, budget = block.header.byte_count, self.genesis.limits.max_block_bytes
                if size > budget:
                    # Sealing keeps blocks within the budget (which genesis keeps 64 KiB
                    # under the message limit), so this is a log from an older or faulty
                    # sequencer: an alarm, never a silent retry loop. The header's count
                    # is read, not the message re-measured for every subscriber.
                    log.error("block %d has %d bytes of entries: over the budget", height, size)
                    raise LimitExceeded(
                        f"block {height} has {size} bytes of entries, over the block budget"
                        f" {budget}: too large to stream"
                    )
                yield block
                height += 1
        finally:
            self.seq.subscribers -= 1

    @grpc_method
    async def GetSubmission(
        self, request: spb.GetSubmissionRequest, context: Context
    ) -> spb.GetSubmissionResponse:
        if len(request.id) != 32:
            raise InvalidInput(f"id is {len(request.id)} bytes, want 32")
        found = self.seq.lookup(request.id)
        if found is None:
            first = self.seq.store.first_height()
            raise NotFound(
                f"no submission with id {request.id.hex()}"
                + (f" (ids of blocks before {first} are pruned)" if first > 1 else "")
            )
        if isinstance(found, Ack):
            return spb.GetSubmissionResponse(
                id=request.id,
                state=spb.GetSubmissionResponse.STATE_ORDERED,
                height=found.height,
                index=found.index,
                admitted_unix_ms=self.seq.admitted_ms(request.id),
            )
        return spb.GetSubmissionResponse(
            id=request.id,
            state=spb.GetSubmissionResponse.STATE_PENDING,
            admitted_unix_ms=self.seq.admitted_ms(request.id),
        )

    @grpc_method
    async def GetStatus(
        self, request: spb.GetStatusRequest, context: Context
    ) -> spb.GetStatusResponse:
        return spb.GetStatusResponse(
            chain_id=self.genesis.chain_id,
            height=self.seq.head_height,
            head_hash=self.seq.head_hash,
            pending=len(self.seq.pool),
            block_interval_ms=self.genesis.block_interval_ms,
            rollups=list(self.genesis.rollup_names),
            first_height=self.seq.first_height,
            prune_floor=self.seq.prune_floor,
            retain_blocks=self.seq.retain_blocks,
            **self._ha_status(),
        )

    def _ha_status(self) -> dict[str, Any]:
        replica = self.replica
        if replica is None:
            return {"role": "single"}
        leader = replica.leader
        return {
            "replica": replica.name,
            "role": replica.role,
            "term": self.seq.term,
            "leader": leader.name if leader else "",
            "leader_endpoint": leader.endpoint if leader else "",
            "fenced_appends": self.seq.fenced_appends,
        }

    @grpc_method
    async def Forward(self, request: spb.ForwardRequest, context: Context) -> spb.ForwardResponse:
        """The leader's side of a standby's Forwarder: order what it admitted."""
        from sequencer.ha import check_forward  # only an HA sequencer gets here

        if self.replica is None:
            raise Refused("Forward is for an HA sequencer's replicas; this sequencer runs alone")
        batch = check_forward(self.seq, request)
        items = []
        for fe in batch.entries:
            namespaces = tuple(fe.namespaces)
            sealable = Sealable(fe.entry, namespaces)
            kind = fe.entry.WhichOneof("kind")
            if kind == "vote":
                vote = codec.decode_vote(fe.entry.vote)
                meta = VoteMeta(vote.body.rollup, vote.body.votes)
                items.append(Queued(sealable, bytes(fe.id), 0, protocol=True, meta=meta))
            elif kind == "bundle":
                items.append(
                    Queued(sealable, bytes(fe.id), fe.expiry_height, meta=BundleMeta(namespaces))
                )
            elif kind == "tx":
                items.append(Queued(sealable, bytes(fe.id), fe.expiry_height))
            else:
                raise InvalidInput(f"a forwarded entry of kind {kind!r}")
        acks = await self.seq.enqueue_many(items)
        results = []
        for q, ack in zip(items, acks, strict=True):
            if isinstance(ack, Ack):
                results.append(
                    spb.BatchResult(
                        id=ack.id,
                        code=_OK,
                        height=ack.height,
                        index=ack.index,
                        duplicate=ack.duplicate,
                    )
                )
            else:
                code, message = compute_status_value(ack)
                results.append(spb.BatchResult(id=q.id, code=code, message=message))
        return spb.ForwardResponse(results=results)

    @grpc_method
    async def SetPruneFloor(
        self, request: spb.SetPruneFloorRequest, context: Context
    ) -> spb.SetPruneFloorResponse:
        if request.height > self.seq.head_height + 1:
            raise InvalidInput(
                f"prune floor {request.height} is past the head {self.seq.head_height} + 1"
            )
        if self.seq.stopping:
            raise Unavailable("sequencer is shutting down")
        await self.seq.set_prune_floor(request.height)
        return spb.SetPruneFloorResponse(
            prune_floor=self.seq.prune_floor,
            first_height=self.seq.first_height,
            head=self.seq.head_height,
        )
