"""A real node process fed by a test stream server (not the sequencer) that serves
a log the test writes block by block: honest blocks, then one that must never be
applied. Each is refused, the node's state root and height stay where they were,
GetNodeStatus (and the node's log) say why and at which height, and once the
server serves the honest block the node resumes by itself (I7)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from devnet.checker import NodeRef, check_equivocation, is_evidence
from devnet.launcher import node_argv, start_process, stop_pid
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT, RefusalCode, compute_id
from xrollup.client import NodeClient, build_bundle, build_transfer, build_vote
from xrollup.genesis import compute_genesis_hash, dev_genesis, encode_genesis
from xrollup.keys import (
    derive_dev_account,
    derive_keypair,
    derive_rollup_vote_key,
    derive_sequencer_key,
)
from xrollup.model import BundleVote, Leg, ReasonCode, Transfer
from xrollup.numeric import Amount, Height
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import sequencer_pb2_grpc as spb_grpc
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import compute_entry_spaces, filter_block, seal_block

GENESIS = dataclasses.replace(
    dev_genesis(), limits=dataclasses.replace(dev_genesis().limits, max_block_bytes=16 * 1024)
)
GENESIS_HASH = compute_genesis_hash(GENESIS)
ALICE, BOB, CAROL = (derive_dev_account(i) for i in range(3))
EXPIRY = 10_000


def write_genesis(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(encode_genesis(GENESIS))
    return path


async def serve_log() -> tuple[LogServer, aio.Server, int]:
    """A LogServer on a free port of 127.0.0.1 (the test stops it)."""
    log = LogServer()
    server = aio.server()
    spb_grpc.add_SequencerServiceServicer_to_server(log, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return log, server, port


class LogServer(spb_grpc.SequencerServiceServicer):
    """Serves `blocks` (height h at index h-1) to any follower; the test may
    replace a block, and open streams pick the change up on reconnect."""

    def __init__(self) -> None:
        self.blocks: list[pb.Block] = []
        self.votes: list[pb.SignedVote] = []
        self.changed = asyncio.Condition()
        self.fail_at: int | None = None  # a height whose block the stream cannot deliver

    async def put(self, height: int, block: pb.Block) -> None:
        async with self.changed:
            if height <= len(self.blocks):
                self.blocks[height - 1] = block
            else:
                assert height == len(self.blocks) + 1
                self.blocks.append(block)
            self.changed.notify_all()

    async def StreamBlocks(
        self, request: spb.StreamBlocksRequest, context: Any
    ) -> AsyncIterator[pb.Block]:
        height = max(1, request.from_height)
        while True:
            async with self.changed:
                await self.changed.wait_for(lambda h=height: len(self.blocks) >= h)
                block = self.blocks[height - 1]
            if height == self.fail_at:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, f"block {height} is too large to stream"
                )
            if request.rollup:  # as the sequencer streams to a rollup's nodes
                spaces = compute_entry_spaces(block.entries, GENESIS.rollup_names)
                block = filter_block(block, spaces, request.rollup)
            yield block
            height += 1

    async def GetBlock(self, request: spb.GetBlockRequest, context: Any) -> pb.Block:
        return self.blocks[request.height - 1]

    async def GetStatus(self, request: Any, context: Any) -> spb.GetStatusResponse:
        return spb.GetStatusResponse(chain_id=GENESIS.chain_id, height=len(self.blocks))

    async def SubmitVote(self, request: spb.SubmitVoteRequest, context: Any) -> spb.SubmitResponse:
        self.votes.append(request.vote)
        return spb.SubmitResponse(id=compute_id(request.vote.body), height=len(self.blocks))


def seal(
    entries: list[pb.Entry], height: int, parent: bytes, key: Any = None, term: int = 0
) -> pb.Block:
    return seal_block(
        entries, height, parent, height, GENESIS, GENESIS_HASH, key or derive_sequencer_key(), term
    )


def transfer(nonce: int) -> pb.Entry:
    tx = build_transfer(ALICE, "alpha", CAROL.address, "USDC", 1, EXPIRY, nonce=nonce)
    return pb.Entry(tx=tx)


def bundle() -> pb.SignedBundle:
    legs = [
        Leg("alpha", ALICE.address, Transfer(CAROL.address, "USDC", Amount(5))),
        Leg("beta", BOB.address, Transfer(CAROL.address, "USDC", Amount(7))),
    ]
    return build_bundle(legs, [ALICE, BOB], EXPIRY, nonce=1)


def vote(rollup: str, bundle_id: bytes, yes: bool) -> pb.Entry:
    code = ReasonCode.NONE if yes else ReasonCode.INSUFFICIENT_FUNDS
    v = BundleVote(bundle_id, yes, code, Height(1))
    signed = build_vote(derive_rollup_vote_key(rollup), rollup, 1, [v], GENESIS)
    return pb.Entry(vote=signed)


def commit(bundle_id: bytes) -> pb.Entry:
    return codec.encode_decision(bundle_id, True, ReasonCode.ALL_YES)


B = bundle()
B_ID = compute_id(B.body)


def honest_decision() -> list[pb.Entry]:
    return [vote("alpha", B_ID, True), vote("beta", B_ID, True), commit(B_ID)]


def altered_signature(parent: bytes) -> pb.Block:
    block = seal([transfer(2)], 2, parent)
    sig = bytearray(block.entries[0].tx.signatures[0].signature)
    sig[0] ^= 0x01  # the id (blake3 of the body) is unchanged
    block.entries[0].tx.signatures[0].signature = bytes(sig)
    return block


BadBlock = Callable[[bytes], pb.Block]
CASES: dict[str, tuple[BadBlock, list[pb.Entry], RefusalCode]] = {
    "commit-contradicting-a-no-vote": (
        lambda p: seal([vote("alpha", B_ID, True), vote("beta", B_ID, False), commit(B_ID)], 2, p),
        honest_decision(),
        RefusalCode.BAD_DECISION,
    ),
    "commit-with-a-vote-missing": (
        lambda p: seal([vote("alpha", B_ID, True), commit(B_ID)], 2, p),
        honest_decision(),
        RefusalCode.BAD_DECISION,
    ),
    # (A decision on an id never ordered is not refused: a node judges the decisions
    # of the bundles it tracks, those with a leg on its rollup; `devnet check` does.)
    "decision-before-its-votes": (
        lambda p: seal([commit(B_ID), vote("alpha", B_ID, True), vote("beta", B_ID, True)], 2, p),
        honest_decision(),
        RefusalCode.BAD_DECISION,
    ),
    "header-with-a-bad-signature": (
        lambda p: seal([transfer(2)], 2, p, key=derive_keypair("forger")),
        [transfer(2)],
        RefusalCode.BAD_SIGNATURE,
    ),
    "entry-signature-altered-under-unchanged-ids": (
        altered_signature,
        [transfer(2)],
        RefusalCode.BAD_COMMITMENT,
    ),
    "oversized-block": (
        lambda p: seal([transfer(100 + i) for i in range(120)], 2, p),
        [transfer(2)],
        RefusalCode.TOO_LARGE,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_node_refuses_a_block_it_must_not_apply_and_resumes(case: str, tmp_path: Path) -> None:
    bad, honest_entries, code = CASES[case]
    genesis_path = write_genesis(tmp_path)

    async def run() -> None:
        log, server, port = await serve_log()
        block1 = seal([pb.Entry(bundle=B), transfer(1)], 1, GENESIS_PARENT)
        await log.put(1, block1)
        node = await _start_node(tmp_path, port, genesis_path)
        try:
            async with NodeClient(node.endpoint) as n:
                await n.wait_for_height(1, timeout=20)
                root1 = await n.state_root(1)
                assert (await n.bundle(B_ID)).vote, "alpha prepares B and votes yes"

                await log.put(2, bad(block1.hash))
                status = await _wait(n, lambda s: s.HasField("refusal"))
                assert status.refusal.code == code, status.refusal
                assert status.refusal.height == 2
                assert status.applied_height == 1 and status.state_root == root1
                assert status.refused_blocks >= 1
                await asyncio.sleep(0.3)  # it keeps refusing, and applies nothing
                status = await n.status()
                assert status.applied_height == 1 and await n.state_root(1) == root1
                assert "refusing block 2" in (tmp_path / "alpha.log").read_text()

                await log.put(2, seal(honest_entries, 2, block1.hash))
                status = await _wait(n, lambda s: s.applied_height >= 2)
                assert not status.HasField("refusal"), "resumed once the honest block came"
                if code == RefusalCode.BAD_DECISION:
                    record = await n.bundle(B_ID)
                    assert record.status == record.STATUS_COMMITTED
        finally:
            await asyncio.to_thread(stop_pid, node.pid, 5.0, node.popen)
            await server.stop(None)

    asyncio.run(run())


async def _wait(n: NodeClient, pred: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await n.status()
        if pred(status):
            return status
        assert loop.time() < deadline, f"timed out; last status {status}"
        await asyncio.sleep(0.05)


def test_a_stream_that_cannot_deliver_a_block_is_an_alarm(tmp_path: Path) -> None:
    """Not a silent retry loop: the node logs the failing height and the error,
    and GetNodeStatus carries it until the stream delivers again."""
    genesis_path = write_genesis(tmp_path)

    async def run() -> None:
        log, server, port = await serve_log()
        block1 = seal([transfer(1)], 1, GENESIS_PARENT)
        await log.put(1, block1)
        log.fail_at = 2
        await log.put(2, seal([transfer(2)], 2, block1.hash))
        node = await _start_node(tmp_path, port, genesis_path)
        try:
            async with NodeClient(node.endpoint) as n:
                status = await _wait(n, lambda s: bool(s.stream_error))
                assert "RESOURCE_EXHAUSTED" in status.stream_error
                assert "too large to stream" in status.stream_error
                assert status.applied_height == 1
                text = (tmp_path / "alpha.log").read_text()
                assert "block stream from height 2 failed: RESOURCE_EXHAUSTED" in text
                log.fail_at = None
                status = await _wait(n, lambda s: s.applied_height >= 2)
                assert not status.stream_error
        finally:
            await asyncio.to_thread(stop_pid, node.pid, 5.0, node.popen)
            await server.stop(None)

    asyncio.run(run())


async def _start_node(tmp_path: Path, port: int, genesis_path: Path) -> Any:
    argv = node_argv(
        "alpha",
        f"127.0.0.1:{port}",
        "127.0.0.1:0",
        tmp_path / "alpha",
        tmp_path / "alpha.ready",
        genesis_path,
    )
    return await asyncio.to_thread(
        start_process,
        "alpha",
        "node",
        "alpha",
        argv,
        tmp_path / "alpha",
        tmp_path / "alpha.log",
        tmp_path / "alpha.ready",
        20.0,
        False,
    )


def test_a_node_served_a_fork_finds_the_equivocation_when_the_other_chain_reaches_it(
    tmp_path: Path,
) -> None:
    """The sequencer signs two blocks for height 2 and serves this node one of
    them: the node applies it (it is validly signed). When the other chain's
    block 3 arrives, signed and naming the other block 2 as its parent, the two
    signed headers are evidence: the node keeps them, says so and stops."""
    genesis_path = write_genesis(tmp_path)

    async def run() -> None:
        log, server, port = await serve_log()
        block1 = seal([transfer(1)], 1, GENESIS_PARENT)
        fork2 = seal([transfer(2)], 2, block1.hash)
        await log.put(1, block1)
        await log.put(2, fork2)
        node = await _start_node(tmp_path, port, genesis_path)
        try:
            async with NodeClient(node.endpoint) as n:
                await n.wait_for_height(2, timeout=20)
                root2 = await n.state_root(2)
                honest2 = seal([transfer(3)], 2, block1.hash)
                await log.put(2, honest2)
                # Before the node sees the other chain, devnet check compares its applied
                # header with the log and reports the two signed headers for height 2.
                ref = NodeRef("alpha", "alpha", node.endpoint)
                found = await check_equivocation([ref], GENESIS, f"127.0.0.1:{port}")
                assert found.figures["halted"] == ["alpha"] and len(found.violations) == 1
                assert honest2.hash.hex() in found.violations[0]
                assert fork2.hash.hex() in found.violations[0]
                await log.put(3, seal([transfer(4)], 3, honest2.hash))
                # The evidence is saved on the apply thread before the refusal is
                # recorded on the loop: a status between the two shows only the first.
                status = await _wait(
                    n, lambda s: s.HasField("equivocation") and s.HasField("refusal")
                )
                ev = status.equivocation
                assert ev.height == 2 and ev.first.hash == fork2.hash
                assert ev.second.header.height == 3 and ev.second.header.parent_hash == honest2.hash
                assert is_evidence(ev, GENESIS, GENESIS_HASH)
                assert status.refusal.code == RefusalCode.EQUIVOCATION
                assert status.applied_height == 2 and await n.state_root(2) == root2
                await asyncio.sleep(0.3)
                assert (await n.status()).applied_height == 2, "it stopped following"
                assert "evidence kept" in (tmp_path / "alpha.log").read_text()
        finally:
            await asyncio.to_thread(stop_pid, node.pid, 5.0, node.popen)
            await server.stop(None)

    asyncio.run(run())


def test_a_superseded_leaders_block_is_refused_stale_and_the_node_follows_the_new_leader(
    tmp_path: Path,
) -> None:
    """An HA sequencer failed over between blocks 1 (term 5) and 2 (term 6); the
    old leader's block 3 (term 5, on its own block 2) reaches the node: refused
    STALE_TERM, not applied, no evidence, and GetNodeStatus says term 6. The new
    leader's block 3 then applies."""
    genesis_path = write_genesis(tmp_path)

    async def run() -> None:
        log, server, port = await serve_log()
        block1 = seal([transfer(1)], 1, GENESIS_PARENT, term=5)
        block2 = seal([transfer(2)], 2, block1.hash, term=6)
        await log.put(1, block1)
        await log.put(2, block2)
        node = await _start_node(tmp_path, port, genesis_path)
        try:
            async with NodeClient(node.endpoint) as n:
                await n.wait_for_height(2, timeout=20)
                assert (await n.status()).term == 6
                root2 = await n.state_root(2)
                old2 = seal([transfer(3)], 2, block1.hash, term=5)
                await log.put(3, seal([transfer(4)], 3, old2.hash, term=5))
                status = await _wait(n, lambda s: s.HasField("refusal"))
                assert status.refusal.code == RefusalCode.STALE_TERM, status.refusal
                assert status.refusal.height == 3
                assert "term 5 is below term 6" in status.refusal.message
                assert status.applied_height == 2 and status.term == 6
                assert not status.HasField("equivocation") and status.state_root == root2
                await log.put(3, seal([transfer(3)], 3, block2.hash, term=6))
                status = await _wait(n, lambda s: s.applied_height >= 3)
                assert not status.HasField("refusal") and status.term == 6
        finally:
            await asyncio.to_thread(stop_pid, node.pid, 5.0, node.popen)
            await server.stop(None)

    asyncio.run(run())
