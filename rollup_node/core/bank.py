"""bank: multi-asset balances in integer base units, transfers and genesis
allocations. Balances never go negative: decrease_balance refuses an overspend
and leaves the state untouched."""

from __future__ import annotations

from rollup_node.core.state import State, balance_key, decode_u64, encode_u64, supply_key
from xrollup.errors import Refused
from xrollup.keys import Address, encode_address
from xrollup.model import Transfer
from xrollup.numeric import Amount


class InsufficientFunds(Refused):
    """The account holds less than the amount it would spend."""


def get_balance(state: State, address: Address, asset: str) -> Amount:
    raw = state.get(balance_key(address, asset))
    return Amount(0) if raw is None else Amount(decode_u64(raw))


def set_balance(state: State, address: Address, asset: str, amount: Amount) -> None:
    key = balance_key(address, asset)
    if amount == 0:
        state.delete(key)
    else:
        state.put(key, encode_u64(amount))


def increase_balance(state: State, address: Address, asset: str, amount: Amount) -> None:
    set_balance(state, address, asset, get_balance(state, address, asset) + amount)


def decrease_balance(state: State, address: Address, asset: str, amount: Amount) -> None:
    balance = get_balance(state, address, asset)
    if balance < amount:
        raise InsufficientFunds(
            f"insufficient {asset}: {encode_address(address)} holds {int(balance)},"
            f" needs {int(amount)}"
        )
    set_balance(state, address, asset, balance - amount)


def get_supply(state: State, asset: str) -> Amount:
    raw = state.get(supply_key(asset))
    return Amount(0) if raw is None else Amount(decode_u64(raw))


def mint(state: State, address: Address, asset: str, amount: Amount) -> None:
    """Create new units (genesis only, for now): the one way supply grows."""
    increase_balance(state, address, asset, amount)
    state.put(supply_key(asset), encode_u64(get_supply(state, asset) + amount))


def apply_transfer(state: State, sender: Address, transfer: Transfer) -> None:
    decrease_balance(state, sender, transfer.asset, transfer.amount)
    increase_balance(state, transfer.to, transfer.asset, transfer.amount)
