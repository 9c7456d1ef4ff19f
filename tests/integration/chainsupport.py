"""Helpers the integration tests share: read the chain two ways, verify it as a
hash chain, index where every id was ordered, and build signed transfers from
the dev accounts. Imported by the test modules in this directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from devnet.checker import NodeRef, Report, run_checks
from devnet.manifest import Manifest
from xrollup.blocks import GENESIS_PARENT, compute_id
from xrollup.client import Client, build_transfer
from xrollup.genesis import (
    DEV_ACCOUNT_COUNT,
    Genesis,
    compute_genesis_hash,
    dev_genesis,
    load_genesis,
)
from xrollup.keys import Keypair, derive_dev_account
from xrollup.model import Block
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import verify_block

DEV_ACCOUNTS: tuple[Keypair, ...] = tuple(derive_dev_account(i) for i in range(DEV_ACCOUNT_COUNT))
ORDERED = spb.GetSubmissionResponse.STATE_ORDERED


@dataclass(frozen=True)
class Acked:
    """One acknowledgement a client received: `id` ordered at (height, index)."""

    id: bytes
    height: int
    index: int


def random_transfer(rng: random.Random, expiry_height: int) -> pb.SignedTx:
    """A signed transfer between two distinct dev accounts, nonce from `rng`."""
    sender, receiver = rng.sample(DEV_ACCOUNTS, 2)
    rollup = rng.choice(("alpha", "beta"))
    asset = rng.choice(("USDC", "ETH"))
    return build_transfer(
        sender,
        rollup,
        receiver.address,
        asset,
        rng.randint(1, 1_000),
        expiry_height,
        nonce=rng.getrandbits(63),
    )


async def read_blocks_by_get(client: Client, first: int, last: int) -> list[pb.Block]:
    """Blocks first..last through GetBlock, a few calls at a time."""
    out: list[pb.Block] = []
    step = 32
    for start in range(first, last + 1, step):
        heights = range(start, min(last, start + step - 1) + 1)
        out.extend(await asyncio.gather(*(client.get_block(h) for h in heights)))
    return out


async def read_blocks_by_stream(client: Client, first: int, last: int) -> list[pb.Block]:
    """Blocks first..last through one StreamBlocks call, cancelled after `last`."""
    out: list[pb.Block] = []
    if last < first:
        return out
    call = client.stub.StreamBlocks(spb.StreamBlocksRequest(from_height=first))
    try:
        async for block in call:
            out.append(block)
            if block.header.height >= last:
                break
    finally:
        call.cancel()
    return out


def verify_chain(
    blocks: Sequence[pb.Block],
    first_height: int = 1,
    parent: bytes = GENESIS_PARENT,
    genesis: Genesis | None = None,
) -> list[Block]:
    """Check that `blocks` are heights first_height, first_height+1, ... with no
    gap, each verifying as a node verifies it (xrollup/verify.py: parent link,
    header hash, the dev sequencer key's signature, every entry's full bytes
    against the namespace commitments). Returns the decoded blocks."""
    decoded: list[Block] = []
    expected_height = first_height
    genesis = genesis or dev_genesis()
    genesis_hash = compute_genesis_hash(genesis)
    for msg in blocks:
        block = verify_block(msg, genesis, genesis_hash, expected_height, parent)
        assert msg.header.entry_count == len(block.entries)
        if decoded:
            went_back = block.header.timestamp_ms < decoded[-1].header.timestamp_ms
            assert not went_back, f"block {block.height}: timestamp went back"
        decoded.append(block)
        parent = block.hash
        expected_height += 1
    return decoded


def index_entries(blocks: Iterable[Block]) -> dict[bytes, list[tuple[int, int]]]:
    """Every entry id -> each (height, index) it occupies."""
    where: dict[bytes, list[tuple[int, int]]] = {}
    for block in blocks:
        for index, entry in enumerate(block.entries):
            where.setdefault(entry.id, []).append((int(block.height), index))
    return where


async def read_verified_chain(client: Client, genesis: Genesis | None = None) -> list[Block]:
    """The whole chain 1..head (head read first) through one stream, verified."""
    head = (await client.status()).height
    return verify_chain(await read_blocks_by_stream(client, 1, head), genesis=genesis)


def assert_acked_in_chain(
    acked: Iterable[Acked], where: dict[bytes, list[tuple[int, int]]]
) -> None:
    """Each acknowledged id appears exactly once, at its acknowledged place."""
    for a in acked:
        places = where.get(a.id)
        assert places is not None, f"acknowledged id {a.id.hex()} is in no block"
        assert places == [(a.height, a.index)], (
            f"id {a.id.hex()} acknowledged at {(a.height, a.index)} but found at {places}"
        )


async def assert_acked_by_get_submission(client: Client, acked: Sequence[Acked]) -> None:
    """GetSubmission reports each acknowledged id ORDERED at its acknowledged place."""
    step = 64
    for start in range(0, len(acked), step):
        chunk = acked[start : start + step]
        replies = await asyncio.gather(*(client.get_submission(a.id) for a in chunk))
        for a, r in zip(chunk, replies, strict=True):
            assert r.state == ORDERED, f"{a.id.hex()}: state {r.state}, want ORDERED"
            assert (r.height, r.index) == (a.height, a.index), (
                f"{a.id.hex()}: GetSubmission says {(r.height, r.index)}, "
                f"ack said {(a.height, a.index)}"
            )


def id_of(tx: pb.SignedTx | pb.SignedBundle | pb.SignedVote) -> bytes:
    return compute_id(tx.body)


async def expect_rpc_error(awaitable: object) -> aio.AioRpcError:
    """Await `awaitable` and return the AioRpcError it raised; fail if it succeeded."""
    try:
        result = await awaitable  # type: ignore[misc]
    except aio.AioRpcError as e:
        return e
    raise AssertionError(f"expected an RPC error, got {result!r}")


NEVER = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


def assert_clean_log(log: Path) -> None:
    """The server logged no unexpected error (those are answered INTERNAL) and no traceback."""
    text = log.read_text(errors="replace")
    for marker in ("unexpected error", "Traceback", " ERROR ", " CRITICAL "):
        assert marker not in text, f"{log} contains {marker!r}:\n{text[-4000:]}"


# ---------------------------------------------------------------- a running devnet


@dataclass
class Net:
    manifest: Manifest
    genesis: Genesis

    @property
    def sequencer(self) -> str:
        rec = self.manifest.get("sequencer")
        assert rec is not None
        return rec.endpoint

    def endpoint(self, name: str) -> str:
        rec = self.manifest.get(name)
        assert rec is not None, name
        return rec.endpoint

    def pid(self, name: str) -> int:
        rec = self.manifest.get(name)
        assert rec is not None and rec.pid > 0, name
        return rec.pid

    def refs(self) -> list[NodeRef]:
        return [
            NodeRef(p.name, p.rollup or "", p.endpoint)
            for p in self.manifest.processes
            if p.role == "node"
        ]

    def assert_clean_logs(self) -> None:
        for p in self.manifest.processes:
            if p.role in ("sequencer", "node"):
                assert_clean_log(Path(p.log))


def net_of(manifest: Manifest) -> Net:
    return Net(manifest, load_genesis(Path(manifest.genesis)))


@contextlib.contextmanager
def paused(net: Net, *names: str) -> Iterator[None]:
    """SIGSTOP the named processes (ours: the devnet started them); SIGCONT them
    on the way out whatever happens."""
    stopped: list[int] = []
    try:
        for name in names:
            pid = net.pid(name)
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


async def assert_invariants(net: Net) -> Report:
    report = await run_checks(net.sequencer, net.refs(), net.genesis, settle_timeout=60)
    assert report.ok, json.dumps(report.to_json(), indent=1)[-6000:]
    return report
