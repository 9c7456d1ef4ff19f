"""options: the option positions of the options rollup, as stored in its state
(one record per option, keyed by its id) and how they are read and saved.

The option math (collateral, payout, the rounding and margin rules) is the
shared xrollup/options.py: the client and the tools compute the same figures."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from rollup_node.core.state import OPTION, State, account_option_key, encode_record
from xrollup.keys import Address
from xrollup.model import OptionKind

# Re-exported for rollup_node.core.bundles, which calls them as options.compute_*.
from xrollup.options import collateral_asset as collateral_asset
from xrollup.options import compute_collateral as compute_collateral
from xrollup.options import compute_payout as compute_payout
from xrollup.options import split_payout as split_payout

OPEN = "open"
SETTLING = "settling"
SETTLED = "settled"


@dataclass(frozen=True, slots=True)
class OptionPosition:
    id: bytes
    kind: OptionKind
    underlying: str
    quote: str
    strike: int
    size: int
    expiry_height: int
    premium: int
    writer: Address
    holder: Address
    liens: tuple[tuple[str, int], ...]  # (rollup, amount) in payout order
    collateral_asset: str
    collateral: int  # the liens' total
    status: str
    opened_height: int
    settled_height: int = 0
    settle_price: int = 0
    payout: int = 0
    shares: tuple[int, ...] = ()  # each lien's share of the payout, once settled


_OPTION_FIELDS = tuple(f.name for f in fields(OptionPosition))


def encode_option(o: OptionPosition) -> bytes:
    d = {name: getattr(o, name) for name in _OPTION_FIELDS}  # asdict() deep-copies: slow
    d.update(id=o.id.hex(), writer=o.writer.hex(), holder=o.holder.hex(), kind=int(o.kind))
    return encode_record(d)


def decode_option(raw: bytes) -> OptionPosition:
    d = json.loads(raw)
    d.update(
        id=bytes.fromhex(d["id"]),
        writer=bytes.fromhex(d["writer"]),
        holder=bytes.fromhex(d["holder"]),
        kind=OptionKind(d["kind"]),
        liens=tuple((str(r), int(a)) for r, a in d["liens"]),
        shares=tuple(int(s) for s in d["shares"]),
    )
    return OptionPosition(**d)


def get_option(state: State, option_id: bytes) -> OptionPosition | None:
    raw = state.get(OPTION + option_id)
    return None if raw is None else decode_option(raw)


def is_live(option: OptionPosition) -> bool:
    """OPEN or SETTLING: its writer's and holder's index keys exist."""
    return option.status in (OPEN, SETTLING)


def compute_parties(option: OptionPosition) -> tuple[Address, ...]:
    """Writer and holder, once each (one account may be both)."""
    return tuple(dict.fromkeys((option.writer, option.holder)))


def save_option(state: State, option: OptionPosition) -> None:
    """Save the option, and its writer's and holder's index keys (b"aco:") while
    it is OPEN or SETTLING: written when it opens, deleted when it settles."""
    state.put(OPTION + option.id, encode_option(option))
    for account in compute_parties(option):
        key = account_option_key(account, option.id)
        if is_live(option):
            state.put(key, b"")
        else:
            state.delete(key)


def delete_option(state: State, option: OptionPosition) -> None:
    """Retention: the record goes, and with it the index keys of one still OPEN
    (its claim window closed long ago), so no index key names a pruned option."""
    state.delete(OPTION + option.id)
    for account in compute_parties(option):
        state.delete(account_option_key(account, option.id))
