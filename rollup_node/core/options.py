"""options: fully collateralized European options on the options rollup.

Amounts are integers. A price and a strike are quote-asset base units per one
whole unit (10**decimals base units) of the underlying; a size is in base
units of the underlying.

- Cash-secured put: collateral = ceil(strike * size / 10**d) in the quote asset;
  payout at settlement = floor(max(0, strike - price) * size / 10**d), in quote.
- Covered call: collateral = size in the underlying; payout =
  floor(size * max(0, price - strike) / price), in the underlying (the
  in-the-money value converted at the settlement price).

Rounding rule: collateral rounds up and payouts round down, both in the
writer's disfavour for collateral and the holder's for payouts, so payout <=
collateral always holds and released = collateral - payout is never negative.

Margin rule: the lien locked by the opening bundle must hold at least the
collateral, in the collateral asset; it then covers the largest payout."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from rollup_node.core.state import State
from xrollup.keys import Address
from xrollup.model import OptionKind
from xrollup.numeric import Amount

OPTION = b"opt:"

OPEN = "open"
SETTLING = "settling"
SETTLED = "settled"


def compute_collateral(kind: OptionKind, strike: int, size: int, decimals: int) -> Amount:
    """The collateral the margin rule demands, in the collateral asset."""
    strike, size = int(strike), int(size)  # plain ints: the product may pass 64 bits
    if kind == OptionKind.PUT:
        return Amount(-((-strike * size) // 10**decimals))  # ceil division
    return Amount(size)


def compute_payout(kind: OptionKind, strike: int, size: int, price: int, decimals: int) -> Amount:
    """The payout to the holder at settlement price `price`, in the collateral asset."""
    strike, size, price = int(strike), int(size), int(price)
    if kind == OptionKind.PUT:
        return Amount(max(0, strike - price) * size // 10**decimals)
    if price <= strike:
        return Amount(0)
    return Amount(size * (price - strike) // price)


def collateral_asset(kind: OptionKind, underlying: str, quote: str) -> str:
    return quote if kind == OptionKind.PUT else underlying


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
    collateral_rollup: str
    collateral_asset: str
    collateral: int
    status: str
    opened_height: int
    settled_height: int = 0
    settle_price: int = 0
    payout: int = 0


_OPTION_FIELDS = tuple(f.name for f in fields(OptionPosition))


def encode_option(o: OptionPosition) -> bytes:
    d = {name: getattr(o, name) for name in _OPTION_FIELDS}  # asdict() deep-copies: slow
    d.update(id=o.id.hex(), writer=o.writer.hex(), holder=o.holder.hex(), kind=int(o.kind))
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


def decode_option(raw: bytes) -> OptionPosition:
    d = json.loads(raw)
    d.update(
        id=bytes.fromhex(d["id"]),
        writer=bytes.fromhex(d["writer"]),
        holder=bytes.fromhex(d["holder"]),
        kind=OptionKind(d["kind"]),
    )
    return OptionPosition(**d)


def get_option(state: State, option_id: bytes) -> OptionPosition | None:
    raw = state.get(OPTION + option_id)
    return None if raw is None else decode_option(raw)


def save_option(state: State, option: OptionPosition) -> None:
    state.put(OPTION + option.id, encode_option(option))
