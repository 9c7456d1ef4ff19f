"""Properties of the option math (xrollup/options.py) and of a whole option's life
on the pure state machine (rollup_node/core/options.py stores the positions).

- rounding rule: collateral rounds up, payouts round down, so for any strike,
  size and price within u64 and any decimals 0..18, payout <= collateral and
  released = locked - payout >= 0 (a collateral past u64 raises, so such an
  option can never be opened);
- margin rule: the collateral covers the largest payout at any price;
- a put's payout is non-increasing in the price, a call's non-decreasing;
- end to end: open (locking collateral plus any surplus), price, settle and
  commit on alpha and beta: the holder receives exactly the payout, the writer
  exactly the rest, payout + released = locked, and supply is conserved after
  every block;
- several liens (xrollup.options.split_payout): the shares sum to the payout,
  total paid <= total locked, per lien share + released = locked, a lien pays
  only once the liens before it are spent; a percentage split of the collateral
  sums to it exactly; end to end with liens on one to three rollups (the
  option's own among them) in any order, each rollup pays the holder exactly its
  lien's share and returns the rest to the writer.

Each test runs hypothesis with the `seed` fixture's seed (printed; replay with
XR_SEED=<seed>) and prints a reproduction blob on failure."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from propsupport import decision, run_seeded, seal, signed_vote

from rollup_node.core import bank, bundles, collateral, options
from rollup_node.core.execute import BlockOutcome, apply_block, apply_genesis
from rollup_node.core.state import MemoryState, State
from rollup_node.core.supply import compute_supply
from xrollup.blocks import GENESIS_PARENT
from xrollup.client import build_open_option, build_price_update, build_settle_option
from xrollup.codec import decode_bundle, decode_tx
from xrollup.errors import ArithmeticOverflow
from xrollup.genesis import Asset, Genesis, dev_genesis
from xrollup.keys import derive_dev_account, derive_oracle_key
from xrollup.model import Block, Entry, OptionKind, ReasonCode, Vote
from xrollup.numeric import Uint64
from xrollup.options import (
    collateral_asset,
    compute_collateral,
    compute_payout,
    split_collateral,
    split_payout,
)

U64 = Uint64.MAX
KINDS = st.sampled_from([OptionKind.PUT, OptionKind.CALL])
u64 = st.one_of(st.integers(0, 2**20), st.integers(0, U64))  # small values hit more edges
decimals = st.integers(0, 18)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------- the formulas


def test_payout_never_exceeds_collateral_and_the_rest_is_released(seed: int) -> None:
    @given(KINDS, u64, u64, u64, decimals, u64)
    def check(kind: OptionKind, strike: int, size: int, price: int, d: int, surplus: int) -> None:
        if kind == OptionKind.PUT and ceil_div(strike * size, 10**d) > U64:
            with pytest.raises(ArithmeticOverflow):
                compute_collateral(kind, strike, size, d)
            return  # the margin rule cannot be met in u64: the open is refused
        need = compute_collateral(kind, strike, size, d)
        payout = compute_payout(kind, strike, size, price, d)
        assert 0 <= payout <= need
        locked = min(U64, int(need) + surplus)  # a lien may lock more than the margin
        released = locked - int(payout)
        assert released >= 0
        assert int(payout) + released == locked

    run_seeded(seed, max_examples=1000)(check)


def test_rounding_collateral_up_payout_down(seed: int) -> None:
    @given(u64, u64, u64, decimals)
    def check(strike: int, size: int, price: int, d: int) -> None:
        unit = 10**d
        exact = strike * size
        if ceil_div(exact, unit) <= U64:
            need = int(compute_collateral(OptionKind.PUT, strike, size, d))
            assert need * unit >= exact > (need - 1) * unit  # the least that covers
        owed = max(0, strike - price) * size
        if owed // unit <= U64:
            put = int(compute_payout(OptionKind.PUT, strike, size, price, d))
            assert put * unit <= owed < (put + 1) * unit  # the most that is owed
        call = int(compute_payout(OptionKind.CALL, strike, size, price, d))
        owed_call = size * max(0, price - strike)  # in underlying units, times price
        assert call * max(price, 1) <= owed_call < (call + 1) * max(price, 1)
        assert compute_collateral(OptionKind.CALL, strike, size, d) == size

    run_seeded(seed, max_examples=1000)(check)


def test_collateral_covers_the_largest_payout(seed: int) -> None:
    @given(u64, u64, decimals)
    def check(strike: int, size: int, d: int) -> None:
        # a put pays most at price 0; a call approaches size as the price grows
        if ceil_div(strike * size, 10**d) <= U64:
            need = compute_collateral(OptionKind.PUT, strike, size, d)
            assert compute_payout(OptionKind.PUT, strike, size, 0, d) <= need
        call_need = compute_collateral(OptionKind.CALL, strike, size, d)
        assert compute_payout(OptionKind.CALL, strike, size, U64, d) <= call_need

    run_seeded(seed, max_examples=1000)(check)


def test_put_payout_falls_and_call_payout_rises_with_the_price(seed: int) -> None:
    @given(u64, u64, u64, u64, decimals)
    def check(strike: int, size: int, p1: int, p2: int, d: int) -> None:
        low, high = min(p1, p2), max(p1, p2)
        if max(0, strike - low) * size // 10**d <= U64:
            put_low = compute_payout(OptionKind.PUT, strike, size, low, d)
            put_high = compute_payout(OptionKind.PUT, strike, size, high, d)
            assert put_low >= put_high
        call_low = compute_payout(OptionKind.CALL, strike, size, low, d)
        call_high = compute_payout(OptionKind.CALL, strike, size, high, d)
        assert call_low <= call_high

    run_seeded(seed, max_examples=1000)(check)


# ---------------------------------------------------------------- a whole option's life

WRITER, HOLDER, KEEPER = (derive_dev_account(i) for i in range(3))
ORACLE = derive_oracle_key()
RICH = 2**62  # the writer's genesis balance of each asset on alpha
MAX_TERM = 2**62  # strike, size and price stay within the admission limit (2**63 - 1)


def rich_genesis(eth_decimals: int) -> Genesis:
    """The dev genesis with ETH at `eth_decimals` and a writer rich enough on alpha
    to lock anything up to RICH."""
    g = dev_genesis()
    allocations = tuple(
        dataclasses.replace(a, amount=RICH)
        if a.rollup == "alpha" and a.address == WRITER.address
        else a
        for a in g.allocations
    )
    return dataclasses.replace(
        g, assets=(Asset("USDC", 6), Asset("ETH", eth_decimals)), allocations=allocations
    )


@st.composite
def lives(draw: st.DrawFn) -> tuple[OptionKind, int, int, int, int, int, int]:
    """(kind, decimals, strike, size, surplus, price, premium) whose lock fits RICH."""
    kind = draw(KINDS)
    d = draw(decimals)
    strike = draw(st.integers(1, MAX_TERM))  # the wire refuses zero strike, size, price
    # a put locks strike * size / 10**d of USDC, a call locks size of ETH
    max_size = min(MAX_TERM, RICH * 10**d // max(strike, 1)) if kind == OptionKind.PUT else RICH
    size = draw(st.integers(1, max_size))
    need = int(compute_collateral(kind, strike, size, d))
    surplus = draw(st.integers(0, RICH - need))
    price = draw(st.integers(1, MAX_TERM))
    premium = draw(st.integers(0, 10**9))
    return kind, d, strike, size, surplus, price, premium


class Rollup:
    """One rollup's state over blocks, applied with the node's pure state machine."""

    def __init__(self, name: str, genesis: Genesis) -> None:
        self.name, self.genesis = name, genesis
        self.state = MemoryState()
        self.state.apply(apply_genesis(self.state, genesis, name).writes)

    def apply(self, block: Block) -> BlockOutcome:
        out = apply_block(self.state, block, self.name, self.genesis)
        self.state.apply(out.writes)
        return out

    def balance(self, who: bytes, asset: str) -> int:
        return int(bank.get_balance(State(self.state), who, asset))


class Honest:
    """Rollups applying the blocks an honest sequencer seals, where every entry
    succeeds, every vote is yes, every finished bundle commits and supply is
    conserved after each block; `commit` is what the sequencer logs next."""

    def __init__(self, genesis: Genesis, names: tuple[str, ...]) -> None:
        self.genesis = genesis
        self.rollups = {name: Rollup(name, genesis) for name in names}
        self.chain = [GENESIS_PARENT]
        self.votes: list[Vote] = []  # what the rollups voted in the last block, signed

    def apply(self, *entries: Entry) -> None:
        block = seal(len(self.chain), self.chain[-1], entries, self.genesis)
        self.chain.append(block.hash)
        self.votes.clear()
        for rollup in self.rollups.values():
            out = rollup.apply(block)
            assert all(r.ok for r in out.receipts), out.receipts
            assert all(v.yes for v in out.votes), out.votes
            assert all(s.status == bundles.COMMITTED for s in out.finished)
            for a in compute_supply(rollup.state.items.items()).assets.values():
                assert a.conserved, (rollup.name, a)
            if out.votes:
                self.votes.append(signed_vote(rollup.name, out.height, out.votes, self.genesis))

    def commit(self, bundle_id: bytes) -> tuple[Entry, ...]:
        """The involved rollups' votes, then the commit, as the sequencer logs them."""
        return (*self.votes, decision(bundle_id, True, ReasonCode.ALL_YES))


def test_settlement_pays_exactly_the_payout_and_releases_the_rest(seed: int) -> None:
    @given(lives())
    def check(life: tuple[OptionKind, int, int, int, int, int, int]) -> None:
        kind, d, strike, size, surplus, price, premium = life
        genesis = rich_genesis(d)
        net = Honest(genesis, ("alpha", "beta"))
        apply, commit = net.apply, net.commit
        alpha = net.rollups["alpha"]
        beta = net.rollups["beta"]
        asset = collateral_asset(kind, "ETH", "USDC")
        need = int(compute_collateral(kind, strike, size, d))
        locked = need + surplus

        opened = decode_bundle(
            build_open_option(
                WRITER,
                HOLDER,
                kind,
                strike,
                size,
                2,
                premium,
                100,
                underlying_decimals=d,
                collateral=locked,
                nonce=1,
            )
        )
        quote = decode_tx(build_price_update(ORACLE, "beta", "ETH", "USDC", price, 100))
        apply(opened)
        apply(*commit(opened.id), quote)
        payout = int(compute_payout(kind, strike, size, price, d))
        assert payout <= need <= locked
        settle = decode_bundle(
            build_settle_option(KEEPER, opened.id, payout, HOLDER.address, 100, nonce=2)
        )
        writer_before = alpha.balance(WRITER.address, asset)
        holder_before = alpha.balance(HOLDER.address, asset)
        apply(settle)
        apply(*commit(settle.id))

        writer_gain = (
            int(bank.get_balance(State(alpha.state), WRITER.address, asset)) - writer_before
        )
        holder_gain = (
            int(bank.get_balance(State(alpha.state), HOLDER.address, asset)) - holder_before
        )
        assert holder_gain == payout
        assert writer_gain == locked - payout >= 0
        assert writer_gain + holder_gain == locked
        lien = collateral.get_lien(State(alpha.state), opened.id)
        assert lien is not None
        assert (lien.status, lien.amount, lien.paid_out) == (collateral.RELEASED, locked, payout)
        o = options.get_option(State(beta.state), opened.id)
        assert o is not None and (o.status, o.payout) == (options.SETTLED, payout)

    run_seeded(seed, max_examples=200)(check)


# ---------------------------------------------------------------- several liens


@st.composite
def lien_sets(draw: st.DrawFn) -> tuple[list[int], int]:
    """(lien amounts, payout) with 1..4 liens and a payout they can cover."""
    liens = draw(
        st.lists(st.one_of(st.integers(0, 2**20), st.integers(0, U64)), min_size=1, max_size=4)
    )
    payout = draw(st.integers(0, sum(liens)))
    return liens, payout


def test_the_waterfall_split_pays_exactly_and_never_more_than_a_lien(seed: int) -> None:
    @given(lien_sets())
    def check(case: tuple[list[int], int]) -> None:
        liens, payout = case
        shares = split_payout(payout, liens)
        assert sum(shares) == payout <= sum(liens)  # total paid <= total locked
        for share, locked in zip(shares, liens, strict=True):
            released = locked - share
            assert 0 <= share <= locked and released >= 0
            assert share + released == locked  # per lien
        # in order: a lien pays only once every lien before it is spent whole
        for i, share in enumerate(shares):
            if share:
                assert all(shares[j] == liens[j] for j in range(i))
        with pytest.raises(ValueError):
            split_payout(sum(liens) + 1, liens)

    run_seeded(seed, max_examples=1000)(check)


def test_a_percentage_split_of_the_collateral_sums_to_it_exactly(seed: int) -> None:
    @given(u64, st.lists(st.integers(1, 9_999), min_size=0, max_size=3))
    def check(total: int, cuts: list[int]) -> None:
        points = sorted(set(cuts))
        weights = [b - a for a, b in zip([0, *points], [*points, 10_000], strict=True)]
        shares = split_collateral(total, weights)
        assert sum(shares) == total and all(s >= 0 for s in shares)
        for share, w in zip(shares[:-1], weights[:-1], strict=True):
            assert share == total * w // 10_000  # every lien but the last rounds down

    run_seeded(seed, max_examples=1000)(check)


THREE = ("alpha", "beta", "gamma")


def rich_genesis_of(rollups: tuple[str, ...], eth_decimals: int) -> Genesis:
    g = dev_genesis(rollups=rollups)
    allocations = tuple(
        dataclasses.replace(a, amount=RICH) if a.address == WRITER.address else a
        for a in g.allocations
    )
    return dataclasses.replace(
        g, assets=(Asset("USDC", 6), Asset("ETH", eth_decimals)), allocations=allocations
    )


@st.composite
def multi_lives(draw: st.DrawFn) -> tuple[OptionKind, int, int, int, list[tuple[str, int]], int]:
    """(kind, decimals, strike, size, liens, price): liens on 1..3 of alpha, beta
    (local) and gamma in a drawn order, together at least the collateral."""
    kind = draw(KINDS)
    d = draw(st.integers(0, 12))
    strike = draw(st.integers(1, 2**40))
    max_size = min(2**40, RICH * 10**d // strike) if kind == OptionKind.PUT else 2**40
    size = draw(st.integers(1, max_size))
    need = int(compute_collateral(kind, strike, size, d))
    on = draw(st.permutations(THREE).map(list))[: draw(st.integers(1, 3))]
    cuts = sorted(draw(st.lists(st.integers(0, need), min_size=len(on) - 1, max_size=len(on) - 1)))
    amounts = [b - a for a, b in zip([0, *cuts], [*cuts, need], strict=True)]
    amounts = [a + draw(st.integers(0, 2**20)) for a in amounts]  # surplus per lien
    amounts = [max(a, 1) for a in amounts]  # a lien holds something
    price = draw(st.integers(1, 2**40))
    return kind, d, strike, size, list(zip(on, amounts, strict=True)), price


def test_a_multi_lien_settlement_pays_each_share_and_returns_each_rest(seed: int) -> None:
    @given(multi_lives())
    def check(life: tuple[OptionKind, int, int, int, list[tuple[str, int]], int]) -> None:
        kind, d, strike, size, liens, price = life
        genesis = rich_genesis_of(THREE, d)
        net = Honest(genesis, THREE)
        apply, commit, rollups = net.apply, net.commit, net.rollups
        asset = collateral_asset(kind, "ETH", "USDC")

        opened = decode_bundle(
            build_open_option(
                WRITER,
                HOLDER,
                kind,
                strike,
                size,
                2,
                0,
                100,
                underlying_decimals=d,
                liens=liens,
                option_rollup="beta",
                nonce=1,
            )
        )
        quote = decode_tx(build_price_update(ORACLE, "beta", "ETH", "USDC", price, 100))
        apply(opened)
        apply(*commit(opened.id), quote)
        payout = int(compute_payout(kind, strike, size, price, d))
        shares = split_payout(payout, [a for _, a in liens])
        before = {
            (r, who): rollups[r].balance(who, asset)
            for r, _ in liens
            for who in (WRITER.address, HOLDER.address)
        }
        settle = decode_bundle(
            build_settle_option(
                KEEPER,
                opened.id,
                payout,
                HOLDER.address,
                100,
                option_rollup="beta",
                liens=liens,
                nonce=2,
            )
        )
        apply(settle)
        apply(*commit(settle.id))

        assert sum(shares) == payout <= sum(a for _, a in liens)
        for (r, locked), share in zip(liens, shares, strict=True):
            paid = rollups[r].balance(HOLDER.address, asset) - before[(r, HOLDER.address)]
            released = rollups[r].balance(WRITER.address, asset) - before[(r, WRITER.address)]
            assert paid == share and released == locked - share  # paid + released = locked
            lien = collateral.get_lien(State(rollups[r].state), opened.id)
            assert lien is not None
            assert (lien.status, lien.amount, lien.paid_out) == (
                collateral.RELEASED,
                locked,
                share,
            )
        o = options.get_option(State(rollups["beta"].state), opened.id)
        assert o is not None and (o.status, o.payout, o.shares) == (
            options.SETTLED,
            payout,
            shares,
        )

    run_seeded(seed, max_examples=100)(check)
