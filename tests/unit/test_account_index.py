"""The account indexes (state.py b"acl:", b"ace:", b"aco:") and the view
GetAccount reads through them (rollup_node/core/accounts.py). Pre-state,
operation, post-state: a lien is indexed under its owner while it holds funds
(LOCKED, PENDING) and not once released or reclaimed; a prepared bundle's escrow
under every account it holds funds of, until the bundle finishes; an option under
its writer and its holder while OPEN or SETTLING, and not once settled or pruned.
After every block of every history here, the index keys are exactly those a scan
of the records derives, on both rollups (so they never name a pruned record and
follow from the blocks alone, as every key of the state must)."""

from __future__ import annotations

import dataclasses

from statesupport import ALICE, BOB, CAROL, DAVE, GENESIS, ORACLE, Chain, Pair, price_update

from rollup_node.core import accounts, bundles, collateral, options
from rollup_node.core.execute import BlockOutcome
from rollup_node.core.state import (
    ACCOUNT_ESCROW,
    ACCOUNT_LIEN,
    ACCOUNT_OPTION,
    ESCROW,
    LIEN,
    OPTION,
    account_escrow_key,
    account_lien_key,
    account_option_key,
)
from xrollup.client import build_open_option, build_reclaim_lien, build_settle_option
from xrollup.codec import decode_bundle, decode_tx
from xrollup.model import Bundle, OptionKind

R = 4
GRACE = 6
EXPIRY = 5
CLOSES = EXPIRY + GRACE
STRIKE, SIZE, PREMIUM = 2_800 * 10**6, 2 * 10**9, 50 * 10**6
NEED = 5_600 * 10**6
PAYOUT = 600 * 10**6  # at 2,500 USDC
SHORT = dataclasses.replace(
    GENESIS,
    limits=dataclasses.replace(GENESIS.limits, record_retention_blocks=R, lien_grace_blocks=GRACE),
)
INDEXES = (ACCOUNT_LIEN, ACCOUNT_ESCROW, ACCOUNT_OPTION)
ASSETS = ("ETH", "USDC")


class IndexedPair(Pair):
    """A Pair that checks the account indexes against the records after each block."""

    def apply(self, *entries: object) -> tuple[BlockOutcome, BlockOutcome]:
        out = super().apply(*entries)  # type: ignore[arg-type]
        for chain in (self.alpha, self.beta):
            assert indexed(chain) == derived(chain), f"{chain.rollup} at {chain.height}"
        return out


def indexed(chain: Chain) -> set[bytes]:
    return {k for k in chain.state.items if k.startswith(INDEXES)}


def derived(chain: Chain) -> set[bytes]:
    """The index keys a scan of every record gives."""
    keys: set[bytes] = set()
    for key, raw in chain.state.items.items():
        if key.startswith(LIEN):
            lien = collateral.decode_lien(raw)
            if collateral.is_holding(lien):
                keys.add(account_lien_key(lien.owner, lien.id))
        elif key.startswith(ESCROW):
            bundle_id = key[len(ESCROW) :]
            for owner in bundles.compute_held_for(bundles.decode_escrow(raw)):
                keys.add(account_escrow_key(owner, bundle_id))
        elif key.startswith(OPTION):
            o = options.decode_option(raw)
            if options.is_live(o):
                keys |= {account_option_key(a, o.id) for a in (o.writer, o.holder)}
    return keys


def view(chain: Chain, who: bytes, limit: int = 1000) -> accounts.AccountView:
    return accounts.get_account(chain.state, who, ASSETS, limit)


def open_put(nonce: int = 1, collateral: int | None = None) -> Bundle:
    return decode_bundle(
        build_open_option(
            ALICE,
            BOB,
            OptionKind.PUT,
            STRIKE,
            SIZE,
            EXPIRY,
            PREMIUM,
            100,
            collateral=collateral,
            nonce=nonce,
        )
    )


def test_an_open_bundle_is_escrowed_then_a_lien_and_an_option_then_nothing_once_settled() -> None:
    p = IndexedPair(SHORT)
    b = open_put()

    p.apply(b)  # prepared on both: alpha holds the writer's collateral, beta the premium
    on_alpha, on_beta = view(p.alpha, ALICE.address), view(p.beta, BOB.address)
    assert [(e.bundle_id, e.held) for e in on_alpha.escrows] == [(b.id, {"USDC": NEED})]
    assert [(e.bundle_id, e.held) for e in on_beta.escrows] == [(b.id, {"USDC": PREMIUM})]
    assert on_alpha.escrows[0].prepare_height == 1
    assert view(p.alpha, BOB.address).escrows == () and view(p.beta, ALICE.address).escrows == ()
    assert on_alpha.liens == () and on_beta.options == ()
    free = on_alpha.balances["USDC"]

    p.decide(b.id, True)
    writer_alpha = view(p.alpha, ALICE.address)
    assert writer_alpha.escrows == ()
    [lien] = writer_alpha.liens
    assert (lien.id, lien.amount, lien.status) == (b.id, NEED, collateral.LOCKED)
    assert writer_alpha.balances["USDC"] == free  # the collateral is not free again
    for who in (ALICE, BOB):  # beta: writer and holder each see the option
        [o] = view(p.beta, who.address).options
        assert (o.id, o.status, o.liens) == (b.id, options.OPEN, (("alpha", NEED),))
    assert view(p.alpha, BOB.address).liens == ()

    p.skip_to(EXPIRY)
    settle = decode_bundle(build_settle_option(CAROL, b.id, PAYOUT, BOB.address, 100, nonce=2))
    p.apply(price_update(ORACLE, "ETH", "USDC", 2_500 * 10**6, rollup="beta"), settle)
    [pending] = view(p.alpha, ALICE.address).liens
    assert pending.status == collateral.PENDING  # still holds funds: still indexed
    assert view(p.beta, BOB.address).options[0].status == options.SETTLING
    assert view(p.alpha, CAROL.address).escrows == ()  # a settle bundle holds no funds

    p.decide(settle.id, True)
    assert view(p.alpha, ALICE.address).liens == ()
    assert view(p.beta, ALICE.address).options == () and view(p.beta, BOB.address).options == ()
    assert indexed(p.alpha) == indexed(p.beta) == set()
    assert view(p.alpha, ALICE.address).balances["USDC"] == free + NEED - PAYOUT


def test_an_aborted_bundle_leaves_no_index_key() -> None:
    p = IndexedPair(SHORT)
    thin = open_put(collateral=NEED - 1)  # beta votes no on the margin

    p.apply(thin)
    assert [e.held for e in view(p.alpha, ALICE.address).escrows] == [{"USDC": NEED - 1}]
    assert view(p.beta, BOB.address).escrows == ()  # beta voted no: it holds nothing
    p.decide(thin.id, False)

    assert indexed(p.alpha) == indexed(p.beta) == set()


def test_a_reclaimed_lien_and_a_pruned_open_option_leave_the_index() -> None:
    p = IndexedPair(SHORT)
    b = open_put()
    p.apply(b)
    p.decide(b.id, True)

    p.skip_to(CLOSES)
    p.apply(decode_tx(build_reclaim_lien(ALICE, b.id, 100)))  # the owner's exit
    assert view(p.alpha, ALICE.address).liens == ()
    # beta's option is OPEN (never settled): indexed until retention prunes it
    assert [o.id for o in view(p.beta, BOB.address).options] == [b.id]

    p.skip_to(CLOSES + R + 1)
    assert OPTION + b.id not in p.beta.state.items
    assert indexed(p.beta) == set()


def test_the_view_lists_ids_in_order_up_to_its_limit() -> None:
    p = IndexedPair(SHORT)
    opened = [open_put(nonce=n) for n in (1, 2, 3)]
    p.apply(*opened)
    for b in opened:
        p.decide(b.id, True)
    ids = sorted(b.id for b in opened)

    full = view(p.alpha, ALICE.address)
    two = view(p.alpha, ALICE.address, limit=2)

    assert [lien.id for lien in full.liens] == ids and not full.truncated
    assert [lien.id for lien in two.liens] == ids[:2] and two.truncated
    assert [o.id for o in view(p.beta, BOB.address, limit=3).options] == ids
    # an account with nothing: zeros for every asset, empty lists
    empty = view(p.alpha, b"\xff" * 20)
    assert empty.balances == {"ETH": 0, "USDC": 0}
    assert (empty.liens, empty.escrows, empty.options, empty.truncated) == ((), (), (), False)
    assert view(p.alpha, DAVE.address).liens == ()
