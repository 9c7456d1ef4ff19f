"""The node's side of the bundle protocol (rollup_node/core/bundles.py), pure:
prepare moves what a leg spends into an escrow keyed by the bundle, commit applies
the escrowed effects, abort returns them exactly. Pre-state, operation,
post-state; after every block, per asset, genesis supply = balances + escrows +
liens (rollup_node/core/supply.compute_supply). Nothing outside the escrow can
spend it; a decision applies once; a bundle with no leg here is ignored.

Decisions reach the chains as an honest sequencer logs them: each rollup's
signed vote on the bundle, then the decision the rule gives (xrollup/decisions.py)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import pytest
import statesupport
from statesupport import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ETH_GENESIS,
    GENESIS,
    GENESIS_HASH,
    ORACLE,
    USDC_GENESIS,
    Chain,
    decision,
    genesis_state,
    price_update,
    signed_vote,
    transfer,
    vote_entries,
)

from rollup_node.core import bundles, collateral, options
from rollup_node.core.execute import BlockOutcome, Receipt, apply_tx
from rollup_node.core.state import (
    DEADLINE,
    EXPIRY,
    OPEN,
    RETIRE,
    SEEN,
    MemoryState,
    State,
    deadline_key,
)
from rollup_node.core.supply import SupplyReport, compute_supply
from rollup_node.follower import compute_vote_chunks
from xrollup.blocks import RefusalCode
from xrollup.client import build_bundle, build_open_option, build_settle_option
from xrollup.codec import decode_bundle, encode_vote_body
from xrollup.errors import InvalidInput
from xrollup.genesis import DEV_ACCOUNT_COUNT
from xrollup.keys import Keypair
from xrollup.model import (
    Bundle,
    BundleVote,
    Entry,
    Leg,
    OptionKind,
    ReasonCode,
    ReleaseLien,
    SettleOption,
    Transfer,
    VoteBody,
)
from xrollup.numeric import Amount, Height
from xrollup.options import compute_payout

WRITER, HOLDER, KEEPER = ALICE, BOB, CAROL
ETH_DECIMALS = 9
STRIKE = 2_800 * 10**6  # USDC base units per whole ETH
SIZE = 2 * 10**ETH_DECIMALS  # 2 ETH
PREMIUM = 50 * 10**6
NEED = 5_600 * 10**6  # ceil(STRIKE * SIZE / 10**9)
OPTION_EXPIRY = 5
SETTLE_PRICE = 2_500 * 10**6
PAYOUT = 600 * 10**6  # (STRIKE - SETTLE_PRICE) * SIZE / 10**9
MINTED = {"USDC": DEV_ACCOUNT_COUNT * USDC_GENESIS, "ETH": DEV_ACCOUNT_COUNT * ETH_GENESIS}
K = GENESIS.limits.bundle_deadline_blocks
NONE, ALL_YES, VOTED_NO = ReasonCode.NONE, ReasonCode.ALL_YES, ReasonCode.VOTED_NO

# ---------------------------------------------------------------- helpers


def bundle_of(legs: Sequence[Leg], signers: Sequence[Keypair], expiry: int = 100) -> Bundle:
    return decode_bundle(build_bundle(legs, signers, expiry, nonce=len(legs)))


def open_bundle(
    premium: int = PREMIUM,
    collateral_amount: int | None = None,
    option_expiry: int = OPTION_EXPIRY,
    nonce: int = 1,
) -> Bundle:
    msg = build_open_option(
        WRITER,
        HOLDER,
        OptionKind.PUT,
        STRIKE,
        SIZE,
        option_expiry,
        premium,
        100,
        underlying_decimals=ETH_DECIMALS,
        collateral=collateral_amount,
        nonce=nonce,
    )
    return decode_bundle(msg)


def settle_bundle(option_id: bytes, payout: int = PAYOUT, nonce: int = 2) -> Bundle:
    return decode_bundle(
        build_settle_option(KEEPER, option_id, payout, HOLDER.address, 100, nonce=nonce)
    )


def assert_conserved(chain: Chain) -> SupplyReport:
    report = compute_supply(chain.state.items.items())
    for a in report.assets.values():
        assert a.minted == MINTED[a.asset], a
        assert a.conserved, f"{chain.rollup}: {a} is not conserved"
    return report


def durable(state: MemoryState) -> dict[bytes, bytes]:
    """The state without bundle records (and their retention index), the decision
    rule's tracking of open bundles and replay markers: what a refused or aborted
    bundle must leave exactly as it was."""
    skip = (bundles.BUNDLE, RETIRE, SEEN, EXPIRY, OPEN, DEADLINE)
    return {k: v for k, v in state.items.items() if not k.startswith(skip)}


def tracked(state: MemoryState) -> set[bytes]:
    """The keys of the decision rule's tracking (open bundles, deadline index)."""
    return {k for k in state.items if k.startswith((OPEN, DEADLINE))}


def receipt_of(out: BlockOutcome, entry_id: bytes) -> Receipt:
    (r,) = (r for r in out.receipts if r.id == entry_id)
    return r


class Pair(statesupport.Pair):
    """alpha and beta applying the same blocks (statesupport.Pair), supply checked
    against the dev genesis' mint after each."""

    def check(self) -> None:
        assert_conserved(self.alpha)
        assert_conserved(self.beta)

    def refuse(self, *entries: Entry, rollups: Sequence[str] = ("alpha", "beta")) -> list:
        refusals = super().refuse(*entries, rollups=rollups)
        assert len({e.code for e in refusals}) == 1
        return refusals

    def record(self, rollup: str, bundle_id: bytes) -> bundles.BundleRecord | None:
        chain = self.alpha if rollup == "alpha" else self.beta
        return bundles.get_record(State(chain.state), bundle_id)

    def open_option(self) -> Bundle:
        b = open_bundle()
        self.apply(b)
        self.decide(b.id, True)
        return b


# ---------------------------------------------------------------- transfer legs


def two_transfers() -> Bundle:
    return bundle_of(
        [
            Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(5_000_000))),
            Leg("beta", BOB.address, Transfer(DAVE.address, "ETH", Amount(7))),
        ],
        [ALICE, BOB],
    )


def test_prepare_moves_the_spent_amount_into_escrow_and_votes_yes() -> None:
    p = Pair()
    b = two_transfers()

    a_out, b_out = p.apply(b)

    assert a_out.votes == (BundleVote(b.id, True, NONE, Height(1)),)
    assert b_out.votes == (BundleVote(b.id, True, NONE, Height(1)),)
    assert receipt_of(a_out, b.id) == Receipt(b.id, 1, 0, True, "")
    assert p.alpha.balance(ALICE, "USDC") == USDC_GENESIS - 5_000_000
    assert p.alpha.balance(DAVE, "USDC") == USDC_GENESIS  # not paid yet
    escrow = bundles.get_escrow(State(p.alpha.state), b.id)
    assert escrow is not None and escrow.held == {"USDC": 5_000_000}
    report = assert_conserved(p.alpha)
    assert report.assets["USDC"].escrowed == 5_000_000 and report.open_bundles == 1
    assert assert_conserved(p.beta).assets["ETH"].escrowed == 7
    record = p.record("alpha", b.id)
    assert record is not None
    assert (record.status, record.vote, record.code, record.prepare_height) == (
        bundles.PREPARED,
        True,
        NONE,
        1,
    )
    assert record.legs == ((0, True, NONE),)
    # every node tracks the bundle for the decision rule, with its deadline
    for chain in (p.alpha, p.beta):
        assert tracked(chain.state) == {OPEN + b.id, deadline_key(1 + K, b.id)}


def test_commit_applies_the_escrowed_transfer() -> None:
    p = Pair()
    b = two_transfers()
    p.apply(b)

    a_out, b_out = p.decide(b.id, True)

    assert p.alpha.balance(ALICE, "USDC") == USDC_GENESIS - 5_000_000
    assert p.alpha.balance(DAVE, "USDC") == USDC_GENESIS + 5_000_000
    assert p.beta.balance(BOB, "ETH") == ETH_GENESIS - 7
    assert p.beta.balance(DAVE, "ETH") == ETH_GENESIS + 7
    assert bundles.get_escrow(State(p.alpha.state), b.id) is None
    assert compute_supply(p.alpha.state.items.items()).open_bundles == 0
    (done,) = a_out.finished
    assert (done.status, done.decision_height, done.code) == (bundles.COMMITTED, 2, ALL_YES)
    assert b_out.finished[0].status == bundles.COMMITTED
    assert tracked(p.alpha.state) == tracked(p.beta.state) == set()


def test_abort_at_the_deadline_returns_exactly_what_prepare_held() -> None:
    p = Pair()
    before = durable(p.alpha.state), durable(p.beta.state)
    b = two_transfers()
    p.apply(b)
    (alpha_vote, _) = p.vote_entries(b.id)  # beta's vote never reaches the log
    p.apply(alpha_vote)
    p.skip_to(1 + K)

    a_out, b_out = p.apply(decision(b.id, False, ReasonCode.DEADLINE))

    assert (durable(p.alpha.state), durable(p.beta.state)) == before
    (done,) = a_out.finished
    assert (done.status, done.code, done.decision_height) == (
        bundles.ABORTED,
        ReasonCode.DEADLINE,
        1 + K,
    )
    assert b_out.finished[0].status == bundles.ABORTED
    assert compute_supply(p.alpha.state.items.items()).open_bundles == 0
    assert tracked(p.alpha.state) == tracked(p.beta.state) == set()


def test_a_failing_leg_votes_no_and_rolls_back_the_legs_before_it() -> None:
    p = Pair()
    before = durable(p.alpha.state)
    b = bundle_of(
        [
            Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(1))),
            Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(USDC_GENESIS))),
        ],
        [ALICE],
    )

    a_out, b_out = p.apply(b)

    (vote,) = a_out.votes
    assert (vote.yes, vote.code) == (False, ReasonCode.INSUFFICIENT_FUNDS)
    receipt = receipt_of(a_out, b.id)
    assert not receipt.ok
    assert receipt.reason.startswith("legs[1] on alpha: insufficient USDC")
    assert b_out.votes == () and b_out.receipts == ()  # no leg on beta
    assert durable(p.alpha.state) == before  # the first leg's hold was rolled back
    assert bundles.get_escrow(State(p.alpha.state), b.id) is None
    record = p.record("alpha", b.id)
    assert record is not None and record.legs == (
        (0, True, NONE),
        (1, False, ReasonCode.INSUFFICIENT_FUNDS),
    )

    a_out, _ = p.decide(b.id, False)
    assert durable(p.alpha.state) == before
    assert a_out.finished[0].status == bundles.ABORTED
    assert a_out.finished[0].code == ReasonCode.INSUFFICIENT_FUNDS  # this rollup's own reason


def test_an_expired_bundle_votes_no_and_holds_nothing() -> None:
    p = Pair()
    p.skip_to(5)
    before = durable(p.alpha.state)
    b = bundle_of(
        [Leg("alpha", ALICE.address, Transfer(DAVE.address, "USDC", Amount(1)))], [ALICE], 4
    )

    a_out, _ = p.apply(b)

    assert a_out.votes == (BundleVote(b.id, False, ReasonCode.EXPIRED, Height(5)),)
    assert receipt_of(a_out, b.id).reason == "bundle expired at height 4"
    assert durable(p.alpha.state) == before


# ---------------------------------------------------------------- open: lock and option


def test_open_locks_the_writers_collateral_and_escrows_the_premium() -> None:
    p = Pair()
    b = open_bundle()

    a_out, b_out = p.apply(b)

    assert a_out.votes[0].yes and b_out.votes[0].yes
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - NEED
    assert p.beta.balance(HOLDER, "USDC") == USDC_GENESIS - PREMIUM
    assert p.beta.balance(WRITER, "USDC") == USDC_GENESIS  # premium not paid yet
    assert assert_conserved(p.alpha).assets["USDC"].escrowed == NEED
    assert assert_conserved(p.beta).assets["USDC"].escrowed == PREMIUM
    # nothing exists until the commit
    assert collateral.get_lien(State(p.alpha.state), b.id) is None
    assert options.get_option(State(p.beta.state), b.id) is None

    p.decide(b.id, True)

    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None
    assert (lien.owner, lien.asset, lien.amount, lien.status) == (
        WRITER.address,
        "USDC",
        NEED,
        collateral.LOCKED,
    )
    assert (lien.controller_rollup, lien.controller_position, lien.locked_height) == (
        "beta",
        b.id,
        2,
    )
    assert lien.option_expiry_height == OPTION_EXPIRY
    o = options.get_option(State(p.beta.state), b.id)
    assert o is not None
    assert (o.kind, o.strike, o.size, o.collateral, o.collateral_asset) == (
        OptionKind.PUT,
        STRIKE,
        SIZE,
        NEED,
        "USDC",
    )
    assert (o.writer, o.holder, o.status, o.opened_height) == (
        WRITER.address,
        HOLDER.address,
        options.OPEN,
        2,
    )
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - NEED
    assert p.beta.balance(WRITER, "USDC") == USDC_GENESIS + PREMIUM
    assert p.beta.balance(HOLDER, "USDC") == USDC_GENESIS - PREMIUM
    a = assert_conserved(p.alpha).assets["USDC"]
    assert (a.escrowed, a.liened) == (0, NEED)
    assert assert_conserved(p.beta).assets["USDC"].escrowed == 0


def test_thin_margin_beta_votes_no_and_the_abort_returns_alphas_lock() -> None:
    p = Pair()
    before = durable(p.alpha.state), durable(p.beta.state)
    b = open_bundle(collateral_amount=NEED - 1)

    a_out, b_out = p.apply(b)

    assert a_out.votes[0].yes  # alpha can lock it; the margin rule is beta's
    assert (b_out.votes[0].yes, b_out.votes[0].code) == (False, ReasonCode.MARGIN)
    text = receipt_of(b_out, b.id).reason
    assert text.startswith("legs[1] on beta: margin:")
    assert "needs 5,600 USDC locked, the lien locks 5,599.999999 USDC" in text  # asset units

    a_out, b_out = p.decide(b.id, False)

    assert (durable(p.alpha.state), durable(p.beta.state)) == before
    assert collateral.get_lien(State(p.alpha.state), b.id) is None
    assert (a_out.finished[0].status, a_out.finished[0].code) == (bundles.ABORTED, VOTED_NO)
    assert b_out.finished[0].code == ReasonCode.MARGIN  # beta keeps its own reason


def test_open_refused_on_beta_when_the_holder_cannot_pay_or_expiry_passed() -> None:
    p = Pair()
    p.skip_to(3)
    poor = open_bundle(premium=USDC_GENESIS + 1, nonce=1)
    late = open_bundle(option_expiry=3, nonce=2)  # not after the height it opens at

    _, b_out = p.apply(poor, late)

    codes = {v.bundle_id: v.code for v in b_out.votes if not v.yes}
    assert codes == {poor.id: ReasonCode.INSUFFICIENT_FUNDS, late.id: ReasonCode.INVALID}
    assert receipt_of(b_out, poor.id).reason.startswith("legs[1] on beta: insufficient USDC")
    assert (
        receipt_of(b_out, late.id).reason
        == "legs[1] on beta: option expiry 3 is not after height 3"
    )


def test_open_refused_on_alpha_when_the_writer_cannot_lock() -> None:
    p = Pair()
    b = open_bundle(collateral_amount=USDC_GENESIS + 1)

    a_out, b_out = p.apply(b)

    assert a_out.votes[0].code == ReasonCode.INSUFFICIENT_FUNDS
    assert receipt_of(a_out, b.id).reason.startswith("legs[0] on alpha: insufficient USDC")
    assert b_out.votes[0].yes
    assert p.beta.balance(HOLDER, "USDC") == USDC_GENESIS - PREMIUM  # held until the abort
    p.decide(b.id, False)
    assert p.beta.balance(HOLDER, "USDC") == USDC_GENESIS
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS


# ---------------------------------------------------------------- settle: payout and release


def settled_setup() -> tuple[Pair, Bundle]:
    p = Pair()
    b = p.open_option()
    p.skip_to(OPTION_EXPIRY)
    p.apply(price_update(ORACLE, "ETH", "USDC", SETTLE_PRICE, rollup="beta"))
    return p, b


def test_settle_pays_the_holder_from_the_lien_and_releases_the_rest() -> None:
    p, b = settled_setup()
    assert compute_payout(OptionKind.PUT, STRIKE, SIZE, SETTLE_PRICE, 9) == PAYOUT
    s = settle_bundle(b.id)

    a_out, b_out = p.apply(s)

    assert a_out.votes[0].yes and b_out.votes[0].yes
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.PENDING
    assert assert_conserved(p.alpha).assets["USDC"].liened == NEED  # pending still holds
    o = options.get_option(State(p.beta.state), b.id)
    assert o is not None and o.status == options.SETTLING
    holder_before = p.alpha.balance(HOLDER, "USDC")
    writer_before = p.alpha.balance(WRITER, "USDC")

    p.decide(s.id, True)

    height = p.alpha.height
    assert p.alpha.balance(HOLDER, "USDC") == holder_before + PAYOUT
    assert p.alpha.balance(WRITER, "USDC") == writer_before + NEED - PAYOUT
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - PAYOUT
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None
    assert (lien.status, lien.paid_out, lien.payee, lien.released_height) == (
        collateral.RELEASED,
        PAYOUT,
        HOLDER.address,
        height,
    )
    o = options.get_option(State(p.beta.state), b.id)
    assert o is not None
    assert (o.status, o.payout, o.settle_price, o.settled_height) == (
        options.SETTLED,
        PAYOUT,
        SETTLE_PRICE,
        height,
    )
    assert assert_conserved(p.alpha).assets["USDC"].liened == 0


def test_settle_at_a_wrong_payout_aborts_and_the_lien_stays_locked() -> None:
    p, b = settled_setup()
    before = durable(p.alpha.state), durable(p.beta.state)
    s = settle_bundle(b.id, payout=PAYOUT + 1)

    a_out, b_out = p.apply(s)

    assert a_out.votes[0].yes  # alpha cannot know the price; beta refuses
    assert b_out.votes[0].code == ReasonCode.PAYOUT_MISMATCH
    text = receipt_of(b_out, s.id).reason
    assert text.startswith(f"legs[0] on beta: payout: the bundle states {PAYOUT + 1}")
    p.decide(s.id, False)
    assert (durable(p.alpha.state), durable(p.beta.state)) == before
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.LOCKED


def test_settle_before_expiry_aborts_and_the_writers_funds_are_untouched() -> None:
    p = Pair()
    b = p.open_option()
    before = durable(p.alpha.state), durable(p.beta.state)
    s = settle_bundle(b.id, payout=0)

    a_out, b_out = p.apply(s)

    assert b_out.votes[0].code == ReasonCode.NOT_EXPIRED
    assert receipt_of(b_out, s.id).reason == (
        f"legs[0] on beta: option expires at height {OPTION_EXPIRY}; now {p.beta.height}"
    )
    assert a_out.votes[0].yes  # alpha holds the lien pending until the decision
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.PENDING
    p.decide(s.id, False)
    assert (durable(p.alpha.state), durable(p.beta.state)) == before
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - NEED


def test_a_second_settle_of_a_settling_option_is_refused() -> None:
    p, b = settled_setup()
    first, second = settle_bundle(b.id, nonce=2), settle_bundle(b.id, nonce=3)

    a_out, b_out = p.apply(first, second)

    votes = {v.bundle_id: v for v in b_out.votes}
    assert votes[first.id].yes
    assert votes[second.id].code == ReasonCode.POSITION_BUSY
    assert (
        receipt_of(b_out, second.id).reason
        == f"legs[0] on beta: option {b.id.hex()[:16]} is settling"
    )
    alpha_votes = {v.bundle_id: v for v in a_out.votes}
    assert alpha_votes[second.id].code == ReasonCode.POSITION_BUSY
    assert (
        receipt_of(a_out, second.id).reason
        == f"legs[1] on alpha: lien {b.id.hex()[:16]} is pending"
    )


def test_a_release_paired_with_another_positions_settle_is_refused_by_the_node() -> None:
    # Admission refuses this pairing (validate_bundle_structure); with the node's own
    # checks alone (verify=False) alpha still refuses to release a lien that the
    # bundle does not settle, and the lien stays locked.
    p = Pair()
    first = p.open_option()
    other = open_bundle(nonce=9)
    p.apply(other)
    p.decide(other.id, True)
    p.skip_to(OPTION_EXPIRY)
    p.apply(price_update(ORACLE, "ETH", "USDC", SETTLE_PRICE, rollup="beta"))
    before = durable(p.alpha.state)
    crossed = bundle_of(
        [
            Leg("beta", KEEPER.address, SettleOption(other.id, Amount(PAYOUT))),
            Leg("alpha", KEEPER.address, ReleaseLien(first.id, Amount(PAYOUT), HOLDER.address)),
        ],
        [KEEPER],
    )
    state = State(p.alpha.state)
    height = Height(p.alpha.height + 1)

    prepared = bundles.prepare_bundle(state, crossed, "alpha", height, GENESIS, verify=False)

    assert prepared is not None
    assert (prepared.vote.yes, prepared.vote.code) == (False, ReasonCode.NOT_CONTROLLER)
    assert "the bundle does not settle it there" in prepared.text
    p.alpha.state.apply(state.writes)
    assert durable(p.alpha.state) == before
    lien = collateral.get_lien(State(p.alpha.state), first.id)
    assert lien is not None and lien.status == collateral.LOCKED


# ---------------------------------------------------------------- escrow cannot be spent


def test_a_transfer_in_the_same_block_cannot_spend_escrowed_collateral() -> None:
    p = Pair()
    free = 10 * 10**6
    b = open_bundle(collateral_amount=USDC_GENESIS - free)
    spend = transfer(WRITER, DAVE.address, "USDC", free + 1, nonce=7)
    fits = transfer(WRITER, DAVE.address, "USDC", free, nonce=8)

    a_out, _ = p.apply(b, spend, fits)

    assert a_out.votes[0].yes
    receipts = {r.id: r for r in a_out.receipts}
    assert not receipts[spend.id].ok
    assert receipts[spend.id].reason.startswith("insufficient USDC")
    assert receipts[fits.id].ok  # only the free part was spendable
    assert p.alpha.balance(WRITER, "USDC") == 0

    # No vote reaches the log: every node aborts it itself at the deadline.
    p.skip_to(1 + K)
    a_out, b_out = p.apply()
    assert [(d.id, d.status, d.code) for d in a_out.finished] == [
        (b.id, bundles.ABORTED, ReasonCode.DEADLINE)
    ]
    assert [d.status for d in b_out.finished] == [bundles.ABORTED]
    assert p.alpha.balance(WRITER, "USDC") == USDC_GENESIS - free  # the lock came back exactly
    assert tracked(p.alpha.state) == tracked(p.beta.state) == set()


def test_prepared_escrow_on_a_memory_state_is_out_of_reach_of_apply_tx() -> None:
    state = State(genesis_state("alpha"))
    b = open_bundle(collateral_amount=USDC_GENESIS)
    prepared = bundles.prepare_bundle(state, b, "alpha", Height(1), GENESIS)
    assert prepared == bundles.Prepared(BundleVote(b.id, True, NONE, Height(1)), "")

    receipt = apply_tx(state, transfer(WRITER, DAVE.address, "USDC", 1), Height(1), 1, GENESIS)

    assert receipt is not None and not receipt.ok and "insufficient USDC" in receipt.reason
    base = genesis_state("alpha")
    base.apply(state.writes)
    usdc = compute_supply(base.items.items()).assets["USDC"]
    assert (usdc.escrowed, usdc.conserved) == (USDC_GENESIS, True)


# ---------------------------------------------------------------- decisions apply once


def test_a_second_decision_does_nothing_and_a_logged_one_is_refused() -> None:
    p = Pair()
    b = two_transfers()
    p.apply(b)
    p.decide(b.id, True)
    after = dict(p.alpha.state.items), dict(p.beta.state.items)

    for commit, code in ((True, ALL_YES), (False, VOTED_NO), (False, ReasonCode.DEADLINE)):
        state = State(p.alpha.state)
        height = Height(p.alpha.height + 1)
        assert bundles.finish_bundle(state, b.id, commit, code, height) is None
        assert state.writes == {}
        # In the log, a second decision contradicts the rule: the block is refused.
        (refused, _) = p.refuse(decision(b.id, commit, code))
        assert refused.code == RefusalCode.BAD_DECISION
    assert (dict(p.alpha.state.items), dict(p.beta.state.items)) == after
    record = p.record("alpha", b.id)
    assert record is not None and record.status == bundles.COMMITTED


def test_a_replayed_bundle_is_prepared_once() -> None:
    p = Pair()
    b = two_transfers()
    p.apply(b)

    a_out, _ = p.apply(b)

    assert a_out.votes == ()
    assert p.alpha.balance(ALICE, "USDC") == USDC_GENESIS - 5_000_000
    escrow = bundles.get_escrow(State(p.alpha.state), b.id)
    assert escrow is not None and escrow.held == {"USDC": 5_000_000}


def test_a_bundle_with_no_leg_here_leaves_no_trace() -> None:
    # A node's state depends only on its rollup's namespace and the protocol's, so a
    # node on a stream filtered to its rollup (which never sees this bundle) and one
    # on the whole stream reach the same state: neither tracks it; the decision is
    # for beta's nodes to check, and even a wrong one changes nothing here.
    alpha = Chain("alpha")
    b = bundle_of([Leg("beta", BOB.address, Transfer(DAVE.address, "ETH", Amount(7)))], [BOB])
    state = State(alpha.state)

    assert bundles.prepare_bundle(state, b, "alpha", Height(1), GENESIS) is None
    assert bundles.finish_bundle(state, b.id, True, ALL_YES, Height(1)) is None
    assert state.writes == {}

    out = alpha.apply([b])
    assert (out.votes, out.receipts, out.writes) == ((), (), {})
    beta_yes = signed_vote("beta", 1, [BundleVote(b.id, True, NONE, Height(1))])
    out = alpha.apply([beta_yes, decision(b.id, False)])
    assert (out.finished, out.writes) == ((), {})


# ---------------------------------------------------------------- the node's vote messages


def test_a_blocks_votes_are_split_into_bodies_the_sequencer_admits() -> None:
    # Regression: one vote body per block grew past max_body_bytes (4096) when a
    # block prepared many bundles; admission refused it and the bundles aborted at
    # their deadline although this rollup voted yes.
    limit = GENESIS.limits.max_body_bytes
    votes = tuple(
        BundleVote(
            bytes([i]) * 32,
            i % 3 == 0,
            NONE if i % 3 == 0 else ReasonCode.INSUFFICIENT_FUNDS,
            Height(7),
        )
        for i in range(200)
    )

    chunks = compute_vote_chunks(GENESIS.chain_id, "alpha", 7, votes, limit, GENESIS_HASH)

    assert len(chunks) > 1
    assert tuple(v for c in chunks for v in c.votes) == votes  # all of them, in order, once
    sizes = [len(encode_vote_body(c)) for c in chunks]
    assert max(sizes) <= limit
    assert all(c.rollup == "alpha" and c.height == 7 for c in chunks)
    assert all(c.genesis_hash == GENESIS_HASH for c in chunks)
    # as few as fit: each chunk would overflow with the next chunk's first vote
    for c, nxt in itertools.pairwise(chunks):
        bigger = dataclasses.replace(c, votes=(*c.votes, nxt.votes[0]))
        assert len(encode_vote_body(bigger)) > limit
    few = votes[:3]
    assert compute_vote_chunks(GENESIS.chain_id, "alpha", 7, few, limit, GENESIS_HASH) == [
        VoteBody(GENESIS.chain_id, "alpha", Height(7), few, GENESIS_HASH)
    ]


def test_the_nodes_own_vote_entries_decide_the_bundle() -> None:
    # The vote entries a node sends (statesupport.vote_entries: compute_vote_chunks,
    # signed with the dev vote key) count: with both in the log and no decision,
    # every node derives the commit itself.
    p = Pair()
    b = two_transfers()
    a_out, b_out = p.apply(b)

    a_fin, b_fin = p.apply(*vote_entries("alpha", a_out), *vote_entries("beta", b_out))

    assert [(d.id, d.status, d.code) for d in a_fin.finished] == [
        (b.id, bundles.COMMITTED, ALL_YES)
    ]
    assert [d.status for d in b_fin.finished] == [bundles.COMMITTED]
    assert p.alpha.balance(DAVE, "USDC") == USDC_GENESIS + 5_000_000


def test_a_release_on_a_rollup_where_the_option_has_no_lien_votes_no_and_moves_nothing() -> None:
    # The option's lien is on alpha; this settlement releases "its lien" on beta,
    # where it has none. Beta, which knows the option's liens, votes no (INVALID);
    # the bundle aborts and alpha's lien stays locked for a correct settlement.
    p, b = settled_setup()
    before = durable(p.alpha.state), durable(p.beta.state)
    s = decode_bundle(
        build_settle_option(KEEPER, b.id, PAYOUT, HOLDER.address, 100, liens=[("beta", NEED)])
    )

    _a_out, b_out = p.apply(s)

    votes = {v.bundle_id: v for v in b_out.votes}
    assert not votes[s.id].yes and votes[s.id].code == ReasonCode.INVALID
    p.decide(s.id, False)
    assert (durable(p.alpha.state), durable(p.beta.state)) == before
    lien = collateral.get_lien(State(p.alpha.state), b.id)
    assert lien is not None and lien.status == collateral.LOCKED
    o = options.get_option(State(p.beta.state), b.id)
    assert o is not None and o.status == options.OPEN


def test_two_lock_legs_on_one_rollup_are_refused_at_admission() -> None:
    # An open backed by alpha with a second LockCollateral leg on alpha: the option
    # names alpha once, but two liens there would each claim to back it.
    from sequencer.core.admission import admit_bundle

    legs = list(open_bundle().body.legs)
    lock = next(leg for leg in legs if leg.rollup == "alpha")
    msg = build_bundle([*legs, lock], [WRITER, HOLDER], 100, nonce=7)
    with pytest.raises(InvalidInput, match="at most one LockCollateral leg per rollup"):
        admit_bundle(msg, GENESIS, 1)
