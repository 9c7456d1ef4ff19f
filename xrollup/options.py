"""The option math every party recomputes: the collateral an option demands and its
payout at settlement, for fully collateralized European options on the options rollup.

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

from xrollup.model import OptionKind
from xrollup.numeric import Amount


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
    """The asset an option's collateral (and so its payout) is held in."""
    return quote if kind == OptionKind.PUT else underlying
