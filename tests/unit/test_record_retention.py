"""Retention of finished records (rollup_node/core/retention.py): a bundle record,
a released or reclaimed lien, a settled or unclaimable option leave the state
limits.record_retention_blocks (R) after they became final, at the same height on
every node, through the retention index b"ret:". Pre-state, operation, post-state;
two nodes of a rollup keep equal roots at every height, and supply is conserved
throughout (Pair checks it after every block)."""

from __future__ import annotations

import dataclasses

from blocksupport import decision
from statesupport import ALICE, BOB, CAROL, GENESIS, ORACLE, Chain, Pair, price_update, transfer

from rollup_node.core import bundles, collateral, options, retention
from rollup_node.core.state import BUNDLE, LIEN, OPTION, RETIRE, MemoryState, State, retire_key
from xrollup.client import build_open_option, build_reclaim_lien, build_settle_option
from xrollup.codec import decode_bundle, decode_tx
from xrollup.genesis import UINT64_MAX
from xrollup.model import Bundle, OptionKind, ReasonCode

R = 4
GRACE = 6
EXPIRY = 5  # the option's
CLOSES = EXPIRY + GRACE  # settlement refused, the lien reclaimable, from here
STRIKE, SIZE, PREMIUM = 2_800 * 10**6, 2 * 10**9, 50 * 10**6
PAYOUT = 600 * 10**6  # at 2,500 USDC
SHORT = dataclasses.replace(
    GENESIS,
    limits=dataclasses.replace(GENESIS.limits, record_retention_blocks=R, lien_grace_blocks=GRACE),
)
KEEP_ALL = dataclasses.replace(
    SHORT, limits=dataclasses.replace(SHORT.limits, record_retention_blocks=0)
)


def open_bundle(nonce: int = 1, expiry: int = 100) -> Bundle:
    return decode_bundle(
        build_open_option(
            ALICE, BOB, OptionKind.PUT, STRIKE, SIZE, EXPIRY, PREMIUM, expiry, nonce=nonce
        )
    )


def settle_bundle(option_id: bytes, nonce: int = 2) -> Bundle:
    return decode_bundle(
        build_settle_option(CAROL, option_id, PAYOUT, BOB.address, 100, nonce=nonce)
    )


def retiring(chain: Chain) -> list[tuple[int, bytes]]:
    """The retention index: (due height, record key), in order."""
    return [
        (int.from_bytes(k[len(RETIRE) : len(RETIRE) + 8], "big"), k[len(RETIRE) + 8 :])
        for k in sorted(chain.state.items)
        if k.startswith(RETIRE)
    ]


def has(chain: Chain, key: bytes) -> bool:
    return key in chain.state.items


def test_a_finished_bundle_record_leaves_both_rollups_r_blocks_after_its_decision() -> None:
    p = Pair(SHORT)
    b = open_bundle()
    p.apply(b)  # 1: prepared on both
    assert retiring(p.alpha) == []  # a prepared record is not final
    p.decide(b.id, True)  # 2: committed
    decided = p.height
    for chain in (p.alpha, p.beta):
        assert (decided + R, BUNDLE + b.id) in retiring(chain)
    # beta's new option is scheduled at its window's close + R; alpha's lien is locked
    assert (CLOSES + R, OPTION + b.id) in retiring(p.beta)
    assert all(key != LIEN + b.id for _, key in retiring(p.alpha))

    p.skip_to(decided + R)  # the block before the due one
    assert has(p.alpha, BUNDLE + b.id) and has(p.beta, BUNDLE + b.id)
    p.apply()  # block decided + R
    assert not has(p.alpha, BUNDLE + b.id) and not has(p.beta, BUNDLE + b.id)
    assert (decided + R, BUNDLE + b.id) not in retiring(p.alpha)
    # the positions stay: the lien holds collateral, the option can still settle
    assert collateral.get_lien(State(p.alpha.state), b.id) is not None
    assert options.get_option(State(p.beta.state), b.id) is not None


def test_a_settled_option_its_released_lien_and_the_settle_record_all_leave() -> None:
    p = Pair(SHORT)
    b = open_bundle()
    p.apply(b)
    p.decide(b.id, True)
    p.skip_to(EXPIRY)
    p.apply(price_update(ORACLE, "ETH", "USDC", 2_500 * 10**6, nonce=9, rollup="beta"))
    s = settle_bundle(b.id)
    p.apply(s)
    p.decide(s.id, True)
    settled = p.height
    assert options.get_option(State(p.beta.state), b.id).status == options.SETTLED  # type: ignore[union-attr]
    assert (settled + R, LIEN + b.id) in retiring(p.alpha)
    assert (settled + R, OPTION + b.id) in retiring(p.beta)

    p.skip_to(settled + R + 1)
    for chain in (p.alpha, p.beta):
        for key in (BUNDLE + b.id, BUNDLE + s.id, LIEN + b.id, OPTION + b.id):
            assert not has(chain, key), (chain.rollup, key[:4])
    # beta's second entry for the option (its window's close) finds it gone
    p.skip_to(CLOSES + R + 1)
    assert retiring(p.alpha) == [] and retiring(p.beta) == []


def test_an_unsettled_option_leaves_at_its_window_close_and_its_lien_only_once_reclaimed() -> None:
    p = Pair(SHORT)
    b = open_bundle()
    p.apply(b)
    p.decide(b.id, True)
    p.skip_to(CLOSES + R + 2)
    assert not has(p.beta, OPTION + b.id)  # no longer settleable: final, and gone
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.LOCKED  # the owner's exit stays
    reclaim = decode_tx(build_reclaim_lien(ALICE, b.id, 100))
    (out, _) = p.apply(reclaim)
    assert out.receipts[0].ok
    reclaimed = p.height
    assert (reclaimed + R, LIEN + b.id) in retiring(p.alpha)
    p.skip_to(reclaimed + R + 1)
    assert not has(p.alpha, LIEN + b.id)
    assert retiring(p.alpha) == [] and retiring(p.beta) == []


def test_an_option_being_settled_at_its_due_height_is_kept_and_looked_at_again() -> None:
    p = Pair(SHORT)
    b = open_bundle()
    p.apply(b)
    p.decide(b.id, True)
    p.skip_to(CLOSES - 2)
    p.apply(price_update(ORACLE, "ETH", "USDC", 2_500 * 10**6, nonce=9, rollup="beta"))
    s = settle_bundle(b.id)
    p.apply(s)  # CLOSES - 1: prepared (the option is settling); its votes never come
    assert options.get_option(State(p.beta.state), b.id).status == options.SETTLING  # type: ignore[union-attr]
    p.skip_to(CLOSES + R + 1)  # past the due height: still settling, so kept
    assert has(p.beta, OPTION + b.id)
    assert (CLOSES + 2 * R, OPTION + b.id) in retiring(p.beta)
    deadline = CLOSES - 1 + SHORT.limits.bundle_deadline_blocks
    p.skip_to(deadline + 1)  # every node aborts the settlement at its deadline: open again
    assert options.get_option(State(p.beta.state), b.id).status == options.OPEN  # type: ignore[union-attr]
    p.skip_to(deadline + 2 * R + 1)
    assert not has(p.beta, OPTION + b.id)  # open past its window: final, gone
    assert has(p.alpha, LIEN + b.id)  # locked: its owner may still reclaim it


def test_a_pruned_bundle_cannot_run_again_and_a_second_decision_on_it_is_ignored() -> None:
    p = Pair(SHORT)
    b = open_bundle(expiry=60)
    p.apply(b)
    p.decide(b.id, True)
    # before pruning, a second decision is refused with its block
    assert p.refuse(decision(b.id, False))
    p.skip_to(p.height + R + 1)
    assert not has(p.alpha, BUNDLE + b.id)
    p.apply(decision(b.id, False))  # now nobody tracks it: ignored, nothing changes
    (a_out, b_out) = p.apply(b)  # ordered again before its expiry: its seen-marker holds
    assert a_out.votes == () and b_out.votes == () and a_out.receipts == ()
    assert not has(p.alpha, BUNDLE + b.id) and not has(p.beta, BUNDLE + b.id)


def test_two_nodes_agree_at_every_height_and_retention_off_keeps_every_record() -> None:
    a1, a2, kept = Chain("alpha", SHORT), Chain("alpha", SHORT), Chain("alpha", KEEP_ALL)
    p = Pair(SHORT)
    b = open_bundle()
    blocks = [[b], [], [transfer(ALICE, BOB.address, "USDC", 1, nonce=5)]]
    blocks += [[]] * (R + 2)
    for entries in blocks:
        p.apply(*entries)
        block = a1.next_block(entries)
        a1.apply_block(block)
        a2.apply_block(block)
        kept.apply_block(kept.next_block(entries))
        assert a1.root == a2.root == p.alpha.root
    # the bundle was never decided in these blocks' log: aborted at its deadline later
    assert has(kept, BUNDLE + b.id) and retiring(kept) == []


def test_is_final_and_the_due_height_of_each_record_kind() -> None:
    limits = SHORT.limits
    rec = bundles.BundleRecord(b"\x01" * 32, bundles.PREPARED, True, ReasonCode.NONE, 3)
    prepared = bundles.encode_bundle_record(rec)
    done = bundles.encode_bundle_record(dataclasses.replace(rec, status=bundles.ABORTED))
    key = BUNDLE + rec.id
    assert not retention.is_final(key, prepared, 10, limits)
    assert retention.is_final(key, done, 10, limits)
    assert retention.compute_due(key, prepared, done, 10, limits) == 10 + R
    assert retention.compute_due(key, None, prepared, 10, limits) is None
    assert retention.compute_due(key, done, done, 10, limits) is None  # scheduled before
    assert retire_key(10 + R, key) == RETIRE + (10 + R).to_bytes(8, "big") + key


def test_a_refused_block_at_the_due_height_prunes_nothing() -> None:
    p = Pair(SHORT)
    b = open_bundle()
    p.apply(b)
    p.decide(b.id, True)
    c = open_bundle(nonce=7)
    p.apply(c)  # undecided
    p.skip_to(p.height + R - 1)  # the next block is b's due one
    p.refuse(decision(c.id, True))  # a commit no vote gives: refused, nothing applied
    assert has(p.alpha, BUNDLE + b.id) and has(p.beta, BUNDLE + b.id)
    p.apply()  # the due block, honest this time
    assert not has(p.alpha, BUNDLE + b.id) and not has(p.beta, BUNDLE + b.id)


# A valid open whose claim window and retention run past the largest height (found
# by the slow fuzz profile: the node computed the due height, could not pack it in
# 8 bytes, and its follower stopped: every beta node halted by one bundle).
FAR = dataclasses.replace(
    SHORT, limits=dataclasses.replace(SHORT.limits, lien_grace_blocks=UINT64_MAX - R - 2)
)


def test_an_open_whose_window_and_retention_pass_the_largest_height_is_a_no_vote() -> None:
    p = Pair(FAR)
    b = open_bundle()
    a_out, b_out = p.apply(b)  # raised struct.error before
    assert a_out.votes[0].yes
    assert (b_out.votes[0].yes, b_out.votes[0].code) == (False, ReasonCode.INVALID)
    assert "run past the largest height" in b_out.receipts[0].reason
    assert retiring(p.beta) == []
    p.decide(b.id, False)
    assert not has(p.alpha, LIEN + b.id) and not has(p.beta, OPTION + b.id)


def test_a_record_due_past_the_largest_height_is_never_scheduled() -> None:
    far = options.OptionPosition(
        id=b"\x07" * 32,
        kind=OptionKind.CALL,
        underlying="ETH",
        quote="USDC",
        strike=1,
        size=1,
        expiry_height=UINT64_MAX,
        premium=0,
        writer=ALICE.address,
        holder=BOB.address,
        liens=(("alpha", 1),),
        collateral_asset="ETH",
        collateral=1,
        status=options.OPEN,
        opened_height=1,
    )
    state = State(MemoryState())
    options.save_option(state, far)
    retention.schedule_finished(state, 2, SHORT.limits)
    assert not any(k.startswith(RETIRE) for k in state.writes)
