"""The node store's retention (rollup_node/store.py, --retain-blocks N): the batch
that saves height h deletes the root, header and receipts of height h - N, through
the per-height index of the receipts it wrote; a snapshot's root stays; turning
retention on late catches up a bounded number of heights per block. Real LevelDB."""

from __future__ import annotations

from pathlib import Path

from rollup_node.core.execute import BlockOutcome, Receipt
from rollup_node.store import PRUNE_STEP, NodeStore
from xrollup.numeric import Height
from xrollup.v1 import types_pb2 as pb

GENESIS_HASH = b"\x07" * 32


def rid(height: int, i: int) -> bytes:
    return height.to_bytes(8, "big") + i.to_bytes(4, "big") + b"\x00" * 20


def save(store: NodeStore, height: int, receipts: int = 2, again: tuple[bytes, ...] = ()) -> None:
    """Height `height` with `receipts` new receipts (and receipts for ids of `again`,
    which have one already: the first stands)."""
    rs = [Receipt(rid(height, i), height, i, True) for i in range(receipts)]
    rs += [Receipt(x, height, 99, False, "again") for x in again]
    outcome = BlockOutcome(Height(height), tuple(rs), {b"k": height.to_bytes(8, "big")})
    header = pb.Block(header=pb.BlockHeader(height=height), hash=bytes([height % 256]) * 32)
    store.save_block(outcome, b"\x00" * 32, 0, bytes([height % 256]) * 32, header)


def kept(store: NodeStore, height: int) -> tuple[bool, bool, bool]:
    """(root, header, first receipt) of `height` still there."""
    return (
        store.get_root(height) is not None,
        store.get_header(height) is not None,
        store.get_receipt(rid(height, 0)) is not None,
    )


def test_the_last_n_heights_are_kept_and_older_ones_pruned(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "n", GENESIS_HASH)
    store.retain_blocks = 3
    for h in range(1, 11):
        save(store, h)
    assert store.retained_from() == 8  # 8, 9, 10
    for h in range(1, 8):
        assert kept(store, h) == (False, False, False), h
    for h in (8, 9, 10):
        assert kept(store, h) == (True, True, True), h
        assert store.get_receipt(rid(h, 1)) is not None
    assert store.state.get(b"k") == (10).to_bytes(8, "big")  # state is never pruned here
    store.close()
    reopened = NodeStore(tmp_path / "n", GENESIS_HASH)
    assert reopened.retained_from() == 8
    reopened.close()


def test_a_receipt_that_stood_before_is_not_indexed_again(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "n", GENESIS_HASH)
    store.retain_blocks = 2
    save(store, 1)
    save(store, 2, again=(rid(1, 0),))  # the first receipt of that id stands
    save(store, 3)
    # height 1 pruned with its receipts; height 2's index named only its own ids
    assert store.get_receipt(rid(1, 0)) is None
    assert store.get_receipt(rid(2, 0)) is not None
    save(store, 4)
    assert store.get_receipt(rid(2, 0)) is None and store.get_receipt(rid(3, 0)) is not None
    store.close()


def test_the_root_of_a_snapshot_height_is_kept(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "n", GENESIS_HASH)
    store.retain_blocks = 2
    for h in range(1, 4):
        save(store, h)
    store.pin_root(3)
    for h in range(4, 9):
        save(store, h)
    assert kept(store, 3) == (True, False, False)
    assert kept(store, 2) == (False, False, False)
    store.close()


def test_retention_turned_on_late_catches_up_a_bounded_number_of_heights_per_block(
    tmp_path: Path,
) -> None:
    store = NodeStore(tmp_path / "n", GENESIS_HASH)
    for h in range(0, 60):
        save(store, h)
    assert store.retained_from() == 0  # retention off: every height
    store.retain_blocks = 5
    save(store, 60)
    assert store.retained_from() == PRUNE_STEP + 1
    assert kept(store, PRUNE_STEP) == (False, False, False)
    assert kept(store, PRUNE_STEP + 1) == (True, True, True)
    for h in range(61, 70):
        save(store, h)
    assert store.retained_from() == 65  # caught up: the last 5 heights
    assert [h for h in range(70) if kept(store, h)[0]] == [65, 66, 67, 68, 69]
    store.close()
