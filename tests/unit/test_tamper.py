"""The byzantine fault tools' block tampering (devnet/tamper.py), pure: each mode
gives what it says, and a node's checks (xrollup/verify.py, the decision rule)
refuse it with the mode's code. The same checks against real processes:
tests/integration/test_byzantine.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devnet import tamper
from xrollup import codec
from xrollup.blocks import GENESIS_PARENT, BlockRefused, RefusalCode, compute_id
from xrollup.client import build_bundle, build_transfer
from xrollup.decisions import BundleTracker
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, Limits, compute_genesis_hash, dev_genesis
from xrollup.keys import derive_dev_account, derive_keypair, derive_sequencer_key
from xrollup.model import Bundle, Decision, Leg, ReasonCode, Transfer
from xrollup.numeric import Amount
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import (
    compute_entry_spaces,
    filter_block,
    is_signed_header,
    seal_block,
    verify_block,
)

A, B = derive_dev_account(0), derive_dev_account(1)


def entries(n_tx: int = 2, bundle: bool = True) -> list[pb.Entry]:
    out = [
        codec.encode_canonical_tx(
            build_transfer(A, "alpha", B.address, "USDC", 1 + i, 100, nonce=i)
        )
        for i in range(n_tx)
    ]
    if bundle:
        legs = [
            Leg(r, A.address, Transfer(B.address, "USDC", Amount(3))) for r in ("alpha", "beta")
        ]
        out.append(codec.encode_canonical_bundle(build_bundle(legs, [A], 100, nonce=7)))
    return out


def sealed(genesis: Genesis, wire: list[pb.Entry], height: int = 1, term: int = 0) -> pb.Block:
    return seal_block(
        wire,
        height,
        GENESIS_PARENT,
        1_700_000_000_000,
        genesis,
        compute_genesis_hash(genesis),
        derive_sequencer_key(),
        term,
    )


def verify(genesis: Genesis, msg: pb.Block) -> None:
    """As a node that applied every height below msg's (sealed on GENESIS_PARENT)."""
    verify_block(msg, genesis, compute_genesis_hash(genesis), msg.header.height, GENESIS_PARENT)


def refusal(genesis: Genesis, msg: pb.Block) -> RefusalCode:
    with pytest.raises(BlockRefused) as e:
        verify(genesis, msg)
    return e.value.code


def test_corrupt_flips_one_byte_of_each_signed_entry_and_keeps_the_header() -> None:
    g = dev_genesis()
    honest = sealed(g, entries())
    [bad] = tamper.Tamperer(g).apply(tamper.CORRUPT, honest)
    assert (bad.header, bad.hash, bad.signature) == (honest.header, honest.hash, honest.signature)
    for mine, theirs in zip(bad.entries, honest.entries, strict=True):
        kind = mine.WhichOneof("kind")
        ms = getattr(mine, kind).signatures[0].signature
        ts = getattr(theirs, kind).signatures[0].signature
        assert sum(x != y for x, y in zip(ms, ts, strict=True)) == 1
    assert refusal(g, bad) == RefusalCode.BAD_COMMITMENT


def test_corrupt_passes_a_block_with_nothing_signed_unchanged() -> None:
    g = dev_genesis()
    honest = sealed(g, [])
    assert tamper.Tamperer(g).apply(tamper.CORRUPT, honest) == [honest]


def test_forge_block_is_not_signed_by_the_sequencer_key() -> None:
    g = dev_genesis()
    honest = sealed(g, entries())
    [bad] = tamper.Tamperer(g).apply(tamper.FORGE_BLOCK, honest)
    assert list(bad.entries) == list(honest.entries)
    assert not is_signed_header(bad, g, compute_genesis_hash(g))
    assert refusal(g, bad) == RefusalCode.BAD_SIGNATURE


def replay_decisions(msg: pb.Block, genesis: Genesis) -> None:
    """The log's bundles and decisions through the shared rule, as a node does."""
    t = BundleTracker(genesis.limits.bundle_deadline_blocks)
    block = codec.decode_block(msg)
    for e in block.entries:
        if isinstance(e, Bundle):
            t.observe_bundle(e.id, e.rollups, block.height)
        elif isinstance(e, Decision):
            t.observe_decision(e, block.height)


def test_forge_decision_is_validly_signed_and_contradicts_the_votes() -> None:
    g = dev_genesis()
    honest = sealed(g, entries())
    [bad] = tamper.Tamperer(g).apply(tamper.FORGE_DECISION, honest)
    verify(g, bad)  # the sequencer's key, committed: only the decision rule catches it
    assert list(bad.entries[:-1]) == list(honest.entries)
    decision = bad.entries[-1].decision
    assert decision.bundle_id == compute_id(honest.entries[-1].bundle.body)
    assert (decision.commit, decision.code) == (True, ReasonCode.ALL_YES)
    with pytest.raises(BlockRefused) as e:
        replay_decisions(bad, g)
    assert e.value.code == RefusalCode.BAD_DECISION
    assert "no vote yet" in str(e.value)


def test_forge_decision_without_a_bundle_decides_the_last_one_seen() -> None:
    # A node judges only the decisions of bundles it tracks, so a forged decision
    # targets a bundle the stream ordered: none yet, the block passes unchanged.
    g = dev_genesis()
    t = tamper.Tamperer(g)
    empty = sealed(g, entries(bundle=False), height=2)
    assert t.apply(tamper.FORGE_DECISION, empty) == [empty]
    with_bundle = sealed(g, entries(), height=1)
    t.apply(tamper.FORGE_DECISION, with_bundle)
    [bad] = t.apply(tamper.FORGE_DECISION, empty)
    assert t.apply(tamper.FORGE_DECISION, empty) == [bad]  # the same for every retry
    verify(g, bad)
    assert bad.entries[-1].decision.bundle_id == compute_id(with_bundle.entries[-1].bundle.body)


def test_forge_decision_never_targets_a_bundle_ordered_at_or_above_the_block() -> None:
    # A node sent a height again (after a refusal, a restart; or a replica behind
    # the primary on the same rollup's list) has not seen the bundles ordered later:
    # a decision on them it would ignore, applying a second signed block at that
    # height (equivocation, found by the full fault suite). Such a block passes.
    g = dev_genesis()
    t = tamper.Tamperer(g)
    t.apply(tamper.FORGE_DECISION, sealed(g, entries(), height=5))
    again = sealed(g, entries(bundle=False), height=5)
    assert t.apply(tamper.FORGE_DECISION, again) == [again]
    earlier = sealed(g, entries(bundle=False), height=3)
    assert t.apply(tamper.FORGE_DECISION, earlier) == [earlier]


def test_forge_decision_stays_within_the_block_byte_budget() -> None:
    wire = entries(n_tx=3)
    size = sum(e.ByteSize() for e in wire)
    g = replace(dev_genesis(), limits=Limits(max_block_bytes=size + 10))
    honest = sealed(g, wire)
    [bad] = tamper.Tamperer(g).apply(tamper.FORGE_DECISION, honest)
    assert bad.header.byte_count <= g.limits.max_block_bytes
    assert bad.entries[-1].WhichOneof("kind") == "decision"
    verify(g, bad)


@pytest.mark.parametrize("wire", [entries(), []], ids=["entries", "empty"])
def test_equivocate_sends_the_honest_block_then_another_signed_one(wire: list[pb.Entry]) -> None:
    g = dev_genesis()
    honest = sealed(g, wire)
    first, second = tamper.Tamperer(g).apply(tamper.EQUIVOCATE, honest)
    assert first == honest
    assert second.header.height == honest.header.height
    assert second.header.parent_hash == honest.header.parent_hash
    assert second.hash != honest.hash
    verify(g, second)  # a valid block for the same height: evidence, not a forgery


@pytest.mark.parametrize("rollup", ["", "alpha"])
def test_every_mode_keeps_the_leader_term_of_the_block_it_replaces(rollup: str) -> None:
    """An HA leader's block (term 7) tampered with is still of term 7: the node
    refuses it for the mode's reason, never as a superseded leader's (STALE_TERM)."""
    g = dev_genesis()
    gh = compute_genesis_hash(g)
    honest = sealed(g, entries(), term=7)
    if rollup:
        honest = filter_block(honest, compute_entry_spaces(honest.entries, g.rollup_names), rollup)
    t = tamper.Tamperer(g)
    for mode in tamper.MODES:
        *_, out = t.apply(mode, honest, rollup)
        assert out.header.term == 7, mode
        if mode != tamper.FORGE_BLOCK:  # the forger's key: not the sequencer's signature
            assert is_signed_header(out, g, gh), mode
        try:
            verify_block(out, g, gh, 1, GENESIS_PARENT, rollup or None, min_term=7)
            replay_decisions(out, g)
        except BlockRefused as e:
            assert e.code == RefusalCode[tamper.EXPECTED_REFUSAL[mode]], mode
        else:
            assert mode == tamper.EQUIVOCATE  # its second block verifies: evidence


def test_modes_that_sign_as_the_sequencer_need_the_dev_key() -> None:
    other = replace(dev_genesis(), sequencer_key=derive_keypair("not-the-dev-key").public_key)
    for mode in tamper.SIGNING_MODES:
        with pytest.raises(InvalidInput, match="dev sequencer key"):
            tamper.require_signing_key(other, mode)
        tamper.require_signing_key(dev_genesis(), mode)
    for mode in set(tamper.MODES) - set(tamper.SIGNING_MODES):
        tamper.require_signing_key(other, mode)
    with pytest.raises(InvalidInput, match="unknown byzantine mode"):
        tamper.check_mode("lie")


# ---------------------------------------------------------------- filtered streams


@pytest.mark.parametrize("rollup", ["alpha", "beta"])
def test_each_mode_on_a_stream_filtered_to_one_rollup(rollup: str) -> None:
    """The relay tampers what the sequencer streams to `rollup`'s nodes: each mode
    is still refused by a node verifying that filtered stream, with the mode's code
    (equivocate: the second block is a valid, signed one for the same height)."""
    g = dev_genesis()
    gh = compute_genesis_hash(g)
    wire = [
        *entries(),
        codec.encode_canonical_tx(build_transfer(B, "beta", A.address, "ETH", 1, 100, nonce=9)),
    ]
    honest = sealed(g, wire)
    sent = filter_block(honest, compute_entry_spaces(honest.entries, g.rollup_names), rollup)
    assert 0 < len(sent.entries) < len(honest.entries)
    verify_block(sent, g, gh, 1, GENESIS_PARENT, rollup)

    def refused(msg: pb.Block) -> BlockRefused:
        with pytest.raises(BlockRefused) as e:
            verify_block(msg, g, gh, 1, GENESIS_PARENT, rollup)
            replay_decisions(msg, g)
        return e.value

    t = tamper.Tamperer(g)
    for mode in (tamper.CORRUPT, tamper.FORGE_BLOCK, tamper.FORGE_DECISION):
        [bad] = t.apply(mode, sent, rollup)
        assert refused(bad).code == RefusalCode[tamper.EXPECTED_REFUSAL[mode]], mode
    first, second = t.apply(tamper.EQUIVOCATE, sent, rollup)
    assert first == sent and second.hash != sent.hash
    verify_block(second, g, gh, 1, GENESIS_PARENT, rollup)


def test_a_filtered_block_that_withholds_or_adds_an_entry_is_refused() -> None:
    g = dev_genesis()
    gh = compute_genesis_hash(g)
    beta_tx = codec.encode_canonical_tx(
        build_transfer(B, "beta", A.address, "ETH", 1, 100, nonce=9)
    )
    honest = sealed(g, [*entries(), beta_tx])
    spaces = compute_entry_spaces(honest.entries, g.rollup_names)
    sent = filter_block(honest, spaces, "alpha")
    assert list(sent.indices) == [0, 1, 2]

    withheld = pb.Block()
    withheld.CopyFrom(sent)
    del withheld.entries[0]
    del withheld.indices[0]
    out_of_order = pb.Block()
    out_of_order.CopyFrom(sent)
    out_of_order.indices[0], out_of_order.indices[1] = sent.indices[1], sent.indices[0]
    foreign = pb.Block()  # alpha's view plus beta's transfer at its place
    foreign.CopyFrom(sent)
    foreign.entries.append(beta_tx)
    foreign.indices.append(3)
    past_the_end = pb.Block()
    past_the_end.CopyFrom(sent)
    past_the_end.entries.append(beta_tx)
    past_the_end.indices.append(len(honest.entries))
    for msg, code in (
        (withheld, RefusalCode.BAD_COMMITMENT),
        (out_of_order, RefusalCode.BAD_HEADER),
        (foreign, RefusalCode.BAD_COMMITMENT),
        (past_the_end, RefusalCode.BAD_HEADER),
    ):
        with pytest.raises(BlockRefused) as e:
            verify_block(msg, g, gh, 1, GENESIS_PARENT, "alpha")
        assert e.value.code == code, (msg.indices, e.value)
    with pytest.raises(BlockRefused) as e:  # a filtered block where a whole one was asked
        verify_block(sent, g, gh, 1, GENESIS_PARENT)
    assert e.value.code == RefusalCode.BAD_HEADER
    verify_block(honest, g, gh, 1, GENESIS_PARENT, "alpha")  # a whole one is checked whole
