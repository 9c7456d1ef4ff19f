"""Snapshots of a node: its SnapshotService (a copy of the whole store right after
applying a given height, written into `<data dir>/snapshots/<name>/` on a thread
while the node keeps applying), and starting a node from another node's snapshot
(`--from-snapshot DIR --source-node HOST:PORT`): the copy's state is hashed again
from its entries, its header at h must be the sequencer's, and its root at h must
be the one the source node reports for h; only then does the node follow from h + 1."""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from pathlib import Path
from typing import Any

from grpc import aio

from rollup_node.core.root import compute_accumulator, compute_state_root
from rollup_node.follower import Follower
from rollup_node.store import Applied, Frozen, NodeStore
from xrollup.client import NodeClient
from xrollup.errors import InvalidInput, LimitExceeded, Refused
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.grpc_status import grpc_method
from xrollup.snapshots import (
    MAX_AHEAD_BLOCKS,
    SnapshotDir,
    copy_store_files,
    validate_snapshot_height,
    validate_snapshot_name,
)
from xrollup.v1 import snapshot_pb2 as snpb
from xrollup.v1 import snapshot_pb2_grpc as snpb_grpc
from xrollup.verify import is_signed_header

Context = aio.ServicerContext[Any, Any]
log = logging.getLogger(__name__)


class NodeSnapshotService(snpb_grpc.SnapshotServiceServicer):
    def __init__(self, follower: Follower, data_dir: Path) -> None:
        self.follower = follower
        self.snapshots = SnapshotDir(data_dir)

    @grpc_method
    async def SaveSnapshot(
        self, request: snpb.SaveSnapshotRequest, context: Context
    ) -> snpb.SaveSnapshotResponse:
        height = request.height
        validate_snapshot_name(request.name)
        validate_snapshot_height(height)
        f = self.follower
        applied = f.applied.height
        if height < applied:
            raise Refused(
                f"{f.rollup} node has applied up to height {applied}, past {height}: a node"
                " snapshots its state right after applying the height asked, so ask for a"
                " height it has not applied yet"
            )
        if height > max(applied, f.sequencer_height) + MAX_AHEAD_BLOCKS:
            raise LimitExceeded(
                f"snapshot height {height} is more than {MAX_AHEAD_BLOCKS} blocks past the"
                f" sequencer's head as this node knows it ({max(applied, f.sequencer_height)})"
            )
        res = self.snapshots.reserve(request.name)
        try:
            frozen, at, root = await asyncio.wrap_future(f.request_snapshot(height))
        except BaseException:  # refused, or the caller gave up waiting (cancelled)
            res.abandon()
            raise
        keys = await res.fill_shielded(functools.partial(_save_and_close, frozen))
        log.info("snapshot %r at height %d: %d keys", res.name, at.height, keys)
        return snpb.SaveSnapshotResponse(
            height=at.height,
            block_hash=at.block_hash,
            state_root=root,
            path=str(res.final),
            keys=keys,
        )


def _save_and_close(frozen: Frozen, path: Path) -> int:
    try:
        return frozen.save_copy(path)
    finally:
        frozen.close()


# ---------------------------------------------------------------- starting from a snapshot


def seed_store(snapshot: Path, data_dir: Path) -> bool:
    """Copy a node snapshot into `data_dir` when that holds no store yet; True when
    it did (False: the directory already has a store, which the node resumes)."""
    if (data_dir / "CURRENT").exists():
        return False
    if not (snapshot / "CURRENT").is_file():
        raise InvalidInput(f"--from-snapshot {snapshot}: no node snapshot there (no LevelDB store)")
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise InvalidInput(
                f"--data-dir {data_dir} is not empty and holds no store: give an empty or new"
                " directory to start from a snapshot"
            )
        data_dir.rmdir()
    copy_store_files(snapshot, data_dir)
    return True


def verify_seeded(store: NodeStore, genesis: Genesis) -> Applied:
    """The copy's own evidence: its state hashes (from every entry, not from the
    stored accumulator) to the root it stores for its height, and its header at
    that height is the sequencer's. Raise InvalidInput otherwise."""
    applied = store.applied()
    if applied is None:
        raise InvalidInput("the snapshot holds no applied height")
    h = applied.height
    acc = compute_accumulator(store.iterate_state())
    if acc != applied.accumulator or store.get_root(h) != compute_state_root(acc):
        raise InvalidInput(
            f"the snapshot's state does not hash to the root it records for height {h}:"
            " it was altered or is corrupt"
        )
    if h > 0:
        header = store.get_header(h)
        if (
            header is None
            or header.hash != applied.block_hash
            or not is_signed_header(header, genesis, compute_genesis_hash(genesis))
        ):
            raise InvalidInput(
                f"the snapshot's header at height {h} is not a block the sequencer signed"
            )
    return applied


async def verify_with_source(source: str, rollup: str, height: int, root: bytes) -> None:
    """The source node runs `rollup` and reports `root` for `height`; else InvalidInput."""
    async with NodeClient(source) as n:
        try:
            status = await n.status(timeout=10.0)
            if status.rollup != rollup:
                raise InvalidInput(
                    f"--source-node {source} runs rollup {status.rollup!r}, not {rollup!r}"
                )
            theirs = await n.state_root(height, timeout=10.0)
        except aio.AioRpcError as e:
            raise InvalidInput(
                f"--source-node {source} gave no state root for height {height}:"
                f" {e.code().name}: {e.details()}"
            ) from None
    if theirs != root:
        raise InvalidInput(
            f"the snapshot's state root at height {height} is {root.hex()}, the source node"
            f" {source} reports {theirs.hex()}: refusing to start from it"
        )


async def open_from_snapshot(
    snapshot: Path, source: str | None, data_dir: Path, genesis: Genesis, rollup: str
) -> NodeStore:
    """The node's store, seeded from `snapshot` when `data_dir` holds none yet and
    verified (verify_seeded, then verify_with_source); a refused copy is removed.
    A directory that already holds a store (a restart) is opened as it is."""
    if source is None:
        raise InvalidInput(
            "--from-snapshot needs --source-node HOST:PORT: the node of the same rollup"
            " whose state root at the snapshot's height the copy must match"
        )
    seeded = seed_store(snapshot, data_dir)
    try:
        store = NodeStore(data_dir, compute_genesis_hash(genesis))
    except BaseException:
        if seeded:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    if not seeded:
        log.info("%s holds a store already: resuming it (--from-snapshot not copied)", data_dir)
        return store
    try:
        applied = verify_seeded(store, genesis)
        root = store.get_root(applied.height)
        assert root is not None  # verify_seeded compared it
        await verify_with_source(source, rollup, applied.height, root)
    except BaseException:
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    log.info(
        "started from snapshot %s at height %d, state root %s (recomputed; %s reports the same)",
        snapshot,
        applied.height,
        root.hex()[:16],
        source,
    )
    return store
