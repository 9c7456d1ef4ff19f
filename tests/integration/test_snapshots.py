"""Snapshots with real processes on 127.0.0.1 (no mocks):

- `devnet snapshot save` while a seeded `devnet load` runs (the devnet is not
  stopped: same pids, the head moves on), `devnet up --from-snapshot` into a fresh
  directory: every node's state root at the snapshot height h equals the
  original's and the snapshot's, block h is the same block, and `devnet check`
  holds on the new devnet (with the journal's acknowledgements up to h) and on the
  original; `devnet snapshot load` then returns the original to h, checked again;
  an existing name, a paused process or an unknown snapshot is one line, exit 1;
- a replica started from a node's snapshot at h (`python -m rollup_node
  --from-snapshot DIR --source-node HOST:PORT`) follows from h, not from 0, and has
  the primary's state root at every height after h; a copy whose state was altered
  (its stored root left, or rewritten to match), or a source of another rollup, is
  refused with exit code 2 and nothing left in its data directory;
- hostile SaveSnapshot requests: a path or a bad name, height 0, a height far
  ahead, an existing name, a second snapshot while one waits, a height a node is
  past: each refused with its status, and nothing written outside each process's
  snapshots folder, where only the snapshots that succeeded are."""

from __future__ import annotations

import asyncio
import json
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

from devnet import launcher, network
from devnet.manifest import Manifest, load_manifest
from rollup_node.core.root import compute_accumulator, compute_state_root, encode_accumulator
from xrollup.client import Client, NodeClient, SnapshotClient
from xrollup.keys import derive_dev_account
from xrollup.snapshots import copy_store_files

DEVNET = str(Path(sys.executable).parent / "devnet")
NODES = ("alpha", "beta", "alpha-replica", "beta-replica")
ALICE, BOB = derive_dev_account(0), derive_dev_account(1)


def devnet(data_dir: Path, *args: str, expect: int | None = 0, timeout: float = 180) -> Any:
    """`devnet ARGS --data-dir DIR` as users type it; its --json output when asked."""
    p = subprocess.run(
        [DEVNET, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if expect is not None:
        assert p.returncode == expect, f"devnet {' '.join(args)}: {p.returncode}\n{p.stderr}"
    return json.loads(p.stdout) if "--json" in args and p.returncode == 0 else p


def journal_lines(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


async def roots_at(manifest: Manifest, height: int) -> dict[str, bytes]:
    out = {}
    for name in NODES:
        rec = manifest.get(name)
        assert rec is not None
        async with NodeClient(rec.endpoint) as n:
            out[name] = await n.state_root(height)
    return out


async def block_hash(manifest: Manifest, height: int) -> bytes:
    rec = manifest.get("sequencer")
    assert rec is not None
    async with Client(rec.endpoint) as c:
        return bytes((await c.get_block(height)).hash)


@pytest.fixture
def devnet_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    dirs: list[Path] = []
    yield dirs
    for d in dirs:
        network.stop_devnet(d, grace=5.0)


def test_saved_under_load_restores_elsewhere_and_back_with_equal_roots_and_checks_holding(
    tmp_path: Path, devnet_dirs: list[Path], seed: int
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    devnet_dirs += [a, b]
    devnet(a, "up", "--replicas", "--no-explorer", "--json")
    pids = {p.name: p.pid for p in load_manifest(a).processes}  # type: ignore[union-attr]
    load_log = (tmp_path / "load.log").open("w")
    load = subprocess.Popen(
        [
            DEVNET,
            "load",
            "--seed",
            str(seed),
            "--count",
            "2500",
            "--rate",
            "400",
            "--data-dir",
            str(a),
        ],
        stdout=load_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while len(journal_lines(a)) < 100:
            assert load.poll() is None and time.monotonic() < deadline, "load did not start"
            time.sleep(0.1)

        saved = devnet(a, "snapshot", "save", "s1", "--json")

        assert load.poll() is None, "the load ran through the save"
        h = saved["height"]
        manifest_a = load_manifest(a)
        assert manifest_a is not None
        assert {p.name: p.pid for p in manifest_a.processes} == pids  # nothing restarted
        status = devnet(a, "status", "--json")
        assert min(r["height"] for r in status["processes"] if r["role"] == "node") > h
        snap = a / "snapshots" / "s1"
        assert {p["name"] for p in saved["processes"]} == {"sequencer", *NODES}
        assert sorted(x.name for x in snap.iterdir()) == sorted(
            ["sequencer", *NODES, "genesis.json", "journal.jsonl", "snapshot.json"]
        )
        listed = devnet(a, "snapshot", "list", "--json")["snapshots"]
        assert [(s["name"], s["height"], s["rollups"]) for s in listed] == [
            ("s1", h, ["alpha", "beta"])
        ]
        again = devnet(a, "snapshot", "save", "s1", expect=1)
        assert again.stderr.count("\n") == 1 and "exists already" in again.stderr
        devnet(a, "pause", "beta-replica")
        paused = devnet(a, "snapshot", "save", "s2", expect=1)
        devnet(a, "resume", "beta-replica")
        assert paused.stderr.count("\n") == 1 and "paused: beta-replica" in paused.stderr
        # What each process wrote was moved into the devnet's snapshot: none is left behind.
        assert not any((a / name / "snapshots" / "s1").exists() for name in ["sequencer", *NODES])

        up = devnet(b, "up", "--from-snapshot", str(snap), "--no-explorer", "--json")

        assert up["snapshot"]["height"] == h
        manifest_b = load_manifest(b)
        assert manifest_b is not None
        want = {p["name"]: bytes.fromhex(p["state_root"]) for p in saved["processes"]}
        del want["sequencer"]
        assert asyncio.run(roots_at(manifest_a, h)) == want
        assert asyncio.run(roots_at(manifest_b, h)) == want
        assert want["alpha"] == want["alpha-replica"] and want["beta"] == want["beta-replica"]
        assert asyncio.run(block_hash(manifest_b, h)) == asyncio.run(block_hash(manifest_a, h))
        assert bytes.fromhex(saved["block_hash"]) == asyncio.run(block_hash(manifest_a, h))
        kept = journal_lines(b)
        assert kept and all(x["height"] <= h for x in kept)

        assert load.wait(timeout=120) == 0, (tmp_path / "load.log").read_text()[-2000:]
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        load_log.close()

    checked_b = devnet(b, "check", "--json")
    assert checked_b["ok"] and checked_b["checks"]["durability"]["acknowledged"] == len(kept)
    assert devnet(a, "check", "--json")["ok"]

    # Back to the snapshot: the original devnet returns to h; blocks after it are gone.
    head_before = asyncio.run(_head(manifest_a))
    loaded = devnet(a, "snapshot", "load", "s1", "--json")

    manifest_a = load_manifest(a)
    assert manifest_a is not None and loaded["snapshot"]["height"] == h
    assert asyncio.run(_head(manifest_a)) < head_before
    assert asyncio.run(roots_at(manifest_a, h)) == want
    assert asyncio.run(block_hash(manifest_a, h)) == bytes.fromhex(saved["block_hash"])
    assert all(x["height"] <= h for x in journal_lines(a))
    assert devnet(a, "check", "--json")["ok"]
    gone = devnet(a, "snapshot", "load", "nosuch", expect=1)
    assert gone.stderr.count("\n") == 1 and "no snapshot 'nosuch'" in gone.stderr


async def _head(manifest: Manifest) -> int:
    rec = manifest.get("sequencer")
    assert rec is not None
    async with Client(rec.endpoint) as c:
        return int((await c.status()).height)


# ---------------------------------------------------------------- replicas and hostile input


@pytest.fixture(scope="module")
def small_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manifest]:
    """A sequencer, alpha and beta (no replicas, no explorer), shared by the tests below."""
    d = tmp_path_factory.mktemp("snapnet") / "dn"
    manifest = network.start_devnet(d, explorer=False)
    yield manifest
    network.stop_devnet(d, grace=5.0)


def _endpoint(manifest: Manifest, name: str) -> str:
    rec = manifest.get(name)
    assert rec is not None
    return rec.endpoint


async def _transfers(manifest: Manifest, count: int, amount: int) -> int:
    """`count` transfers on alpha, acknowledged; the head after the last."""
    async with Client(_endpoint(manifest, "sequencer")) as c:
        acks = [
            await c.submit_tx(await c.build_transfer(ALICE, "alpha", BOB.address, "USDC", amount))
            for _ in range(count)
        ]
        return max(a.height for a in acks)


def _replica_argv(manifest: Manifest, data_dir: Path, ready: Path, *extra: str) -> list[str]:
    seq = _endpoint(manifest, "sequencer")
    argv = launcher.node_argv("alpha", seq, "127.0.0.1:0", data_dir, ready, Path(manifest.genesis))
    return [*argv, *extra]


def _refused_start(argv: list[str], data_dir: Path) -> str:
    """Run a node that must refuse to start: exit code 2, nothing left in its
    data directory; its log (stderr)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr[-2000:]
    assert not data_dir.exists()
    return p.stderr


def test_a_replica_from_a_snapshot_follows_from_h_and_matches_the_primary(
    small_devnet: Manifest, tmp_path: Path
) -> None:
    alpha = _endpoint(small_devnet, "alpha")
    first = asyncio.run(_transfers(small_devnet, 5, 1_000_000))

    async def snapshot() -> Any:
        async with SnapshotClient(alpha) as s:
            return await s.save("for-replica", first + 5)

    r = asyncio.run(snapshot())
    h = int(r.height)
    path = Path(r.path)
    alpha_dir = Path(small_devnet.get("alpha").data_dir)  # type: ignore[union-attr]
    assert h == first + 5 and path == alpha_dir / "snapshots" / "for-replica"

    data_dir, ready, log = (
        tmp_path / "replica",
        tmp_path / "replica.ready",
        tmp_path / "replica.log",
    )
    argv = _replica_argv(
        small_devnet, data_dir, ready, "--from-snapshot", str(path), "--source-node", alpha
    )
    replica = launcher.start_process("replica", "node", "alpha", argv, data_dir, log, ready)
    try:
        last = asyncio.run(_transfers(small_devnet, 10, 2_000_000))

        async def compare() -> tuple[list[bytes], list[bytes]]:
            async with NodeClient(alpha) as p, NodeClient(replica.endpoint) as q:
                await p.wait_for_height(last)
                await q.wait_for_height(last)
                heights = range(h, last + 1)
                return [await p.state_root(k) for k in heights], [
                    await q.state_root(k) for k in heights
                ]

        primary, copy = asyncio.run(compare())
    finally:
        launcher.stop_pid(replica.pid, grace=5.0, popen=replica.popen)

    assert copy == primary and len(set(primary)) > 1  # the transfers after h changed the root
    text = log.read_text()
    assert f"started from snapshot {path} at height {h}" in text
    assert f"from height {h}" in text  # followed from h, not from 0

    # An altered copy: a balance changed, its stored accumulator and root left as they were.
    altered = tmp_path / "altered"
    copy_store_files(path, altered)
    _alter_balance(altered, rehash=False)
    target, ready2, source = tmp_path / "r2", tmp_path / "r2.ready", ("--source-node", alpha)
    err = _refused_start(
        _replica_argv(small_devnet, target, ready2, "--from-snapshot", str(altered), *source),
        target,
    )
    assert f"does not hash to the root it records for height {h}" in err

    # Altered and made self-consistent (accumulator and root rewritten): only the
    # source node's root for h can tell, and it does.
    rehashed = tmp_path / "rehashed"
    copy_store_files(path, rehashed)
    _alter_balance(rehashed, rehash=True)
    err = _refused_start(
        _replica_argv(small_devnet, target, ready2, "--from-snapshot", str(rehashed), *source),
        target,
    )
    assert f"the source node {alpha} reports" in err and "refusing to start" in err

    beta = _endpoint(small_devnet, "beta")
    err = _refused_start(
        _replica_argv(
            small_devnet, target, ready2, "--from-snapshot", str(path), "--source-node", beta
        ),
        target,
    )
    assert "runs rollup 'beta', not 'alpha'" in err
    err = _refused_start(
        _replica_argv(small_devnet, target, ready2, "--from-snapshot", str(path)),
        target,
    )
    assert "--from-snapshot needs --source-node" in err


def _alter_balance(store: Path, rehash: bool) -> None:
    """Add 1 to some balance in a node store (keys as rollup_node/store.py lists
    them); with `rehash`, rewrite its accumulator and its root at its height to match."""
    db = plyvel.DB(str(store))
    key, value = next(iter(db.iterator(prefix=b"sbal:")))
    db.put(key, (int.from_bytes(value, "big") + 1).to_bytes(8, "big"))
    if rehash:
        meta = db.get(b"m")
        acc = compute_accumulator((k[1:], v) for k, v in db.iterator(prefix=b"s"))
        db.put(b"m", meta[:40] + encode_accumulator(acc))
        db.put(b"R" + meta[:8], compute_state_root(acc))
    db.close()


BAD_NAMES = ("../x", "", "a" * 65, ".", "..", ".hidden", "a/b", "/tmp/x", "x\x00", "é")


def test_hostile_snapshot_requests_are_refused_and_write_nothing_outside(
    small_devnet: Manifest,
) -> None:
    procs = {name: small_devnet.get(name) for name in ("sequencer", "alpha")}
    top = Path(small_devnet.data_dir)
    outside_before = sorted(p.name for p in top.parent.iterdir())
    folders = {name: Path(rec.data_dir) / "snapshots" for name, rec in procs.items() if rec}
    saved = {  # what other tests saved here stays
        name: {p.name for p in f.iterdir()} if f.exists() else set() for name, f in folders.items()
    }

    async def code(endpoint: str, name: str, height: int, timeout: float = 30.0) -> Any:
        async with SnapshotClient(endpoint) as s:
            try:
                await s.save(name, height, timeout=timeout)
            except aio.AioRpcError as e:
                return e.code(), e.details()
            return grpc.StatusCode.OK, ""

    async def run() -> None:
        for name, rec in procs.items():
            assert rec is not None
            ep = rec.endpoint
            async with Client(_endpoint(small_devnet, "sequencer")) as c:
                head = int((await c.status()).height)
            for bad in BAD_NAMES:
                got, details = await code(ep, bad, head + 5)
                assert got == grpc.StatusCode.INVALID_ARGUMENT and "snapshot name" in details
            assert (await code(ep, "zero", 0))[0] == grpc.StatusCode.INVALID_ARGUMENT
            far = await code(ep, "far", head + 10**9)
            assert far[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "blocks past" in far[1]
            assert (await code(ep, "dup", head + 10)) == (grpc.StatusCode.OK, "")
            saved[name].add("dup")
            again = await code(ep, "dup", head + 20)
            assert again[0] == grpc.StatusCode.ALREADY_EXISTS and "'dup' exists" in again[1]
            # One at a time: a request waiting for its height (200 blocks away) holds the
            # slot until its caller gives up; then the slot is free and nothing is left.
            async with Client(_endpoint(small_devnet, "sequencer")) as c:
                now = int((await c.status()).height)
            waiting = asyncio.create_task(code(ep, "slow", now + 200, timeout=1.5))
            await asyncio.sleep(0.5)
            busy = await code(ep, "other", now + 150)
            assert busy[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "one at a time" in busy[1]
            assert (await waiting)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
            await asyncio.sleep(0.2)
            async with Client(_endpoint(small_devnet, "sequencer")) as c:
                now = int((await c.status()).height)
            assert (await code(ep, "after", now + 10)) == (grpc.StatusCode.OK, "")
            saved[name].add("after")

        # A height in the past: the log up to it is still there; a node's state is not.
        assert (await code(_endpoint(small_devnet, "sequencer"), "old", 1))[0] == grpc.StatusCode.OK
        saved["sequencer"].add("old")
        past = await code(_endpoint(small_devnet, "alpha"), "old", 1)
        assert past[0] == grpc.StatusCode.FAILED_PRECONDITION
        assert "has applied up to height" in past[1] and "past 1" in past[1]

    asyncio.run(run())

    for name, folder in folders.items():
        assert {p.name for p in folder.iterdir()} == saved[name], name
        assert not (folder.parent / "x").exists()
    assert not (top / "x").exists() and not Path("/tmp/x/snapshots").exists()
    assert sorted(p.name for p in top.parent.iterdir()) == outside_before
    old = plyvel.DB(str(Path(procs["sequencer"].data_dir) / "snapshots" / "old"))  # type: ignore[union-attr]
    assert int.from_bytes(old.get(b"H")[:8], "big") == 1
    old.close()
