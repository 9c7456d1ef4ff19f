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

Margin rule: the liens locked by the opening bundle (one per collateral
rollup, each in the collateral asset and more than zero) must together hold at
least the collateral; they then cover the largest payout.

Several liens (collateral on several rollups): the payout is split over the
liens in the option's order, a waterfall: the first lien pays as much as it
holds, then the next, and so on (`split_payout`). Integer, exact, no rounding:
the shares sum to the payout, each share is at most its lien, and each lien's
owner gets back its amount minus its share. The order is the writer's choice at
open (the order of `collateral_rollups`): list first the lien you would rather
spend."""

from __future__ import annotations

from collections.abc import Sequence

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


def split_payout(payout: int, liens: Sequence[int]) -> tuple[int, ...]:
    """Each lien's share of `payout`, in order: the first pays up to its amount,
    the rest falls to the next (ValueError if the liens hold less than payout;
    the margin rule makes that impossible for an option's own payout)."""
    if payout < 0 or any(a < 0 for a in liens):
        raise ValueError("payout and liens must not be negative")
    shares = []
    left = int(payout)
    for amount in liens:
        share = min(left, int(amount))
        shares.append(share)
        left -= share
    if left:
        raise ValueError(f"the liens hold {sum(liens)}, less than the payout {payout}")
    return tuple(shares)


BASIS_POINTS = 10_000


def split_collateral(total: int, weights_bps: Sequence[int]) -> tuple[int, ...]:
    """`total` split by weights in basis points (summing to 10,000), for locking
    one lien per rollup: each share is floor(total * weight / 10,000) except the
    last, which takes what is left, so the shares sum to `total` exactly and the
    margin rule holds whenever `total` meets it."""
    if not weights_bps or any(w <= 0 for w in weights_bps) or sum(weights_bps) != BASIS_POINTS:
        raise ValueError("the weights must be positive and sum to 100%")
    shares = [int(total) * int(w) // BASIS_POINTS for w in weights_bps[:-1]]
    return (*shares, int(total) - sum(shares))
