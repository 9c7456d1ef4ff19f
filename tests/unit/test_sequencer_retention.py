"""The sequencer's retention: which heights may go (sequencer/core/retention.py,
pure), the block store deleting blocks and ids from the bottom with their per-height
id lists (real LevelDB), and the runtime answering for what is gone and keeping its
decoded recent blocks within a byte budget."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from sequencer import runtime
from sequencer.core.retention import KeepFrom, compute_keep_from
from sequencer.runtime import Pruned, Sequencer
from sequencer.store import LevelDBBlockStore
from xrollup.blocks import GENESIS_PARENT
from xrollup.errors import NotFound, Refused
from xrollup.genesis import Limits, dev_genesis
from xrollup.keys import derive_sequencer_key
from xrollup.v1 import types_pb2 as pb

GENESIS = dev_genesis()
LIMITS = dataclasses.replace(Limits(), bundle_deadline_blocks=10, max_expiry_window=100)


# ---------------------------------------------------------------- what may go (pure)


def test_nothing_goes_without_a_floor_or_with_retention_off() -> None:
    assert compute_keep_from(10_000, 0, 9_000, LIMITS) == KeepFrom(1, 1)
    assert compute_keep_from(10_000, 50, 0, LIMITS) == KeepFrom(1, 1)


def test_blocks_go_below_the_lower_of_the_floor_and_the_window() -> None:
    # the floor holds: a node at 500 needs 501 on, and its own block is kept
    assert compute_keep_from(1_000, 50, 500, LIMITS).blocks == 500
    # the window holds: the last 50 blocks stay whatever the floor
    assert compute_keep_from(1_000, 50, 2_000, LIMITS).blocks == 951
    # never fewer than the deadline window (+ 1), which a restart reads again
    assert compute_keep_from(1_000, 3, 2_000, LIMITS).blocks == 1_000 - 11 + 1


def test_ids_stay_for_the_expiry_window_and_while_their_block_does() -> None:
    keep = compute_keep_from(1_000, 50, 2_000, LIMITS)
    # an entry ordered at 900 could expire at 1_000 at the latest: resubmitted at
    # head + 1 = 1_001 it is refused as expired, so ids below 901 may go
    assert keep.ids == 901
    assert compute_keep_from(1_000, 50, 300, LIMITS).ids == 300  # not before its block


# ---------------------------------------------------------------- the store


def _block(height: int, parent: bytes, ids: int) -> tuple[pb.Block, list[bytes]]:
    h = bytes([height % 256]) * 32
    block = pb.Block(header=pb.BlockHeader(height=height, parent_hash=parent), hash=h)
    return block, [height.to_bytes(8, "big") + bytes([i]) * 24 for i in range(ids)]


def _fill(store: LevelDBBlockStore, top: int, ids: int = 2) -> None:
    parent = GENESIS_PARENT
    for h in range(1, top + 1):
        block, block_ids = _block(h, parent, ids)
        store.append(block, block_ids)
        parent = block.hash


def test_the_store_deletes_blocks_and_ids_from_the_bottom_a_step_at_a_time(
    tmp_path: Path,
) -> None:
    store = LevelDBBlockStore(tmp_path / "seq", sync=False)
    _fill(store, 30)
    _, ids_of_5 = _block(5, b"", 2)
    assert store.prune(blocks_from=20, ids_from=10, step=4) == (5, 5)
    assert store.get_block(4) is None and store.get_block(5) is not None
    assert store.find(_block(4, b"", 2)[1][0]) is None
    assert store.find(ids_of_5[0]) == (5, 0)
    assert store.prune(20, 10, 100) == (20, 10)
    assert [store.get_block(h) is not None for h in (19, 20, 30)] == [False, True, True]
    assert store.find(ids_of_5[0]) is None and store.find(_block(10, b"", 2)[1][1]) == (10, 1)
    assert len(list(store.read_from(1))) == 11  # 20..30
    assert store.prune(100, 100, 100) == (30, 30)  # never the head
    store.save_floor(25)
    store.close()
    reopened = LevelDBBlockStore(tmp_path / "seq", sync=False)
    assert (reopened.first_height(), reopened.load_floor(), reopened.head()[0]) == (30, 25, 30)
    reopened.close()


def test_a_copy_of_a_pruned_log_starts_at_its_first_block(tmp_path: Path) -> None:
    store = LevelDBBlockStore(tmp_path / "seq", sync=False)
    _fill(store, 12)
    store.prune(8, 6, 100)
    with pytest.raises(Refused, match="block 7 is pruned: this sequencer keeps blocks from 8"):
        store.save_copy(7, tmp_path / "early")
    store.save_copy(10, tmp_path / "copy")
    store.close()
    copy = LevelDBBlockStore(tmp_path / "copy", sync=False)
    assert (copy.first_height(), copy.head()[0]) == (8, 10)
    assert (
        copy.find(_block(6, b"", 2)[1][0]) == (6, 0) and copy.find(_block(11, b"", 2)[1][0]) is None
    )
    assert copy.prune(10, 10, 100) == (10, 10)  # its id lists came along: it prunes too
    assert copy.find(_block(6, b"", 2)[1][0]) is None
    copy.close()


# ---------------------------------------------------------------- the runtime


def test_the_runtime_prunes_behind_the_floor_and_says_what_is_gone(tmp_path: Path) -> None:
    store = LevelDBBlockStore(tmp_path / "seq", sync=False)
    genesis = dataclasses.replace(GENESIS, limits=LIMITS)
    seq = Sequencer(genesis, store, derive_sequencer_key())
    seq.retain_blocks = 5

    async def run() -> None:
        for _ in range(30):
            await seq.seal_block()
        assert seq.first_height == 1  # no floor yet: nothing goes
        await seq.set_prune_floor(12)
        for _ in range(3):
            await seq.seal_block()
            await asyncio.sleep(0.05)  # the pruner's step
        assert seq.first_height == 12
        with pytest.raises(Pruned, match="block 11 is pruned: this sequencer keeps blocks from 12"):
            seq.get_block(11)
        with pytest.raises(Pruned):
            seq.get_filtered_block(3, "alpha")
        assert seq.get_block(12).header.height == 12
        with pytest.raises(NotFound, match="no block at height 99"):
            seq.get_block(99)
        await seq.stop()

    try:
        asyncio.run(run())
    finally:
        store.close()
    reopened = LevelDBBlockStore(tmp_path / "seq")
    assert reopened.load_floor() == 12  # kept across restarts
    reopened.close()


def test_recent_blocks_are_bounded_in_bytes_as_well_as_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "RECENT_BYTES", 250)
    store = LevelDBBlockStore(tmp_path / "seq", sync=False)
    seq = Sequencer(GENESIS, store, derive_sequencer_key())
    for h in range(1, 8):
        block = pb.Block(header=pb.BlockHeader(height=h, byte_count=100))
        seq._remember_recent(block, [])
    assert [b.header.height for b in seq._recent] == [6, 7]
    assert seq._recent_bytes == 200 and len(seq._recent_spaces) == 2
    big = pb.Block(header=pb.BlockHeader(height=8, byte_count=1_000))
    seq._remember_recent(big, [])
    assert [b.header.height for b in seq._recent] == [8]  # the newest stays, whatever its size
    store.close()
