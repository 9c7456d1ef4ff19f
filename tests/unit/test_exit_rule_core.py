"""The lien exit rule (rollup_node/core/collateral.py apply_reclaim, and the
settle refusal in rollup_node/core/bundles.py): a lien still locked at its
option's expiry + limits.lien_grace_blocks belongs to its owner again, who takes
it back with a plain ReclaimLien transaction on the lien's rollup, needing no
other rollup, oracle or sequencer decision; from that height the option's rollup
refuses settlement (CLAIM_WINDOW_CLOSED), so the two sides never both pay out.
Pre-state, operation, post-state; a refused reclaim leaves only its seen-marker."""

from __future__ import annotations

import dataclasses

import pytest
from statesupport import (
    ALICE,
    BOB,
    CAROL,
    GENESIS,
    ORACLE,
    USDC_GENESIS,
    Pair,
    price_update,
    seen_marker,
)

from rollup_node.core import bundles, collateral, options
from rollup_node.core.state import State
from rollup_node.core.supply import compute_supply
from xrollup import checks
from xrollup.client import build_bundle, build_open_option, build_settle_option, build_tx
from xrollup.codec import decode_bundle, decode_tx
from xrollup.errors import InvalidInput
from xrollup.keys import Keypair
from xrollup.model import Bundle, Leg, OptionKind, ReasonCode, ReclaimLien, Tx

WRITER, HOLDER, KEEPER = ALICE, BOB, CAROL
STRIKE = 2_800 * 10**6
SIZE = 2 * 10**9  # 2 ETH
NEED = 5_600 * 10**6
PREMIUM = 50 * 10**6
EXPIRY = 5
GRACE = 3
CLOSES = EXPIRY + GRACE  # reclaimable, and settlement refused, from this height
SETTLE_PRICE = 2_500 * 10**6
PAYOUT = 600 * 10**6
GENESIS_GRACE = dataclasses.replace(
    GENESIS, limits=dataclasses.replace(GENESIS.limits, lien_grace_blocks=GRACE)
)


def reclaim(signer: Keypair, lien_id: bytes, nonce: int) -> Tx:
    return decode_tx(build_tx(signer, "alpha", ReclaimLien(lien_id), 100, nonce=nonce))


def settle_bundle(option_id: bytes, nonce: int) -> Bundle:
    return decode_bundle(
        build_settle_option(KEEPER, option_id, PAYOUT, HOLDER.address, 100, nonce=nonce)
    )


def opened() -> tuple[Pair, Bundle]:
    """An option opened and committed at height 2: alpha holds the writer's lien,
    beta the holder's option (expiry 5, grace 3)."""
    p = Pair(GENESIS_GRACE)
    b = decode_bundle(
        build_open_option(
            WRITER, HOLDER, OptionKind.PUT, STRIKE, SIZE, EXPIRY, PREMIUM, 100, nonce=1
        )
    )
    p.apply(b)
    p.decide(b.id, True)
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.LOCKED
    assert lien.option_expiry_height == EXPIRY
    return p, b


def lien_of(p: Pair, lien_id: bytes) -> collateral.Lien:
    lien = collateral.get_lien(State(p.alpha.state), lien_id)
    assert lien is not None
    return lien


def test_the_reclaimable_height_is_expiry_plus_grace() -> None:
    assert collateral.compute_reclaimable_height(EXPIRY, GRACE) == CLOSES
    assert GENESIS.limits.lien_grace_blocks == 500  # the default


def test_the_owner_cannot_reclaim_before_expiry_plus_grace() -> None:
    p, b = opened()
    for nonce, height in ((10, 3), (11, EXPIRY), (12, CLOSES - 1)):
        p.skip_to(height)
        tx = reclaim(WRITER, b.id, nonce)
        before = dict(p.alpha.state.items)

        a_out, _ = p.apply(tx)

        (r,) = a_out.receipts
        assert (r.id, r.height, r.ok) == (tx.id, height, False)
        assert f"is reclaimable from height {CLOSES}" in r.reason
        assert a_out.writes == seen_marker(tx)
        assert p.alpha.state.items == before | seen_marker(tx)
    assert lien_of(p, b.id).status == collateral.LOCKED


def test_another_account_cannot_reclaim_the_lien() -> None:
    p, b = opened()
    p.skip_to(CLOSES)
    for nonce, who in enumerate((HOLDER, KEEPER, ORACLE), start=20):
        tx = reclaim(who, b.id, nonce)
        before = dict(p.alpha.state.items)

        a_out, _ = p.apply(tx)

        (r,) = a_out.receipts
        assert not r.ok and "is not owned by the sender" in r.reason
        assert a_out.writes == seen_marker(tx)
        assert p.alpha.state.items == before | seen_marker(tx)
    assert lien_of(p, b.id).status == collateral.LOCKED


def test_the_owner_reclaims_from_expiry_plus_grace_and_supply_is_conserved() -> None:
    p, b = opened()
    p.skip_to(CLOSES)
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - NEED
    usdc = compute_supply(p.alpha.state.items.items()).assets["USDC"]
    assert (usdc.liened, usdc.conserved) == (NEED, True)
    tx = reclaim(WRITER, b.id, 30)

    a_out, b_out = p.apply(tx)

    (r,) = a_out.receipts
    assert (r.id, r.height, r.ok, r.reason) == (tx.id, CLOSES, True, "")
    lien = lien_of(p, b.id)
    assert (lien.status, lien.released_height, lien.paid_out) == (
        collateral.RECLAIMED,
        CLOSES,
        0,
    )
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS  # every unit back
    usdc = compute_supply(p.alpha.state.items.items()).assets["USDC"]
    assert (usdc.liened, usdc.balances, usdc.conserved) == (0, usdc.minted, True)
    assert b_out.receipts == () and b_out.writes == {}  # beta is not involved

    # a second reclaim finds nothing to take
    again = reclaim(WRITER, b.id, 31)
    a_out, _ = p.apply(again)
    (r,) = a_out.receipts
    assert not r.ok and "is reclaimed" in r.reason
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS


def test_settlement_is_refused_from_expiry_plus_grace() -> None:
    p, b = opened()
    p.skip_to(EXPIRY)
    p.apply(price_update(ORACLE, "ETH", "USDC", SETTLE_PRICE, rollup="beta"))
    p.skip_to(CLOSES)
    s = settle_bundle(b.id, nonce=40)

    a_out, b_out = p.apply(s)

    (vote,) = b_out.votes
    assert (vote.yes, vote.code) == (False, ReasonCode.CLAIM_WINDOW_CLOSED)
    (r,) = b_out.receipts
    assert f"the claim window closed at height {CLOSES}" in r.reason
    assert a_out.votes[0].yes  # alpha would release: only beta knows the option
    p.decide(s.id, False)
    o = options.get_option(State(p.beta.state), b.id)
    assert o is not None and o.status == options.OPEN and o.payout == 0
    assert lien_of(p, b.id).status == collateral.LOCKED
    # and the owner takes the lien back
    a_out, _ = p.apply(reclaim(WRITER, b.id, 41))
    assert a_out.receipts[0].ok
    assert p.alpha.balance(HOLDER, "USDC") == USDC_GENESIS  # the holder was never paid


def test_settlement_the_block_before_the_window_closes_goes_through() -> None:
    p, b = opened()
    p.skip_to(EXPIRY)
    p.apply(price_update(ORACLE, "ETH", "USDC", SETTLE_PRICE, rollup="beta"))
    p.skip_to(CLOSES - 1)
    s = settle_bundle(b.id, nonce=50)

    a_out, b_out = p.apply(s)

    assert a_out.votes[0].yes and b_out.votes[0].yes
    assert lien_of(p, b.id).status == collateral.PENDING
    # while the settlement is undecided the lien is not the owner's to take
    a_out, _ = p.apply(reclaim(WRITER, b.id, 51))
    (r,) = a_out.receipts
    assert not r.ok and "is pending" in r.reason
    (done, _) = p.decide(s.id, True)
    assert done.finished[0].status == bundles.COMMITTED
    lien = lien_of(p, b.id)
    assert (lien.status, lien.paid_out) == (collateral.RELEASED, PAYOUT)
    assert p.alpha.balance(HOLDER, "USDC") == USDC_GENESIS + PAYOUT


def test_reclaim_is_a_plain_transaction_not_a_leg() -> None:
    msg = build_bundle([Leg("alpha", WRITER.address, ReclaimLien(b"\x01" * 32))], [WRITER], 100)
    with pytest.raises(InvalidInput, match="ReclaimLien is a plain transaction, not a leg"):
        checks.validate_bundle(decode_bundle(msg), GENESIS)
