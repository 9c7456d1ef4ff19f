"""Retention with real processes on 127.0.0.1 (README, Retention): a devnet with
replicas, --retain-blocks 20, genesis limits.record_retention_blocks 20 (bundle
deadline 10, expiry window 100, so that everything prunes within seconds) under a
light load of transfers and option bundles, plus an alpha node on the whole
stream beside the devnet's filtered ones:

- old receipts, state roots, bundle records and blocks answer NOT_FOUND saying
  they are pruned (a stream from a pruned height FAILED_PRECONDITION: start from
  a snapshot); recent ones answer;
- state roots agree between each primary and its replica and between the
  filtered and the full-stream alpha node at every height they all keep, and
  `devnet check` holds, noting where history starts;
- what the stores hold stays within the windows: counted by prefix in two
  snapshots (copies of every store) taken 300 blocks apart, not by bytes;
- the sequencer never prunes above its floor: a stopped replica's height and a
  snapshot's height hold it; the replica, restarted, catches up and agrees; a
  node started from an empty directory says it must start from a snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import plyvel
import pytest
from grpc import aio

from devnet import faults, launcher, network
from devnet.checker import NodeRef, run_checks
from devnet.manifest import Manifest, load_manifest
from devnet.snapshot import save_snapshot
from xrollup.client import Client, NodeClient, build_open_option, build_transfer
from xrollup.codec import decode_bundle
from xrollup.genesis import Genesis, Limits, dev_genesis
from xrollup.keys import derive_dev_account
from xrollup.model import OptionKind
from xrollup.v1 import types_pb2 as pb

RETAIN = 20  # --retain-blocks, and limits.record_retention_blocks
INTERVAL_MS = 40
GENESIS: Genesis = dataclasses.replace(
    dev_genesis(),
    limits=dataclasses.replace(
        Limits(), record_retention_blocks=RETAIN, bundle_deadline_blocks=10, max_expiry_window=100
    ),
)
ACCOUNTS = [derive_dev_account(i) for i in range(6)]
WRITER, HOLDER = derive_dev_account(8), derive_dev_account(9)
STRIKE, SIZE, PREMIUM = 2_800 * 10**6, 10**9, 10**6
NEED = 2_800 * 10**6  # a put on 1 ETH at 2,800 USDC
DEVNET = str(Path(sys.executable).parent / "devnet")


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[tuple[Path, Manifest]]:
    d = tmp_path / "devnet"
    manifest = network.start_devnet(
        d,
        replicas=True,
        block_interval_ms=INTERVAL_MS,
        explorer=False,
        genesis=GENESIS,
        retain_blocks=RETAIN,
    )
    try:
        yield d, manifest
    finally:
        network.stop_devnet(d, grace=5.0)


def endpoint(data_dir: Path, name: str) -> str:
    m = load_manifest(data_dir)
    rec = m.get(name) if m else None
    assert rec is not None
    return rec.endpoint


class Load:
    """Transfers on alpha and beta (a batch every 0.1 s), acknowledged, until stopped."""

    def __init__(self, sequencer: str) -> None:
        self.sequencer = sequencer
        self.acked: list[tuple[bytes, str, int]] = []  # (id, rollup, height)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        nonce = 0
        async with Client(self.sequencer) as c:
            while not self._stop.is_set():
                head = (await c.status()).height
                txs = []
                for i, a in enumerate(ACCOUNTS):
                    nonce += 1
                    rollup = ("alpha", "beta")[i % 2]
                    to = ACCOUNTS[(i + 1) % len(ACCOUNTS)].address
                    txs.append(build_transfer(a, rollup, to, "USDC", 1, head + 50, nonce=nonce))
                for item, tx in zip(await c.submit_batch(txs), txs, strict=True):
                    assert item.ok, item.message
                    rollup = pb.TxBody.FromString(tx.body).rollup
                    self.acked.append((item.id, rollup, item.height))
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()


async def open_option(c: Client, nonce: int, collateral: int = NEED) -> tuple[bytes, int]:
    """An option-open bundle (beta votes no when the collateral is short); its id
    and height."""
    head = (await c.status()).height
    msg = build_open_option(
        WRITER,
        HOLDER,
        OptionKind.PUT,
        STRIKE,
        SIZE,
        head + 500,
        PREMIUM,
        head + 50,
        collateral=collateral,
        nonce=nonce,
    )
    ack = await c.submit_bundle(msg)
    return decode_bundle(msg).id, ack.height


async def wait_head(c: Client, height: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while (head := (await c.status()).height) < height:
        assert time.monotonic() < deadline, f"head {head} short of {height}"
        await asyncio.sleep(0.05)
    return head


async def not_found(call: Any) -> str:
    with pytest.raises(aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value
    return err.value.details() or ""


def count_keys(store: Path) -> dict[bytes, int]:
    """Keys of a LevelDB copy by their first byte (node: state s, receipts r, roots R,
    headers h, receipt lists x; sequencer: blocks B, ids I, id lists X)."""
    db = plyvel.DB(str(store))
    try:
        out: dict[bytes, int] = {}
        for key in db.iterator(include_value=False):
            out[key[:1]] = out.get(key[:1], 0) + 1
        return out
    finally:
        db.close()


def node_store_within_windows(store: Path, h: int) -> dict[str, int]:
    """A node's copy at height h holds roots, headers and receipts of its last RETAIN
    heights only, and bundle records decided fewer than RETAIN blocks before h."""
    db = plyvel.DB(str(store))
    kept = range(h - RETAIN + 1, h + 1)
    try:
        roots = [
            int.from_bytes(k[1:], "big") for k in db.iterator(prefix=b"R", include_value=False)
        ]
        headers = [
            int.from_bytes(k[1:], "big") for k in db.iterator(prefix=b"h", include_value=False)
        ]
        receipts = [int.from_bytes(v[:8], "big") for _, v in db.iterator(prefix=b"r")]
        records = [json.loads(v) for _, v in db.iterator(prefix=b"sbnd:")]
        # and the roots of the heights snapshots were taken at
        pins = {int.from_bytes(k[1:], "big") for k in db.iterator(prefix=b"S", include_value=False)}
        assert h in pins and sorted(roots) == sorted(set(kept) | pins), roots
        assert sorted(headers) == list(kept), headers
        assert receipts and min(receipts) >= kept[0], min(receipts)
        for r in records:
            assert r["status"] == "prepared" or r["decision_height"] + RETAIN > h, r
        return {
            "receipts": len(receipts),
            "records": len(records),
            "keys": sum(1 for _ in db.iterator(include_value=False)),
        }
    finally:
        db.close()


async def roots_agree(data_dir: Path, extra: dict[str, str]) -> int:
    """Every node of a rollup (and `extra` ones: name -> endpoint, alpha) has the
    same root at every height all of them keep; the number of heights compared."""
    m = load_manifest(data_dir)
    assert m is not None
    groups: dict[str, dict[str, str]] = {}
    for p in m.processes:
        if p.role == "node":
            groups.setdefault(p.rollup or "", {})[p.name] = p.endpoint
    groups["alpha"].update(extra)
    compared = 0
    for rollup, nodes in groups.items():
        clients = {n: NodeClient(e) for n, e in nodes.items()}
        try:
            statuses = {n: await c.status() for n, c in clients.items()}
            low = max(s.retained_from for s in statuses.values())
            top = min(s.applied_height for s in statuses.values())
            assert top - low >= RETAIN // 2, (rollup, low, top)
            for h in range(top, top - RETAIN // 2, -1):
                roots = {n: await c.state_root(h) for n, c in clients.items()}
                assert len(set(roots.values())) == 1, (rollup, h, roots)
                compared += 1
        finally:
            for c in clients.values():
                await c.close()
    return compared


def test_old_history_answers_pruned_and_the_stores_stay_within_their_windows(
    devnet: tuple[Path, Manifest], tmp_path: Path
) -> None:
    d, manifest = devnet
    seq = endpoint(d, "sequencer")
    # an alpha node on the whole stream, beside the devnet's filtered ones
    full_dir, ready = tmp_path / "alpha-full", tmp_path / "alpha-full.ready"
    argv = launcher.node_argv(
        "alpha", seq, "127.0.0.1:0", full_dir, ready, Path(manifest.genesis), retain_blocks=RETAIN
    )
    full = launcher.start_process(
        "alpha-full",
        "node",
        "alpha",
        [*argv, "--full-stream"],
        full_dir,
        tmp_path / "alpha-full.log",
        ready,
        detach=False,
    )

    async def run() -> None:
        load = Load(seq)
        loading = asyncio.create_task(load.run())
        try:
            async with (
                Client(seq) as c,
                NodeClient(endpoint(d, "alpha")) as alpha,
                NodeClient(endpoint(d, "beta")) as beta,
            ):
                committed, _ = await open_option(c, 1)
                aborted, _ = await open_option(c, 2, collateral=NEED - 1)
                for n in (alpha, beta):
                    assert (await n.wait_for_bundle(committed)).status == 2  # COMMITTED
                    assert (await n.wait_for_bundle(aborted)).status == 3  # ABORTED
                while not load.acked:
                    await asyncio.sleep(0.05)
                old_tx, old_rollup, old_height = load.acked[0]
                await wait_head(c, old_height + 3 * RETAIN + 60)

                # receipts, roots, bundle records: pruned on every node
                node = alpha if old_rollup == "alpha" else beta
                says = await not_found(node.receipt(old_tx))
                assert "pruned: this node keeps the last 20 heights, from" in says, says
                says = await not_found(alpha.state_root(old_height))
                assert says.startswith(f"no state root at height {old_height}: pruned"), says
                for n in (alpha, beta):
                    says = await not_found(n.bundle(committed))
                    assert "bundle records are pruned 20 blocks after their decision" in says
                # the option and its lien stay: not final (open, locked)
                assert (await beta.option(committed)).status == 1
                assert (await alpha.lien(committed)).status == 1
                # blocks: pruned on the sequencer, behind the floor the proxy keeps
                status = await c.status()
                assert status.prune_floor > old_height and status.first_height > old_height
                says = await not_found(c.get_block(old_height))
                assert f"block {old_height} is pruned: this sequencer keeps blocks from" in says
                with pytest.raises(aio.AioRpcError) as err:
                    async for _ in c.stream_blocks(1):
                        pass
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "must start from a snapshot" in (err.value.details() or "")
                # recent ones answer
                recent, rollup, _ = load.acked[-1]
                n = alpha if rollup == "alpha" else beta
                assert (await n.wait_for_receipt(recent, timeout=10)).ok
                fresh, _ = await open_option(c, 3)
                assert (await beta.wait_for_bundle(fresh)).status == 2
                assert await alpha.state_root((await alpha.status()).applied_height)
                first = (await c.status()).first_height + 2  # it moves on meanwhile
                assert (await c.get_block(first)).header.height == first

                # agreement: replicas, and filtered against full stream
                assert await roots_agree(d, {"alpha-full": full.endpoint}) == 2 * (RETAIN // 2)

                # the stores: two snapshots 300 blocks apart
                first = await save_snapshot(d, "s1", GENESIS)
                counts1 = {
                    p.name: node_store_within_windows(first.path / p.name, first.height)
                    for p in first.pieces
                    if p.role == "node"
                }
                seq1 = count_keys(first.path / "sequencer")
                shutil.rmtree(first.path)  # it would hold the sequencer's floor
                await wait_head(c, first.height + 300)
                second = await save_snapshot(d, "s2", GENESIS)
                for p in second.pieces:
                    if p.role != "node":
                        continue
                    counts2 = node_store_within_windows(second.path / p.name, second.height)
                    assert counts2["keys"] <= 1.5 * counts1[p.name]["keys"] + 200, (
                        p.name,
                        counts1,
                        counts2,
                    )
                seq2 = count_keys(second.path / "sequencer")
                # blocks: the window and the floor's lag (the keeper asks once a second)
                assert seq1[b"B"] <= 150 and seq2[b"B"] <= 150, (seq1, seq2)
                # ids: the expiry window (100) at most beside what the blocks keep
                assert seq2[b"I"] <= 1.5 * seq1[b"I"] + 100 * 10, (seq1, seq2)
        finally:
            load.stop()
            await loading

    try:
        asyncio.run(run())
        report = asyncio.run(
            run_checks(
                seq,
                [
                    NodeRef(p.name, p.rollup or "", p.endpoint)
                    for p in manifest.processes
                    if p.role == "node"
                ],
                GENESIS,
            )
        )
        assert report.ok, report.to_json()
        assert report.notes and report.notes[0].startswith("history pruned below"), report.notes
        check = subprocess.run(
            [DEVNET, "check", "--data-dir", str(d)], capture_output=True, text=True, timeout=120
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "note: history pruned below" in check.stdout
    finally:
        launcher.stop_pid(full.pid, grace=5, popen=full.popen)


def read_applied(store: Path) -> int:
    """The applied height in a stopped node's store (its last threads may still be
    exiting a moment after the kill, holding the lock)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            db = plyvel.DB(str(store))
            break
        except plyvel.IOError:
            assert time.monotonic() < deadline, f"{store} still locked"
            time.sleep(0.05)
    try:
        raw = db.get(b"m")
        assert raw is not None
        return int.from_bytes(raw[:8], "big")
    finally:
        db.close()


def test_the_floor_holds_for_a_stopped_node_and_a_snapshot(
    devnet: tuple[Path, Manifest], tmp_path: Path
) -> None:
    d, manifest = devnet
    seq = endpoint(d, "sequencer")
    replica = manifest.get("alpha-replica")
    assert replica is not None

    async def head_past(c: Client, blocks: int) -> int:
        return await wait_head(c, (await c.status()).height + blocks)

    async def run() -> None:
        load = Load(seq)
        loading = asyncio.create_task(load.run())
        try:
            async with Client(seq) as c:
                await head_past(c, 2 * RETAIN)
                faults.kill(d, "alpha-replica")
                stopped = read_applied(Path(replica.data_dir))
                await head_past(c, 4 * RETAIN + 50)
                status = await c.status()
                assert status.prune_floor <= stopped and status.first_height <= stopped, (
                    stopped,
                    status,
                )
                assert (await c.get_block(stopped + 1)).header.height == stopped + 1
                assert status.head_hash and status.height > stopped + 4 * RETAIN

                faults.restart(d, "alpha-replica")
                async with NodeClient(endpoint(d, "alpha-replica")) as r:
                    await r.wait_for_height(status.height, timeout=60)
                await roots_agree(d, {})
                deadline = time.monotonic() + 20
                while (await c.status()).first_height <= stopped:
                    assert time.monotonic() < deadline, "the floor did not rise after the restart"
                    await asyncio.sleep(0.2)

                # a snapshot holds the floor too, until it is removed
                snap = await save_snapshot(d, "held", GENESIS)
                await head_past(c, 4 * RETAIN + 50)
                assert (await c.status()).first_height <= snap.height
                shutil.rmtree(snap.path)
                deadline = time.monotonic() + 20
                while (await c.status()).first_height <= snap.height:
                    assert time.monotonic() < deadline, "the floor did not rise"
                    await asyncio.sleep(0.2)
        finally:
            load.stop()
            await loading

    asyncio.run(run())

    # a node from an empty directory cannot catch up any more, and says so
    data_dir, ready = tmp_path / "late", tmp_path / "late.ready"
    argv = launcher.node_argv("alpha", seq, "127.0.0.1:0", data_dir, ready, Path(manifest.genesis))
    late = launcher.start_process(
        "late", "node", "alpha", argv, data_dir, tmp_path / "late.log", ready, detach=False
    )
    try:

        async def error() -> str:
            async with NodeClient(late.endpoint) as n:
                deadline = time.monotonic() + 20
                while not (s := await n.status()).stream_error:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                assert s.applied_height == 0
                return s.stream_error

        says = asyncio.run(error())
        assert says.startswith("FAILED_PRECONDITION: block 1 is pruned"), says
        assert "must start from a snapshot" in says
    finally:
        launcher.stop_pid(late.pid, grace=5, popen=late.popen)
