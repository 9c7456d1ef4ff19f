"""The parts of a snapshot below the processes, on real LevelDB directories in
tmp_path: the name rule, the one-at-a-time snapshot folder, copying a closed
store's files, the sequencer's copy of its log up to a height, and a node's
follower freezing its store right after the height asked (not before, not after)
while it goes on applying blocks. Pre-state, operation, post-state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import plyvel
import pytest
from statesupport import ALICE, BOB, GENESIS, GENESIS_HASH, transfer

from rollup_node.follower import Follower
from rollup_node.store import NodeStore
from sequencer.store import LevelDBBlockStore
from xrollup.codec import encode_entry
from xrollup.errors import AlreadyExists, InvalidInput, LimitExceeded, Refused
from xrollup.keys import derive_rollup_vote_key, derive_sequencer_key
from xrollup.model import Entry
from xrollup.snapshots import SnapshotDir, copy_store_files, validate_snapshot_name
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block

# ---------------------------------------------------------------- names and the folder


@pytest.mark.parametrize("name", ["a", "snap-1", "s.2024_01", "A" * 64, "_x", "-"])
def test_names_of_1_to_64_safe_characters_are_accepted(name: str) -> None:
    validate_snapshot_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "a" * 65, "x\x00", "é", "a b", "a\\b"],
)
def test_paths_and_other_names_are_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput, match="snapshot name"):
        validate_snapshot_name(name)


def test_a_reserved_copy_appears_under_its_name_only_when_committed(tmp_path: Path) -> None:
    snaps = SnapshotDir(tmp_path)
    res = snaps.reserve("one")
    res.partial.mkdir()
    (res.partial / "f").write_text("x")
    assert not (tmp_path / "snapshots" / "one").exists()

    path = res.commit()

    assert path == tmp_path / "snapshots" / "one" and (path / "f").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["one"]


def test_one_snapshot_at_a_time_and_an_existing_name_is_refused(tmp_path: Path) -> None:
    snaps = SnapshotDir(tmp_path)
    first = snaps.reserve("one")
    with pytest.raises(LimitExceeded, match="one at a time"):
        snaps.reserve("two")
    first.partial.mkdir()
    first.commit()

    with pytest.raises(AlreadyExists, match="'one' exists already"):
        snaps.reserve("one")
    second = snaps.reserve("two")  # the refusals released the slot
    second.partial.mkdir()
    second.abandon()

    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["one"]
    snaps.reserve("two").abandon()


def test_the_folder_keeps_a_bounded_number_and_drops_partial_leftovers(tmp_path: Path) -> None:
    (tmp_path / "snapshots" / ".partial-dead").mkdir(parents=True)
    snaps = SnapshotDir(tmp_path, keep=2)
    assert not (tmp_path / "snapshots" / ".partial-dead").exists()
    for name in ("a", "b"):
        res = snaps.reserve(name)
        res.partial.mkdir()
        res.commit()

    with pytest.raises(LimitExceeded, match="2 snapshots kept"):
        snaps.reserve("c")


def test_a_store_copy_opens_on_its_own_and_leaves_the_original_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    db = plyvel.DB(str(src), create_if_missing=True)
    for i in range(2000):
        db.put(b"k%05d" % i, b"v" * 100)
    db.compact_range()
    db.close()
    (src / "snapshots").mkdir()  # a node's own snapshots are not part of its store

    copy_store_files(src, tmp_path / "dst")

    copy = plyvel.DB(str(tmp_path / "dst"))
    copy.put(b"k00000", b"changed")
    copy.compact_range()
    copy.close()
    original = plyvel.DB(str(src))
    assert original.get(b"k00000") == b"v" * 100 and original.get(b"k01999") == b"v" * 100
    original.close()
    assert not (tmp_path / "dst" / "snapshots").exists()
    with pytest.raises(AlreadyExists):
        copy_store_files(src, tmp_path / "dst")


# ---------------------------------------------------------------- the sequencer's log


def _block(height: int, parent: bytes, entries: Sequence[Entry] = ()) -> pb.Block:
    wire = [encode_entry(e) for e in entries]
    key = derive_sequencer_key()
    return seal_block(wire, height, parent, 1_700_000_000_000 + height, GENESIS, GENESIS_HASH, key)


def test_the_log_copy_holds_blocks_and_ids_up_to_the_height_with_that_head(tmp_path: Path) -> None:
    store = LevelDBBlockStore(tmp_path / "seq", sync=False)
    parent = store.head()[1]
    for h in range(1, 6):
        block = _block(h, parent)
        store.append(block, [bytes([h]) * 32])
        parent = bytes(block.hash)
    at3 = store.get_block(3)
    assert at3 is not None

    block_hash, keys = store.save_copy(3, tmp_path / "copy")
    store.append(_block(6, parent), [b"\x06" * 32])  # the original goes on

    copy = LevelDBBlockStore(tmp_path / "copy")
    # blocks, ids, the per-height id lists (for retention) and the head
    assert block_hash == pb.Block.FromString(at3).hash and keys == 3 + 3 + 3 + 1
    assert copy.head() == (3, block_hash)
    assert [copy.get_block(h) for h in (1, 2, 3)] == [store.get_block(h) for h in (1, 2, 3)]
    assert copy.find(b"\x03" * 32) == (3, 0) and copy.find(b"\x04" * 32) is None
    assert copy.get_block(4) is None
    copy.close()
    store.close()


# ---------------------------------------------------------------- a node's store


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[Follower]:
    store = NodeStore(tmp_path / "alpha", GENESIS_HASH)
    key = derive_rollup_vote_key("alpha")
    yield Follower(store, GENESIS, "alpha", "127.0.0.1:1", key, full_stream=True)  # whole blocks
    store.close()


def _apply(follower: Follower, entries: Sequence[Entry] = ()) -> None:
    height = follower.applied.height + 1
    assert follower.apply(_block(height, follower.applied.block_hash, entries)) is not None


def test_a_node_freezes_its_store_right_after_the_height_asked(
    follower: Follower, tmp_path: Path
) -> None:
    due = follower.request_snapshot(2)
    _apply(follower, [transfer(ALICE, BOB.address, "USDC", 5, nonce=1)])
    assert not due.done()

    _apply(follower, [transfer(ALICE, BOB.address, "USDC", 7, nonce=2)])
    assert due.done()
    _apply(follower, [transfer(ALICE, BOB.address, "USDC", 9, nonce=3)])  # after the freeze

    frozen, applied, root = due.result(timeout=5)
    keys = frozen.save_copy(tmp_path / "copy")
    frozen.close()
    assert applied.height == 2 and root == follower.store.get_root(2)
    assert root != follower.store.get_root(3)
    copy = NodeStore(tmp_path / "copy", GENESIS_HASH)
    copied = copy.applied()
    assert copied is not None and (copied.height, copied.block_hash) == (2, applied.block_hash)
    assert copy.get_root(2) == root and copy.get_root(3) is None
    assert keys > 0
    copy.close()


def test_a_node_asked_for_its_applied_height_freezes_at_once_and_past_it_refuses(
    follower: Follower,
) -> None:
    _apply(follower)
    _apply(follower)

    now = follower.request_snapshot(2).result(timeout=5)
    past = follower.request_snapshot(1)

    now[0].close()
    assert now[1].height == 2
    with pytest.raises(Refused, match="applied up to height 2, past 1"):
        past.result(timeout=5)


def test_a_cancelled_request_is_dropped(follower: Follower) -> None:
    due = follower.request_snapshot(1)
    assert due.cancel()

    _apply(follower)

    assert due.cancelled() and follower._snapshot_due is None
