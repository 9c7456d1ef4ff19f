"""Leader terms on the node (rollup_node/follower.py): a real Follower over a
LevelDB store in a temporary directory applies signed blocks by hand (no
stream). A signed block of a lower term than the one it competes with is a
superseded leader's (an HA sequencer's old leader): refused STALE_TERM at the
next height, at a later one, on another parent and at a height already applied;
nothing is applied, no evidence is kept and the node keeps following. Pre-state,
block, post-state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from statesupport import ALICE, DAVE, GENESIS, GENESIS_HASH, transfer

from rollup_node.follower import Follower
from rollup_node.store import NodeStore
from xrollup.blocks import BlockRefused, RefusalCode
from xrollup.codec import encode_entry
from xrollup.keys import derive_keypair, derive_rollup_vote_key, derive_sequencer_key
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block


def block(height: int, parent: bytes, term: int, nonce: int, key_name: str = "") -> pb.Block:
    """A block of one alpha transfer (`nonce` tells blocks apart), signed for `term`."""
    key = derive_keypair(key_name) if key_name else derive_sequencer_key()
    wire = [encode_entry(transfer(ALICE, DAVE.address, "USDC", 1, nonce=nonce))]
    ts = 1_700_000_000_000 + height
    return seal_block(wire, height, parent, ts, GENESIS, GENESIS_HASH, key, term)


def open_follower(path: Path) -> tuple[Follower, NodeStore]:
    store = NodeStore(path, GENESIS_HASH)
    return Follower(store, GENESIS, "alpha", "127.0.0.1:1", derive_rollup_vote_key("alpha")), store


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Follower, list[pb.Block]]]:
    """A node that applied block 1 of term 5 and block 2 of term 6 (a failover
    between them): the blocks it applied."""
    f, store = open_follower(tmp_path / "alpha")
    assert f.term == 0  # genesis
    applied = []
    for height, term in ((1, 5), (2, 6)):
        msg = block(height, f.applied.block_hash, term, nonce=height)
        assert f.apply(msg) is not None
        assert f.term == term
        applied.append(msg)
    yield f, applied
    store.close()


def refuse(f: Follower, msg: pb.Block) -> BlockRefused:
    """Apply `msg`, which must be refused with nothing changed on the node."""
    height = f.applied.height
    before = (f.applied, f.state_root, f.term, f.store.get_root(height))
    with pytest.raises(BlockRefused) as err:
        f.apply(msg)
    assert (f.applied, f.state_root, f.term, f.store.get_root(height)) == before
    assert f.store.get_root(height + 1) is None
    return err.value


def assert_still_following(f: Follower, applied: list[pb.Block]) -> None:
    """No evidence kept, not halted, and the honest next block applies."""
    assert not f.halted and f.store.get_equivocation() is None
    assert f.apply(block(3, applied[-1].hash, 6, nonce=3)) is not None
    assert (f.applied.height, f.term) == (3, 6)


def test_the_next_block_of_a_superseded_leader_is_refused_stale(
    node: tuple[Follower, list[pb.Block]],
) -> None:
    f, applied = node
    stale = block(3, applied[-1].hash, 5, nonce=3)

    e = refuse(f, stale)

    assert e.code == RefusalCode.STALE_TERM and e.height == 3
    assert "term 5 is below term 6" in str(e) and "superseded leader" in str(e)
    assert_still_following(f, applied)


def test_a_superseded_leaders_fork_is_stale_not_equivocation(
    node: tuple[Follower, list[pb.Block]],
) -> None:
    # The old leader (term 5) signed its own block 2, then block 3 on it: a signed
    # header for the next height on another parent, which in one term is evidence.
    f, applied = node
    its_2 = block(2, applied[0].hash, 5, nonce=20)
    its_3 = block(3, its_2.hash, 5, nonce=30)

    for msg in (its_3, block(4, its_2.hash, 5, nonce=40)):
        assert refuse(f, msg).code == RefusalCode.STALE_TERM

    assert_still_following(f, applied)


def test_a_superseded_leaders_block_at_an_applied_height_is_stale_not_equivocation(
    node: tuple[Follower, list[pb.Block]],
) -> None:
    f, applied = node
    its_2 = block(2, applied[0].hash, 5, nonce=20)  # applied 2 is term 6's

    e = refuse(f, its_2)

    assert e.code == RefusalCode.STALE_TERM and e.height == 2
    assert "term 5 is below term 6" in str(e)
    assert f.apply(applied[1]) is None  # the applied block again: ignored, as before
    assert_still_following(f, applied)


def test_two_signed_blocks_of_one_term_at_one_height_are_still_evidence(
    node: tuple[Follower, list[pb.Block]],
) -> None:
    # Block 1 was term 5's: another term-5 block 1 is that leader equivocating,
    # although the node has since seen term 6.
    f, applied = node
    other_1 = block(1, applied[0].header.parent_hash, 5, nonce=10)

    assert refuse(f, other_1).code == RefusalCode.EQUIVOCATION

    assert f.halted
    evidence = f.store.get_equivocation()
    assert evidence is not None and evidence.height == 1
    assert evidence.first.hash == applied[0].hash and evidence.second.hash == other_1.hash


def test_a_lower_term_block_not_signed_by_the_sequencer_is_refused_for_its_signature(
    node: tuple[Follower, list[pb.Block]],
) -> None:
    f, applied = node
    for msg in (
        block(3, applied[-1].hash, 5, nonce=3, key_name="forger"),
        block(2, applied[0].hash, 5, nonce=20, key_name="forger"),
    ):
        assert refuse(f, msg).code == RefusalCode.BAD_SIGNATURE
    assert_still_following(f, applied)


def test_higher_terms_apply_and_a_restarted_node_keeps_its_term(tmp_path: Path) -> None:
    f, store = open_follower(tmp_path / "alpha")
    b1 = block(1, f.applied.block_hash, 3, nonce=1)
    b2 = block(2, b1.hash, 3, nonce=2)  # the same term again
    b3 = block(3, b2.hash, 9, nonce=3)  # a later leader: terms need not be consecutive
    for msg in (b1, b2, b3):
        assert f.apply(msg) is not None
    assert f.term == 9
    store.close()

    f, store = open_follower(tmp_path / "alpha")  # the term of the applied head's header
    try:
        assert (f.applied.height, f.term) == (3, 9)
        assert refuse(f, block(4, b3.hash, 3, nonce=4)).code == RefusalCode.STALE_TERM
        assert f.apply(block(4, b3.hash, 9, nonce=4)) is not None
    finally:
        store.close()
