"""oracle: prices posted by the genesis oracle key, sequenced like any
transaction, kept per asset pair with the height they were posted at. A price
is quote-asset base units per one whole unit (10^decimals) of the base asset."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rollup_node.core.state import State, price_key
from xrollup.model import PriceUpdate
from xrollup.numeric import Amount, Height


@dataclass(frozen=True, slots=True)
class Price:
    base: str
    quote: str
    price: Amount
    height: Height


def get_price(state: State, base: str, quote: str) -> Price | None:
    raw = state.get(price_key(base, quote))
    if raw is None:
        return None
    price, height = struct.unpack(">QQ", raw)
    return Price(base, quote, Amount(price), Height(height))


def apply_price_update(state: State, update: PriceUpdate, height: Height) -> None:
    state.put(price_key(update.base, update.quote), struct.pack(">QQ", update.price, height))
