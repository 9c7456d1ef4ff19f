"""Per-rollup block streams on a real 3-rollup devnet under a seeded load (transfers,
option opens and settles across rollups, prices, refusals):

- a client following the stream filtered to each rollup verifies every header
  and both commitments it carries (xrollup.verify.verify_block(..., rollup)),
  receives every entry of that rollup's namespace and of the protocol's and no
  other, each at its position in the whole block, and fewer bytes than the
  whole stream;
- a node on the filtered stream (the default) and a node of the same rollup on
  the whole stream (--full-stream) reach the same state root at every height,
  neither refusing a block;
- a stream asked for a rollup genesis does not name is INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc import aio

from devnet import launcher, network
from devnet.load import run_load
from xrollup import codec
from xrollup.blocks import PROTOCOL, compute_entry_namespaces
from xrollup.client import Client, NodeClient
from xrollup.genesis import Genesis, compute_genesis_hash, dev_genesis, encode_genesis
from xrollup.verify import verify_block

ROLLUPS = ("alpha", "beta", "gamma")


@pytest.mark.timeout(240)
def test_filtered_streams_verify_and_reach_the_full_streams_state(
    tmp_path: Path, seed: int
) -> None:
    d = tmp_path / "dn"
    d.mkdir()
    genesis = dev_genesis(rollups=ROLLUPS)
    (d / "genesis.json").write_text(encode_genesis(genesis))
    manifest = network.start_devnet(d, explorer=False)
    full = None
    try:
        seq = manifest.get("sequencer")
        assert seq is not None
        # A second alpha node on the whole stream, straight to the sequencer.
        full_dir = tmp_path / "alpha-full"
        argv = launcher.node_argv(
            "alpha", seq.endpoint, "127.0.0.1:0", full_dir, full_dir / "ready", d / "genesis.json"
        )
        full = launcher.start_process(
            "alpha-full",
            "node",
            "alpha",
            [*argv, "--full-stream"],
            full_dir,
            full_dir / "node.log",
            full_dir / "ready",
        )
        summary = asyncio.run(run_load(seq.endpoint, genesis, seed, count=600, window=32))
        assert summary.acknowledged > 0 and not summary.gave_up, summary
        alpha = manifest.get("alpha")
        assert alpha is not None
        asyncio.run(_check(seq.endpoint, alpha.endpoint, full.endpoint, genesis))
    finally:
        if full is not None:
            launcher.stop_pid(full.pid, grace=5.0, popen=full.popen)
        network.stop_devnet(d, grace=5.0)


async def _check(sequencer: str, filtered_node: str, full_node: str, genesis: Genesis) -> None:
    gh = compute_genesis_hash(genesis)
    async with Client(sequencer) as seq:
        head = (await seq.status()).height
        whole = [await seq.get_block(h) for h in range(1, head + 1)]
        whole_bytes = sum(b.ByteSize() for b in whole)
        kinds: dict[str, set[str]] = {}
        for rollup in ROLLUPS:
            parent = whole[0].header.parent_hash
            got = 0
            async for msg in seq.stream_blocks(1, rollup):
                h = msg.header.height
                verify_block(msg, genesis, gh, h, bytes(parent), rollup)
                full_msg = whole[h - 1]
                assert (msg.hash, msg.signature) == (full_msg.hash, full_msg.signature)
                want = [
                    i
                    for i, e in enumerate(full_msg.entries)
                    if {rollup, PROTOCOL}
                    & set(compute_entry_namespaces(codec.decode_entry_tolerant(e), ROLLUPS))
                ]
                assert list(msg.indices) == want
                assert list(msg.entries) == [full_msg.entries[i] for i in want]
                kinds.setdefault(rollup, set()).update(e.WhichOneof("kind") for e in msg.entries)
                got += msg.ByteSize()
                parent = msg.hash
                if h == head:
                    break
            assert got < whole_bytes, (rollup, got, whole_bytes)
        print({r: sorted(k) for r, k in kinds.items()}, "whole stream bytes", whole_bytes)
        assert {"tx", "bundle", "vote", "decision"} <= kinds["alpha"]

        with pytest.raises(aio.AioRpcError) as e:
            async for _ in seq.stream_blocks(1, "omega"):
                pass
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a rollup of genesis" in (e.value.details() or "")

    async with NodeClient(filtered_node) as a, NodeClient(full_node) as b:
        await a.wait_for_height(head, timeout=60)
        await b.wait_for_height(head, timeout=60)
        for h in range(0, head + 1):
            assert await a.state_root(h) == await b.state_root(h), f"state roots differ at {h}"
        sa, sb = await a.status(), await b.status()
        assert sa.refused_blocks == sb.refused_blocks == 0
    async with Client(sequencer) as seq:
        for s in (sa, sb):
            assert s.applied_header.hash == (await seq.get_block(s.applied_height)).hash
