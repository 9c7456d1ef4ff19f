"""The HA sequencer (issue 12) on a real devnet: a three-member etcd cluster, three
sequencer replicas and a node per rollup, all real processes on loopback.

- Killing the leader under load: a standby takes over from the committed head; no
  acknowledged submission is lost (each is in the chain exactly once, at its
  acknowledged place), the replicas' copies are one chain, terms never go down
  along it, every node's chain is a prefix of it, and `devnet check` passes.
- Fencing: a leader paused past its lease, resumed after a new leader appended,
  tries to append (its replicas run with --unsafe-no-lease-check, so only etcd's
  fenced transaction stands in its way) and etcd refuses it; no replica and no
  node ever holds a block of its old term above where the new term begins.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from chainsupport import (
    Acked,
    assert_acked_in_chain,
    index_entries,
    random_transfer,
    read_blocks_by_stream,
)
from grpc import aio

from devnet import etcd, faults, ha, network
from devnet.checker import NodeRef, run_checks
from devnet.launcher import Launched
from devnet.manifest import Manifest, load_manifest
from sequencer.etcdlog import EtcdLog
from sequencer.ha import ETCD_KEEP_BLOCKS, sign_forward
from xrollup.client import Client, NodeClient
from xrollup.codec import decode_block
from xrollup.endpoints import split_endpoint
from xrollup.genesis import compute_genesis_hash, load_genesis
from xrollup.keys import derive_sequencer_key
from xrollup.v1 import sequencer_pb2 as spb
from xrollup.v1 import types_pb2 as pb

TRIM_SLACK = 200  # blocks appended between two trims (every TRIM_S) and reports

pytestmark = pytest.mark.skipif(not etcd.is_installed(), reason="etcd is not installed")


def _start(data_dir: Path, *sequencer_args: str) -> Manifest:
    return network.start_devnet(
        data_dir, explorer=False, ha=True, timeout=60.0, sequencer_args=sequencer_args
    )


@pytest.fixture(scope="module")
def ha_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("ha")
    _start(data_dir)
    try:
        yield data_dir
    finally:
        network.stop_devnet(data_dir, grace=5.0)


def _nodes(manifest: Manifest) -> list[NodeRef]:
    return [
        NodeRef(p.name, p.rollup or "", p.endpoint) for p in manifest.processes if p.role == "node"
    ]


async def _read_chain(endpoint: str, head: int) -> list[pb.Block]:
    async with Client(endpoint) as client:
        return await read_blocks_by_stream(client, 1, head)


async def _copies_agree(manifest: Manifest) -> tuple[int, list[pb.Block]]:
    """Once every running replica has caught up with the highest head seen now, each
    copy is the same chain up to the lowest head: that height and the chain read
    from the first replica."""
    target = max(r.height for r in await ha.read_replicas(manifest))
    deadline = time.monotonic() + 30
    while min(r.height for r in await ha.read_replicas(manifest) if r.role != "down") < target:
        assert time.monotonic() < deadline, "a replica does not catch up"
        await asyncio.sleep(0.1)
    replicas = [r for r in await ha.read_replicas(manifest) if r.role != "down"]
    low = min(r.height for r in replicas)
    chains = await asyncio.gather(*(_read_chain(r.endpoint, low) for r in replicas))
    hashes = [[bytes(b.hash) for b in c] for c in chains]
    for r, h in zip(replicas, hashes, strict=True):
        assert h == hashes[0], f"{r.name}'s copy differs from {replicas[0].name}'s"
    return low, chains[0]


def _terms_never_go_down(chain: list[pb.Block]) -> dict[int, int]:
    """Term -> first height; asserts the term never decreases along `chain`."""
    starts: dict[int, int] = {}
    for prev, block in itertools.pairwise(chain):
        assert block.header.term >= prev.header.term, (
            f"block {block.header.height} term {block.header.term} < {prev.header.term}"
        )
    for block in chain:
        starts.setdefault(block.header.term, block.header.height)
    return starts


def test_a_killed_leader_is_replaced_and_no_acknowledged_submission_is_lost(
    ha_net: Path,
) -> None:
    seed = int(os.environ.get("XR_SEED", random.randrange(2**32)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    manifest = load_manifest(ha_net)
    assert manifest is not None
    endpoints = network.sequencer_endpoints(manifest)

    async def run() -> tuple[list[Acked], float, str]:
        first = await ha.wait_for_leader(manifest, 30.0)
        acked: list[Acked] = []
        stop = asyncio.Event()
        async with Client(endpoints, spread=True) as client:
            head = (await client.status()).height

            async def worker() -> None:
                while not stop.is_set():
                    tx = random_transfer(rng, head + 10_000)
                    s = await client.submit_retrying(tx, timeout=30.0)
                    acked.append(Acked(s.id, s.height, s.index))

            workers = [asyncio.create_task(worker()) for _ in range(6)]
            while len(acked) < 60:
                await asyncio.sleep(0.05)
            os.kill(first_pid(manifest, first.name), signal.SIGKILL)
            killed_at, before = time.monotonic(), len(acked)
            last_before = max(a.height for a in acked[:before])
            new = await ha.wait_for_leader(manifest, 30.0, above_term=first.term)
            assert new.name != first.name
            while not any(a.height > last_before for a in acked[before:]):
                await asyncio.sleep(0.01)
            failover = time.monotonic() - killed_at
            while len(acked) < before + 60:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*workers)
        return acked, failover, first.name

    acked, failover, killed = asyncio.run(run())
    print(f"failover {failover:.2f} s; {len(acked)} acknowledged")
    # The killed replica comes back as a standby and catches up from etcd.
    faults.restart(ha_net, killed)
    manifest = load_manifest(ha_net)
    assert manifest is not None

    async def check() -> None:
        status = {r.name: r for r in await ha.read_replicas(manifest)}
        assert status[killed].role == ha.STANDBY
        low, chain = await _copies_agree(manifest)
        starts = _terms_never_go_down(chain)
        assert len(starts) >= 2, f"one term only: {starts}"
        blocks = [decode_block(b) for b in chain]
        highest = max(a.height for a in acked)
        assert low >= highest, f"the copies end at {low}, an ack was at {highest}"
        assert_acked_in_chain(acked, index_entries(blocks))
        # Old blocks left etcd once every replica held them (the last ETCD_KEEP_BLOCKS
        # stay), and its history is compacted.
        log = EtcdLog(
            [split_endpoint(e) for e in etcd.client_endpoints(manifest)], manifest.chain_id, 2.0
        )
        deadline = time.monotonic() + 10
        while (first := log.first_height()) < low - ETCD_KEEP_BLOCKS - TRIM_SLACK:
            assert time.monotonic() < deadline, f"etcd still keeps blocks from {first} (head {low})"
            await asyncio.sleep(0.2)
        genesis = load_genesis(Path(manifest.genesis))
        report = await run_checks(
            network.sequencer_endpoints(manifest), _nodes(manifest), genesis, settle_timeout=60
        )
        assert report.ok, [(c.name, c.violations) for c in report.checks if not c.ok]

    asyncio.run(check())


def first_pid(manifest: Manifest, name: str) -> int:
    rec = manifest.get(name)
    assert rec is not None and rec.pid > 0
    return rec.pid


def test_a_paused_leader_resumed_after_a_new_leader_appended_is_refused_by_etcd(
    tmp_path: Path,
) -> None:
    _start(tmp_path, "--unsafe-no-lease-check")
    try:
        manifest = load_manifest(tmp_path)
        assert manifest is not None

        async def run() -> None:
            old = await ha.wait_for_leader(manifest, 30.0)
            pid = first_pid(manifest, old.name)
            os.kill(pid, signal.SIGSTOP)
            try:
                new = await ha.wait_for_leader(manifest, 30.0, above_term=old.term)
                # The new leader appends blocks of its term.
                target = new.height + 20
                deadline = time.monotonic() + 30
                while True:
                    now = ha.pick_leader(await ha.read_replicas(manifest))
                    if now is not None and now.term == new.term and now.height >= target:
                        break
                    assert time.monotonic() < deadline, "the new leader appends nothing"
                    await asyncio.sleep(0.05)
            finally:
                os.kill(pid, signal.SIGCONT)
            # Resumed, it seals its next block under the old term and etcd refuses it.
            deadline = time.monotonic() + 30
            while True:
                st = {r.name: r for r in await ha.read_replicas(manifest)}[old.name]
                if st.role == ha.STANDBY and st.fenced_appends >= 1:
                    break
                assert time.monotonic() < deadline, f"{old.name}: {st}"
                await asyncio.sleep(0.05)
            log = Path(manifest.get(old.name).log).read_text()  # type: ignore[union-attr]
            assert "etcd refused block" in log and f"of term {old.term}" in log
            # Nobody holds a block of the old term above where the new term begins.
            _low, chain = await _copies_agree(manifest)
            starts = _terms_never_go_down(chain)
            begins = starts[new.term]
            assert all(b.header.term != old.term for b in chain if b.header.height >= begins)
            genesis = load_genesis(Path(manifest.genesis))
            report = await run_checks(
                network.sequencer_endpoints(manifest), _nodes(manifest), genesis, settle_timeout=60
            )
            assert report.ok, [(c.name, c.violations) for c in report.checks if not c.ok]
            # Every node follows the new term (run_checks waited for each to apply the
            # head) and was never served a block it had to refuse.
            for node in _nodes(manifest):
                async with NodeClient(node.endpoint) as nc:
                    s = await nc.status()
                    assert s.term >= new.term, f"{node.name} is on term {s.term}"
                    assert s.refused_blocks == 0, f"{node.name} was served a refused block"

        asyncio.run(run())
    finally:
        network.stop_devnet(tmp_path, grace=5.0)


def test_forward_takes_only_a_replicas_signed_batches(
    ha_net: Path, start_sequencer: Callable[..., Launched]
) -> None:
    """Forward skips admission, so only the sequencer's own replicas may call it: a
    batch not signed with the sequencer key is PERMISSION_DENIED by the leader, a
    signed one sent to a standby is UNAVAILABLE (forward to the leader), and a
    sequencer running alone refuses Forward outright (FAILED_PRECONDITION)."""
    manifest = load_manifest(ha_net)
    assert manifest is not None
    genesis = load_genesis(Path(manifest.genesis))
    alone = start_sequencer(name="alone")
    batch = spb.ForwardBatch(replica="mallory").SerializeToString()
    signed = sign_forward(derive_sequencer_key(), compute_genesis_hash(genesis), batch)

    async def forward(endpoint: str, sig: bytes) -> grpc.StatusCode:
        async with Client(endpoint) as c:
            try:
                await c.stub.Forward(spb.ForwardRequest(batch=batch, signature=sig), timeout=5)
            except aio.AioRpcError as e:
                return e.code()
        return grpc.StatusCode.OK

    async def run() -> None:
        leader = await ha.wait_for_leader(manifest, 30.0)
        standby = next(r for r in await ha.read_replicas(manifest) if r.role == ha.STANDBY)
        assert await forward(leader.endpoint, bytes(64)) == grpc.StatusCode.PERMISSION_DENIED
        assert await forward(leader.endpoint, b"") == grpc.StatusCode.PERMISSION_DENIED
        assert await forward(standby.endpoint, signed) == grpc.StatusCode.UNAVAILABLE
        assert await forward(leader.endpoint, signed) == grpc.StatusCode.OK  # an empty batch
        assert await forward(alone.endpoint, signed) == grpc.StatusCode.FAILED_PRECONDITION

    asyncio.run(run())
