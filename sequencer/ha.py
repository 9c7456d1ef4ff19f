"""A sequencer replica of an HA sequencer (devnet up --ha; DESIGN, Scaling out).

Three replicas share one etcd cluster (sequencer/etcdlog.py) and the one sequencer
key genesis names. At any time at most one leads; the others are standbys.

- Election: each replica holds an etcd lease (TTL LEASE_TTL_S, renewed every
  RENEW_S). A standby whose lease is fresh and that finds no leader key brings its
  copy up to the committed head and campaigns; the winner's term is the leader
  key's create revision. It then reads the log once more (nobody else can append
  now), rebuilds the undecided bundles from its copy and starts sealing.
- Appending: the leader commits each block to etcd in one transaction fenced by
  its term (etcdlog.EtcdLog.append) before its own copy, and only then
  acknowledges the submissions in it. A leader whose lease may have expired (its
  last renewal sent more than LEASE_TTL_S - LEASE_MARGIN_S ago) does not try; one
  that etcd refuses steps down. Either way what it held is answered UNAVAILABLE
  (resubmit) and nothing of it was acknowledged.
- Standbys follow the log into their own LevelDB copy (the same BlockStore a
  single sequencer uses): through the leader's StreamBlocks (its copy holds only
  blocks etcd committed, and a gRPC stream costs far less than reading etcd per
  block), from etcd when that stream fails, and always from etcd before taking
  over. They serve StreamBlocks, GetBlock, GetStatus and snapshots from the copy,
  and admit submissions (decode, signatures, limits) and forward them to the
  leader in batches (Forwarder), so admission spreads over the replicas.
- Every replica reports the height its copy holds; the leader deletes from etcd
  the blocks every replica holds (keeping the last ETCD_KEEP_BLOCKS) and compacts
  etcd's history, and defragments when the database grows, so etcd stays bounded.

Not Byzantine-tolerant: a replica is trusted with the sequencer key (I7 covers a
faulty sequencer on the node side).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import blake3
from grpc import aio

from sequencer.etcdlog import READ_LIMIT, EtcdLog, EtcdUnavailable, Leader
from sequencer.runtime import Ack, NotLeading, Queued, Sequencer
from xrollup.client import open_channel
from xrollup.errors import NotAuthorized, Refused, XrollupError
from xrollup.grpc_status import compute_error
from xrollup.keys import Keypair, is_valid_signature
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

# A leader that dies is replaced about LEASE_TTL_S later. 1 s (op-conductor's order)
# is etcd's least with the devnet's 500 ms election timeout, but on a loaded 2-core
# machine renewals stall for that long and the lead would change for nothing.
LEASE_TTL_S = 2
RENEW_S = 0.25
LEASE_MARGIN_S = 0.5  # stop appending this long before the lease could expire
ETCD_TIMEOUT_S = 1.0  # per request and member
WATCH_FALLBACK_S = 0.25  # a standby not streaming reads etcd at least this often
STREAM_RETRY_S = 0.05  # a leader whose stream gave nothing is asked again after this
REPORT_S = 0.25  # how often a replica says what its copy holds
TRIM_S = 1.0  # how often the leader deletes what every replica holds
ETCD_KEEP_BLOCKS = 256  # the last blocks stay in etcd whatever the replicas hold
DEFRAG_BYTES = 64 * 1024 * 1024  # defragment when a member's database passes this
FORWARD_MAX_ENTRIES = 4096  # per Forward call
FORWARD_MAX_BYTES = 2 * 1024 * 1024
# Forward calls in flight at once: each waits for its block, so with few of them an
# entry admitted while they are all out waits a block or two for a slot.
FORWARD_IN_FLIGHT = 32
FORWARD_TIMEOUT_S = 5.0
_FORWARD_TAG = b"xrollup/forward/v1"

LEADER, STANDBY, SINGLE = "leader", "standby", "single"


def _forward_message(genesis_hash: bytes, batch: bytes) -> bytes:
    return _FORWARD_TAG + genesis_hash + blake3.blake3(batch).digest()


def sign_forward(key: Keypair, genesis_hash: bytes, batch: bytes) -> bytes:
    return key.sign(_forward_message(genesis_hash, batch))


def is_valid_forward(public_key: bytes, genesis_hash: bytes, batch: bytes, sig: bytes) -> bool:
    return is_valid_signature(public_key, sig, _forward_message(genesis_hash, batch))


class Replica:
    """The HA side of one sequencer replica: lease, election, following the log,
    forwarding, trimming etcd. `run` until cancelled; `stop` hands leadership over."""

    def __init__(
        self,
        seq: Sequencer,
        etcd: Sequence[tuple[str, int]],
        name: str,
        lease_check: bool = True,
    ) -> None:
        self.seq = seq
        self.name = name
        self.endpoint = ""  # set once the server is bound (run)
        self._etcd_endpoints = list(etcd)
        self._local = threading.local()
        self._lease_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etcd-lease")
        self._log_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etcd-log")
        self.lease = 0
        self._lead_lease = 0  # the lease the leader key was put with, while leading
        self._valid_until = 0.0  # monotonic: the lease surely lives until then
        self.leader: Leader | None = None
        self.forwarder = Forwarder(seq, name)
        self.failovers = 0  # times this replica took over
        self._lost = asyncio.Event()
        self._bell = asyncio.Event()  # rung by the watch thread: the leader key changed
        self._last_report = 0.0
        seq.follow()
        seq.log = self._log_for_thread()  # bound per thread: see _log_for_thread
        seq.lease_ok = self.lease_ok if lease_check else None
        seq.on_lost_lead = self._on_lost_lead

    # ------------------------------------------------------------ plumbing

    def _log_for_thread(self) -> _ThreadLocalLog:
        return _ThreadLocalLog(self._etcd)

    def _etcd(self) -> EtcdLog:
        """This thread's connection to etcd (requests sessions are per thread)."""
        found: EtcdLog | None = getattr(self._local, "log", None)
        if found is None:
            found = EtcdLog(self._etcd_endpoints, self.seq.genesis.chain_id, ETCD_TIMEOUT_S)
            self._local.log = found
        return found

    async def _call(self, pool: ThreadPoolExecutor, method: Callable[..., T], *args: object) -> T:
        """`method` of EtcdLog with `args`, on `pool`'s thread and its connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, lambda: method(self._etcd(), *args))

    @property
    def role(self) -> str:
        return LEADER if self.seq.leading else STANDBY

    def lease_ok(self) -> bool:
        """The lease is surely alive for a while yet (its last renewal is recent); a
        leader's, only while it is the lease its leader key was put with (one that
        expired and was granted anew carries no key)."""
        if self.seq.leading and self.lease != self._lead_lease:
            return False
        return time.monotonic() < self._valid_until - LEASE_MARGIN_S

    def _on_lost_lead(self, err: BaseException) -> None:
        self.leader = None
        self._lost.set()

    # ------------------------------------------------------------ running

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watch thread: ring the bell whenever the leader key changes, so a
        standby stops following a leader that is gone and campaigns at once; start
        the watch again when its stream breaks (a member went down)."""

        def ring() -> None:
            loop.call_soon_threadsafe(self._bell.set)

        while not loop.is_closed():
            try:
                self._etcd().watch_leader(ring)
            except EtcdUnavailable:
                time.sleep(0.2)
            except RuntimeError:  # the loop closed under us: the process is stopping
                return
            ring()  # what changed while there was no watch

    async def run(self, endpoint: str) -> None:
        self.endpoint = endpoint
        threading.Thread(
            target=self._watch, args=(asyncio.get_running_loop(),), name="etcd-watch", daemon=True
        ).start()
        await self._check_copy()
        tasks = [
            asyncio.create_task(self._keep_lease(), name="lease"),
            asyncio.create_task(self._follow_and_campaign(), name="role"),
            asyncio.create_task(self.forwarder.run(), name="forwarder"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a task that failed fails the replica
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def stop(self) -> None:
        """Seal what is pending if leading, then give the lead up at once (delete the
        leader key, revoke the lease) so a standby need not wait for the lease."""
        term = self.seq.term if self.seq.leading else 0
        await self.seq.stop()
        with contextlib.suppress(EtcdUnavailable):
            if term:
                await self._call(self._log_io, EtcdLog.resign, term)
            if self.lease:
                await self._call(self._lease_io, EtcdLog.revoke, self.lease)
        await self.forwarder.close()
        self._lease_io.shutdown(wait=False, cancel_futures=True)
        self._log_io.shutdown(wait=False, cancel_futures=True)

    async def _check_copy(self) -> None:
        """A copy ahead of etcd's log is from another log (etcd was wiped): refuse to
        start rather than fork; one behind whose blocks etcd no longer has needs a
        snapshot."""
        while True:
            try:
                head, _hash = await self._call(self._log_io, EtcdLog.head)
                first = await self._call(self._log_io, EtcdLog.first_height)
                break
            except EtcdUnavailable as e:
                log.warning("waiting for etcd: %s", e)
                await asyncio.sleep(0.5)
        mine = self.seq.head_height
        if mine > head:
            raise Refused(
                f"this replica's copy reaches block {mine} but etcd's log only {head}:"
                " it belongs to another log (was etcd wiped?); start from an empty --data-dir"
            )
        if head > mine and first > mine + 1:
            raise Refused(
                f"etcd keeps blocks from {first} on and this replica's copy ends at {mine}:"
                " start it from a snapshot of another replica (devnet snapshot)"
            )

    async def _keep_lease(self) -> None:
        while True:
            sent = time.monotonic()
            try:
                if not self.lease:
                    self.lease = await self._call(self._lease_io, EtcdLog.grant_lease, LEASE_TTL_S)
                    ttl = LEASE_TTL_S
                else:
                    lease = self.lease
                    ttl = await self._call(self._lease_io, EtcdLog.keep_alive, lease)
            except EtcdUnavailable as e:
                log.warning("lease not renewed: %s", e)
                ttl = -1
            if ttl > 0:
                self._valid_until = sent + ttl
            elif ttl == 0:
                log.warning("lease %x expired", self.lease)
                self.lease, self._valid_until = 0, 0.0
                continue
            await asyncio.sleep(RENEW_S)

    async def _follow_and_campaign(self) -> None:
        while True:
            if self.seq.leading:
                await self._lead_duties()
                continue
            self._bell.clear()
            try:
                got = await self._catch_up(local=True)
                leader = await self._call(self._log_io, EtcdLog.leader, True)
                if leader is not None and leader.name == self.name:
                    # Ours, from before this replica stepped down (or restarted): give
                    # it up so that an election can happen now.
                    await self._call(self._log_io, EtcdLog.resign, leader.term)
                    leader = None
                self._set_leader(leader)
                if leader is None and self.lease and self.lease_ok():
                    await self._campaign()
                    continue
            except EtcdUnavailable as e:
                log.warning("etcd unreachable: %s", e)
                await asyncio.sleep(0.2)
                continue
            if leader is not None and not self._bell.is_set():
                # Follow the leader's own stream: its copy holds committed blocks only
                # (it appends to etcd first), and a gRPC stream costs far less than
                # reading etcd per block. Back to etcd when it ends, fails or the
                # leader key changes.
                if await self._stream_from(leader):
                    continue
                got = 0
            await self._report(force=got > 0)
            if not got:
                # Until the leader key changes (the watch rings) or WATCH_FALLBACK_S.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bell.wait(), WATCH_FALLBACK_S)

    async def _stream_from(self, leader: Leader) -> int:
        """Take blocks from `leader`'s StreamBlocks until it ends or fails or the
        bell rings (the leader key changed): how many were taken."""
        taken = 0

        async def follow() -> None:
            nonlocal taken
            request = spb.StreamBlocksRequest(from_height=self.seq.head_height + 1)
            async for block in stub.StreamBlocks(request):
                await self.seq.ingest(block)
                taken += 1
                await self._report()

        # Pings find a paused leader (xrollup.client.KEEPALIVE_OPTIONS).
        channel = open_channel(leader.endpoint, spread=True)
        stub: spb_grpc.SequencerServiceAsyncStub = spb_grpc.SequencerServiceStub(channel)
        stream = asyncio.create_task(follow())
        bell = asyncio.create_task(self._bell.wait())
        try:
            await asyncio.wait({stream, bell}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stream, bell):
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError, aio.AioRpcError, Refused):
                await stream
            with contextlib.suppress(asyncio.CancelledError):
                await bell
            await channel.close(grace=None)
        if not taken and not self._bell.is_set():
            await asyncio.sleep(STREAM_RETRY_S)  # the leader does not answer (yet)
        return taken

    async def _catch_up(self, local: bool = False) -> int:
        """Take every committed block past this replica's head (`local`: as far as
        the member asked has them; else all): how many."""
        n = 0
        while True:
            start = self.seq.head_height + 1
            blocks = await self._call(self._log_io, EtcdLog.read, start, READ_LIMIT, local)
            if not blocks:
                return n
            for height, raw in blocks:
                if height <= self.seq.head_height:
                    continue  # taken meanwhile: a stream's last block, shielded, landed
                if height != self.seq.head_height + 1:
                    raise Refused(
                        f"etcd's log jumps from {self.seq.head_height} to {height}: blocks"
                        " this replica lacks were trimmed; start it from a snapshot"
                    )
                await self.seq.ingest(raw)
                n += 1

    async def _campaign(self) -> None:
        await self._catch_up()
        lease = self.lease
        won = await self._call(self._log_io, EtcdLog.campaign, self.name, self.endpoint, lease)
        if won is None:
            return
        # Nobody else can append now: the log's head is final until we append.
        await self._catch_up()
        self._lead_lease = lease
        self.failovers += 1
        self._lost.clear()
        self._set_leader(won)
        log.info("leading: term %d from head %d (%s)", won.term, self.seq.head_height, self.name)
        self.seq.lead(won.term)

    def _set_leader(self, leader: Leader | None) -> None:
        if leader != self.leader:
            if leader is not None and leader.name != self.name:
                log.info("following %s (term %d)", leader.name, leader.term)
            self.leader = leader
        self.forwarder.set_leader(leader.endpoint if leader and leader.name != self.name else "")

    async def _lead_duties(self) -> None:
        """While leading: report this copy, trim etcd to what every replica holds.
        Returns once the lead is lost (or after TRIM_S)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lost.wait(), TRIM_S)
        if not self.seq.leading:
            return
        term = self.seq.term
        try:
            await self._report(force=True)
            held = await self._call(self._log_io, EtcdLog.replicas)
            below = min(held.values(), default=0) + 1 - ETCD_KEEP_BLOCKS
            if below > 1:
                first = await self._call(self._log_io, EtcdLog.first_height)
                if first and first < below:
                    await self._call(self._log_io, EtcdLog.trim, term, below)
                    sizes = await self._call(self._log_io, EtcdLog.db_sizes)
                    if max(sizes, default=0) > DEFRAG_BYTES:
                        await self._call(self._log_io, EtcdLog.defragment_all)
        except EtcdUnavailable as e:
            log.warning("etcd upkeep: %s", e)

    async def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_S:
            return
        if force and now - self._last_report < REPORT_S / 4:
            return
        self._last_report = now
        height = self.seq.head_height
        # Durable first: etcd may drop what every replica says it holds.
        await asyncio.get_running_loop().run_in_executor(self._log_io, self.seq.store.sync)
        with contextlib.suppress(EtcdUnavailable):
            await self._call(self._log_io, EtcdLog.report, self.name, height)


class _ThreadLocalLog:
    """The ReplicatedLog the sealer appends through: on whichever thread calls it,
    that thread's own etcd connection."""

    def __init__(self, connect: Callable[[], EtcdLog]) -> None:
        self._connect = connect

    def append(self, term: int, height: int, block: bytes, block_hash: bytes) -> bool:
        return self._connect().append(term, height, block, block_hash)


class Forwarder:
    """A standby's way to the leader: entries it admitted, queued and sent in
    batches (one Forward call carries what arrived while the previous calls were in
    flight), each answered when the leader has it on disk, or refused."""

    def __init__(self, seq: Sequencer, name: str) -> None:
        self.seq = seq
        self.name = name
        self._queue: list[tuple[spb.ForwardedEntry, asyncio.Future[Ack]]] = []
        self._more = asyncio.Event()
        self._in_flight = 0
        self._room = asyncio.Event()
        self._target = ""
        self._channel: aio.Channel | None = None
        self._stub: spb_grpc.SequencerServiceAsyncStub | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.forwarded = 0

    def set_leader(self, endpoint: str) -> None:
        if endpoint == self._target:
            return
        if self._channel is not None:
            # Calls still waiting on the old leader fail now (CANCELLED: resubmit).
            task = asyncio.get_running_loop().create_task(self._channel.close(grace=None))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._target = endpoint
        # Pings find a paused leader (xrollup.client.KEEPALIVE_OPTIONS).
        self._channel = open_channel(endpoint, spread=True) if endpoint else None
        self._stub = spb_grpc.SequencerServiceStub(self._channel) if self._channel else None

    async def submit(self, items: Sequence[Queued]) -> list[Ack | XrollupError]:
        loop = asyncio.get_running_loop()
        results: list[Ack | XrollupError | None] = [None] * len(items)
        waiting: list[tuple[int, asyncio.Future[Ack]]] = []
        for i, q in enumerate(items):
            found = self.seq.store.find(q.id)
            if found is not None:
                results[i] = Ack(q.id, found[0], found[1], duplicate=True)
                continue
            fut: asyncio.Future[Ack] = loop.create_future()
            entry = spb.ForwardedEntry(
                entry=q.entry.entry,
                id=q.id,
                expiry_height=q.expiry_height,
                namespaces=q.entry.namespaces,
            )
            self._queue.append((entry, fut))
            waiting.append((i, fut))
        if waiting:
            self._more.set()
            await asyncio.wait([f for _, f in waiting])
        for i, fut in waiting:
            err = fut.exception()
            results[i] = fut.result() if err is None else _as_error(err)
        return [r for r in results if r is not None]

    async def run(self) -> None:
        while True:
            await self._more.wait()
            self._more.clear()
            while self._queue:
                if self._in_flight >= FORWARD_IN_FLIGHT:
                    self._room.clear()
                    await self._room.wait()
                    continue
                batch = self._take()
                self._in_flight += 1
                task = asyncio.create_task(self._send(batch))
                task.add_done_callback(self._sent)

    def _sent(self, _task: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        self._room.set()

    def _take(self) -> list[tuple[spb.ForwardedEntry, asyncio.Future[Ack]]]:
        n, size = 0, 0
        for entry, _ in self._queue:
            size += entry.ByteSize() + 8
            if n and (n >= FORWARD_MAX_ENTRIES or size > FORWARD_MAX_BYTES):
                break
            n += 1
        batch, self._queue = self._queue[:n], self._queue[n:]
        return batch

    async def _send(self, batch: list[tuple[spb.ForwardedEntry, asyncio.Future[Ack]]]) -> None:
        stub = self._stub
        try:
            if stub is None:
                raise NotLeading("no leader is elected right now; resubmit")
            raw = spb.ForwardBatch(entries=[e for e, _ in batch], replica=self.name)
            payload = raw.SerializeToString()
            sig = sign_forward(self.seq.key, self.seq.genesis_hash, payload)
            try:
                response = await stub.Forward(
                    spb.ForwardRequest(batch=payload, signature=sig), timeout=FORWARD_TIMEOUT_S
                )
            except aio.AioRpcError as e:
                raise NotLeading(
                    f"forwarding to the leader failed ({e.code().name}: {e.details()}); resubmit"
                ) from None
            if len(response.results) != len(batch):
                raise NotLeading("the leader answered a forwarded batch out of shape")
        except XrollupError as e:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.forwarded += len(batch)
        for (_, fut), r in zip(batch, response.results, strict=True):
            if fut.done():
                continue
            if r.code == 0:
                fut.set_result(Ack(bytes(r.id), r.height, r.index, r.duplicate))
            else:
                fut.set_exception(compute_error(r.code, r.message))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
        self._channel = self._stub = None


def _as_error(err: BaseException) -> XrollupError:
    return err if isinstance(err, XrollupError) else NotLeading(str(err))


def check_forward(seq: Sequencer, request: spb.ForwardRequest) -> spb.ForwardBatch:
    """The leader's side: the batch, once its signature is the sequencer key's."""
    if not is_valid_forward(
        seq.genesis.sequencer_key, seq.genesis_hash, request.batch, request.signature
    ):
        raise NotAuthorized("Forward is for the sequencer's own replicas (bad signature)")
    if not seq.leading:
        raise NotLeading("this sequencer replica does not lead; forward to the leader")
    return spb.ForwardBatch.FromString(request.batch)
