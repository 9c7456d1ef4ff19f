"""bank (rollup_node/core/bank.py): balances per address and asset, transfers,
genesis minting. Pre-state, operation, post-state; a refused operation leaves
the state's writes exactly as they were."""

from __future__ import annotations

import pytest
from statesupport import ALICE, BOB, CAROL, genesis_state

from rollup_node.core import bank
from rollup_node.core.state import (
    MemoryState,
    State,
    balance_key,
    decode_u64,
    encode_u64,
    supply_key,
)
from xrollup.errors import Refused
from xrollup.model import Transfer
from xrollup.numeric import Amount


def state_with(**balances: int) -> State:
    """A State over a base holding USDC balances for the named dev accounts."""
    accounts = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    items = {
        balance_key(accounts[name].address, "USDC"): encode_u64(amount)
        for name, amount in balances.items()
    }
    return State(MemoryState(items))


def test_storage_keys_are_as_documented() -> None:
    # Pinned: these bytes are the state encoding (see rollup_node/core/state.py).
    assert balance_key(ALICE.address, "USDC") == b"bal:" + ALICE.address + b"USDC"
    assert supply_key("ETH") == b"sup:ETH"
    assert encode_u64(5) == b"\x00\x00\x00\x00\x00\x00\x00\x05"
    assert decode_u64(encode_u64(2**64 - 1)) == 2**64 - 1


def test_an_unknown_account_holds_zero() -> None:
    state = State(MemoryState())
    assert bank.get_balance(state, ALICE.address, "USDC") == 0
    assert type(bank.get_balance(state, ALICE.address, "USDC")) is Amount
    assert bank.get_supply(state, "USDC") == 0


def test_increase_then_decrease_balance() -> None:
    state = state_with(alice=100)

    bank.increase_balance(state, ALICE.address, "USDC", Amount(50))
    assert bank.get_balance(state, ALICE.address, "USDC") == 150
    bank.decrease_balance(state, ALICE.address, "USDC", Amount(120))

    assert bank.get_balance(state, ALICE.address, "USDC") == 30
    assert state.writes == {balance_key(ALICE.address, "USDC"): encode_u64(30)}


def test_a_zero_balance_is_deleted_not_stored() -> None:
    # One encoding per state: an emptied account looks like one that never held anything,
    # so the state root does not depend on history.
    state = state_with(alice=100)

    bank.decrease_balance(state, ALICE.address, "USDC", Amount(100))

    assert bank.get_balance(state, ALICE.address, "USDC") == 0
    assert state.writes == {balance_key(ALICE.address, "USDC"): None}


def test_overspend_is_refused_and_changes_nothing() -> None:
    state = state_with(alice=100, bob=7)
    bank.increase_balance(state, BOB.address, "USDC", Amount(1))  # an earlier write this block
    before = dict(state.writes)

    with pytest.raises(
        bank.InsufficientFunds, match=r"insufficient USDC: 0x[0-9a-f]{40} holds 100"
    ):
        bank.decrease_balance(state, ALICE.address, "USDC", Amount(101))

    assert issubclass(bank.InsufficientFunds, Refused)
    assert state.writes == before
    assert bank.get_balance(state, ALICE.address, "USDC") == 100


def test_transfer_moves_the_amount() -> None:
    state = state_with(alice=100, bob=7)

    bank.apply_transfer(state, ALICE.address, Transfer(BOB.address, "USDC", Amount(40)))

    assert bank.get_balance(state, ALICE.address, "USDC") == 60
    assert bank.get_balance(state, BOB.address, "USDC") == 47


def test_transfer_to_a_new_account_creates_it() -> None:
    state = state_with(alice=100)

    bank.apply_transfer(state, ALICE.address, Transfer(CAROL.address, "USDC", Amount(100)))

    assert state.writes == {
        balance_key(ALICE.address, "USDC"): None,
        balance_key(CAROL.address, "USDC"): encode_u64(100),
    }


def test_transfer_to_self_keeps_the_balance() -> None:
    state = state_with(alice=100)

    bank.apply_transfer(state, ALICE.address, Transfer(ALICE.address, "USDC", Amount(60)))

    assert bank.get_balance(state, ALICE.address, "USDC") == 100
    # Written back to its old value: the same (key, value) set, so the same root.
    assert state.writes == {balance_key(ALICE.address, "USDC"): encode_u64(100)}


def test_transfer_overspend_is_refused_and_changes_nothing() -> None:
    state = state_with(alice=100, bob=7)

    with pytest.raises(bank.InsufficientFunds):
        bank.apply_transfer(state, ALICE.address, Transfer(BOB.address, "USDC", Amount(101)))

    assert state.writes == {}


def test_transfer_of_an_asset_never_held_is_refused() -> None:
    state = state_with(alice=100)

    with pytest.raises(bank.InsufficientFunds, match="insufficient ETH"):
        bank.apply_transfer(state, ALICE.address, Transfer(BOB.address, "ETH", Amount(1)))

    assert state.writes == {}


def test_assets_are_separate() -> None:
    state = state_with(alice=100)

    bank.increase_balance(state, ALICE.address, "ETH", Amount(5))

    assert bank.get_balance(state, ALICE.address, "USDC") == 100
    assert bank.get_balance(state, ALICE.address, "ETH") == 5


def test_mint_grows_balance_and_supply_together() -> None:
    state = State(MemoryState())

    bank.mint(state, ALICE.address, "ETH", Amount(10))
    bank.mint(state, BOB.address, "ETH", Amount(5))
    bank.mint(state, ALICE.address, "ETH", Amount(1))

    assert bank.get_balance(state, ALICE.address, "ETH") == 11
    assert bank.get_balance(state, BOB.address, "ETH") == 5
    assert bank.get_supply(state, "ETH") == 16
    assert bank.get_supply(state, "USDC") == 0


def test_transfers_keep_supply() -> None:
    state = State(genesis_state("alpha"))
    supply = bank.get_supply(state, "USDC")

    bank.apply_transfer(state, ALICE.address, Transfer(BOB.address, "USDC", Amount(12_345)))
    bank.apply_transfer(state, BOB.address, Transfer(CAROL.address, "USDC", Amount(99)))

    assert bank.get_supply(state, "USDC") == supply
    assert supply_key("USDC") not in state.writes
