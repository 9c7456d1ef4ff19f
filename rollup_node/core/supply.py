"""Supply accounting for invariant I2: per asset, what genesis minted equals what
sits in balances, plus escrows of undecided bundles, plus locked liens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rollup_node.core import bundles, collateral
from rollup_node.core.state import BALANCE, ESCROW, LIEN, SUPPLY, decode_u64
from xrollup.keys import ADDRESS_LEN


@dataclass
class AssetSupply:
    asset: str
    minted: int = 0
    balances: int = 0
    escrowed: int = 0
    liened: int = 0

    @property
    def held(self) -> int:
        return self.balances + self.escrowed + self.liened

    @property
    def conserved(self) -> bool:
        return self.held == self.minted


@dataclass
class SupplyReport:
    assets: dict[str, AssetSupply]
    open_bundles: int


def compute_supply(items: Iterable[tuple[bytes, bytes]]) -> SupplyReport:
    """From every (key, value) of a rollup's state, in any order."""
    assets: dict[str, AssetSupply] = {}
    open_bundles = 0

    def of(asset: str) -> AssetSupply:
        return assets.setdefault(asset, AssetSupply(asset))

    for key, value in items:
        if key.startswith(BALANCE):
            of(key[len(BALANCE) + ADDRESS_LEN :].decode()).balances += decode_u64(value)
        elif key.startswith(SUPPLY):
            of(key[len(SUPPLY) :].decode()).minted += decode_u64(value)
        elif key.startswith(ESCROW):
            open_bundles += 1
            for asset, amount in bundles.decode_escrow(value).held.items():
                of(asset).escrowed += amount
        elif key.startswith(LIEN):
            lien = collateral.decode_lien(value)
            if collateral.is_holding(lien):
                of(lien.asset).liened += lien.amount
    return SupplyReport(dict(sorted(assets.items())), open_bundles)
