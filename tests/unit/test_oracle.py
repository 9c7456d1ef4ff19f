"""oracle (rollup_node/core/oracle.py): prices per asset pair with the height
they were posted at, accepted only from the genesis oracle key. Pre-state,
operation, post-state; a refused update leaves only its seen-marker."""

from __future__ import annotations

import struct

from statesupport import ALICE, ORACLE, Chain, price_update, seen_marker

from rollup_node.core import oracle
from rollup_node.core.state import MemoryState, State, price_key
from xrollup.model import PriceUpdate
from xrollup.numeric import Amount, Height

ETH_USDC = 3_000 * 10**6  # USDC base units per 1 ETH


def test_price_key_is_as_documented() -> None:
    assert price_key("ETH", "USDC") == b"px:ETH/USDC"


def test_no_price_before_one_is_posted() -> None:
    assert oracle.get_price(State(MemoryState()), "ETH", "USDC") is None


def test_price_update_stores_price_and_height() -> None:
    state = State(MemoryState())

    oracle.apply_price_update(state, PriceUpdate("ETH", "USDC", Amount(ETH_USDC)), Height(7))

    p = oracle.get_price(state, "ETH", "USDC")
    assert p == oracle.Price("ETH", "USDC", Amount(ETH_USDC), Height(7))
    assert type(p.price) is Amount and type(p.height) is Height
    # The pair is directed: the inverse pair has no price.
    assert oracle.get_price(state, "USDC", "ETH") is None


def test_a_later_update_replaces_the_price() -> None:
    state = State(MemoryState())
    oracle.apply_price_update(state, PriceUpdate("ETH", "USDC", Amount(ETH_USDC)), Height(7))

    oracle.apply_price_update(state, PriceUpdate("ETH", "USDC", Amount(2_500 * 10**6)), Height(9))

    p = oracle.get_price(state, "ETH", "USDC")
    assert p is not None and (p.price, p.height) == (2_500 * 10**6, 9)


def test_price_update_by_the_oracle_is_applied() -> None:
    chain = Chain("alpha")
    chain.apply([])
    tx = price_update(ORACLE, "ETH", "USDC", ETH_USDC, nonce=1)

    outcome = chain.apply([tx])

    assert [(r.id, r.ok, r.reason) for r in outcome.receipts] == [(tx.id, True, "")]
    p = oracle.get_price(State(chain.state), "ETH", "USDC")
    assert p is not None and (p.price, p.height) == (ETH_USDC, 2)
    # price u64 + height u64, as documented in rollup_node/core/state.py
    stored = struct.pack(">QQ", ETH_USDC, 2)
    assert outcome.writes == {price_key("ETH", "USDC"): stored} | seen_marker(tx)


def test_price_update_by_another_account_fails_and_changes_nothing() -> None:
    chain = Chain("alpha")
    tx = price_update(ALICE, "ETH", "USDC", 1, nonce=1)

    outcome = chain.apply([tx])

    (r,) = outcome.receipts
    assert not r.ok
    assert "price updates must come from the genesis oracle account" in r.reason
    assert outcome.writes == seen_marker(tx)
    assert oracle.get_price(State(chain.state), "ETH", "USDC") is None


def test_a_refused_update_leaves_the_posted_price() -> None:
    chain = Chain("alpha")
    chain.apply([price_update(ORACLE, "ETH", "USDC", ETH_USDC, nonce=1)])

    chain.apply([price_update(ALICE, "ETH", "USDC", 1, nonce=2)])

    p = oracle.get_price(State(chain.state), "ETH", "USDC")
    assert p is not None and (p.price, p.height) == (ETH_USDC, 1)


def test_price_update_for_an_unknown_asset_fails() -> None:
    chain = Chain("alpha")
    tx = price_update(ORACLE, "DOGE", "USDC", 5, nonce=1)

    outcome = chain.apply([tx])

    (r,) = outcome.receipts
    assert not r.ok and "unknown asset 'DOGE'" in r.reason
    assert outcome.writes == seen_marker(tx)


def test_prices_are_per_rollup() -> None:
    alpha, beta = Chain("alpha"), Chain("beta")
    tx = price_update(ORACLE, "ETH", "USDC", ETH_USDC, nonce=1, rollup="alpha")

    alpha.apply([tx])
    outcome = beta.apply([tx])

    assert oracle.get_price(State(alpha.state), "ETH", "USDC") is not None
    assert outcome.receipts == () and outcome.writes == {}
    assert oracle.get_price(State(beta.state), "ETH", "USDC") is None
