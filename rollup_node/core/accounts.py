"""An account's holds on this rollup, read through the account indexes of
state.py (b"acl:", b"ace:", b"aco:") instead of a scan of the state: its
balances, the liens it owns that still hold funds, what undecided bundles hold
in escrow on its behalf, and the live options it writes or holds. Read-only:
the indexes are written where their records are (collateral.save_lien,
bundles.save_escrow, options.save_option)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rollup_node.core import bank, bundles, collateral, options
from rollup_node.core.state import (
    ACCOUNT_ESCROW,
    ACCOUNT_LIEN,
    ACCOUNT_OPTION,
    State,
    StateReader,
    compute_prefix_end,
)
from xrollup.keys import ADDRESS_LEN, Address

ID_LEN = 32


@dataclass(frozen=True, slots=True)
class EscrowHold:
    """What one undecided bundle holds for the account, per asset."""

    bundle_id: bytes
    prepare_height: int
    held: dict[str, int]


@dataclass(frozen=True, slots=True)
class AccountView:
    address: Address
    balances: dict[str, int]  # every asset asked for, zeros included
    liens: tuple[collateral.Lien, ...]  # LOCKED or PENDING, by id
    escrows: tuple[EscrowHold, ...]  # by bundle id
    options: tuple[options.OptionPosition, ...]  # OPEN or SETTLING, by id
    truncated: bool  # some list stopped at `limit`


def get_indexed_ids(base: StateReader, prefix: bytes, address: Address) -> Iterator[bytes]:
    """The ids an account index lists for `address`, in id order."""
    start = prefix + address
    for key, _ in base.iterate(start, compute_prefix_end(start)):
        yield key[len(prefix) + ADDRESS_LEN :]


def _first(ids: Iterable[bytes], limit: int) -> tuple[list[bytes], bool]:
    out: list[bytes] = []
    for i in ids:
        if len(out) == limit:
            return out, True
        out.append(i)
    return out, False


def get_account(
    base: StateReader, address: Address, assets: Iterable[str], limit: int
) -> AccountView:
    """The account's view; at most `limit` of each list (by id), `truncated` when
    there were more."""
    assert len(address) == ADDRESS_LEN
    state = State(base)
    lien_ids, more_liens = _first(get_indexed_ids(base, ACCOUNT_LIEN, address), limit)
    escrow_ids, more_escrows = _first(get_indexed_ids(base, ACCOUNT_ESCROW, address), limit)
    option_ids, more_options = _first(get_indexed_ids(base, ACCOUNT_OPTION, address), limit)
    liens = []
    for lien_id in lien_ids:
        lien = collateral.get_lien(state, lien_id)
        assert lien is not None and collateral.is_holding(lien), lien_id.hex()  # the index
        liens.append(lien)
    escrows = []
    for bundle_id in escrow_ids:
        escrow = bundles.get_escrow(state, bundle_id)
        record = bundles.get_record(state, bundle_id)
        assert escrow is not None and record is not None, bundle_id.hex()  # the index
        held = bundles.compute_held_for(escrow).get(address, {})
        escrows.append(EscrowHold(bundle_id, record.prepare_height, dict(sorted(held.items()))))
    positions = []
    for option_id in option_ids:
        o = options.get_option(state, option_id)
        assert o is not None and options.is_live(o), option_id.hex()  # the index
        positions.append(o)
    return AccountView(
        address=address,
        balances={a: int(bank.get_balance(state, address, a)) for a in assets},
        liens=tuple(liens),
        escrows=tuple(escrows),
        options=tuple(positions),
        truncated=more_liens or more_escrows or more_options,
    )
