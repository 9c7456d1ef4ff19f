"""A node's metrics as its follower updates them: a real Follower over a LevelDB
store in a temporary directory applies signed blocks by hand (no stream), and the
node's own registry is read back. Pre-state, blocks, post-state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from blocksupport import decision
from statesupport import ALICE, DAVE, GENESIS, GENESIS_HASH, USDC_GENESIS, signed_vote

from rollup_node.follower import Follower
from rollup_node.metrics import NodeMetrics
from rollup_node.store import NodeStore
from xrollup.blocks import BlockRefused, RefusalCode
from xrollup.client import build_bundle
from xrollup.codec import decode_bundle, encode_entry
from xrollup.keys import derive_keypair, derive_rollup_vote_key, derive_sequencer_key
from xrollup.model import Bundle, Entry, Leg, ReasonCode, Transfer
from xrollup.numeric import Amount
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block

AMOUNT = 5_000_000


def _bundle(amount: int, nonce: int) -> Bundle:
    leg = Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(amount)))
    return decode_bundle(build_bundle([leg], [ALICE], 100, nonce=nonce))


def _block(height: int, parent: bytes, entries: Sequence[Entry], key_name: str = "") -> pb.Block:
    key = derive_keypair(key_name) if key_name else derive_sequencer_key()
    wire = [encode_entry(e) for e in entries]
    return seal_block(wire, height, parent, 1_700_000_000_000 + height, GENESIS, GENESIS_HASH, key)


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[Follower]:
    store = NodeStore(tmp_path / "alpha", GENESIS_HASH)
    f = Follower(store, GENESIS, "alpha", "127.0.0.1:1", derive_rollup_vote_key("alpha"))
    f.metrics = NodeMetrics(f)
    yield f
    store.close()


def test_blocks_update_heights_bundles_escrow_and_decision_latency(follower: Follower) -> None:
    assert follower.metrics is not None
    sample = follower.metrics.registry.get_sample_value
    assert sample("xrollup_node_info", {"rollup": "alpha"}) == 1
    assert sample("xrollup_node_applied_height") == 0
    assert sample("xrollup_node_escrow_held_base_units", {"asset": "USDC"}) == 0
    assert sample("xrollup_node_escrow_held_base_units", {"asset": "ETH"}) == 0

    # Block 1: one bundle alpha can pay (votes yes, escrows AMOUNT), one it cannot.
    good, thin = _bundle(AMOUNT, 1), _bundle(USDC_GENESIS + 1, 2)
    first = _block(1, follower.applied.block_hash, [good, thin])
    done = follower.apply(first)
    assert done is not None
    votes = done[1]
    assert [(v.yes, v.code) for v in votes] == [
        (True, ReasonCode.NONE),
        (False, ReasonCode.INSUFFICIENT_FUNDS),
    ]
    assert sample("xrollup_node_applied_height") == 1
    assert sample("xrollup_node_bundles_total", {"outcome": "prepared", "reason": "NONE"}) == 1
    assert (
        sample(
            "xrollup_node_bundles_total",
            {"outcome": "prepared", "reason": "INSUFFICIENT_FUNDS"},
        )
        == 1
    )
    assert sample("xrollup_node_escrow_held_base_units", {"asset": "USDC"}) == AMOUNT
    # The count kept per block equals what a scan of the escrows finds at start.
    assert NodeMetrics(follower).escrow_held == {"ETH": 0, "USDC": AMOUNT}

    # Block 2: alpha's vote, then the decisions the votes give.
    vote = signed_vote("alpha", 1, votes)
    second = _block(
        2,
        follower.applied.block_hash,
        [vote, decision(good.id, True), decision(thin.id, False)],
    )
    follower.apply(second)
    assert sample("xrollup_node_applied_height") == 2
    assert sample("xrollup_node_bundles_total", {"outcome": "committed", "reason": "ALL_YES"}) == 1
    # An abort after this rollup's own no keeps the reason of the no.
    assert (
        sample("xrollup_node_bundles_total", {"outcome": "aborted", "reason": "INSUFFICIENT_FUNDS"})
        == 1
    )
    assert sample("xrollup_node_escrow_held_base_units", {"asset": "USDC"}) == 0
    assert sample("xrollup_node_decision_latency_blocks_count") == 2
    assert sample("xrollup_node_decision_latency_blocks_sum") == 2  # decided 1 block later
    assert sample("xrollup_node_decision_latency_blocks_bucket", {"le": "1.0"}) == 2
    assert sample("xrollup_node_apply_seconds_count") == 2
    assert sample("xrollup_node_lag_blocks") == 0
    assert sample("xrollup_node_votes_sent_total") == 0
    assert sample("xrollup_node_vote_retries_total") == 0


def test_a_refused_block_is_counted_by_its_code(follower: Follower) -> None:
    assert follower.metrics is not None
    sample = follower.metrics.registry.get_sample_value
    forged = _block(1, follower.applied.block_hash, [], key_name="forger")
    with pytest.raises(BlockRefused) as refused:
        follower.apply(forged)
    assert refused.value.code == RefusalCode.BAD_SIGNATURE
    follower._refuse(refused.value)  # what the stream loop does with it

    assert sample("xrollup_node_refused_blocks_total", {"code": "BAD_SIGNATURE"}) == 1
    assert sample("xrollup_node_applied_height") == 0
    assert sample("xrollup_node_apply_seconds_count") == 0
