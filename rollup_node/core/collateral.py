"""collateral: liens. A lien locks an amount of an asset owned by an account,
controlled by a position on another rollup. While locked it is nobody's
balance; only a committed bundle that also carries the settlement leg on the
controlling rollup can release it (pay out, and return the rest to the owner)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from rollup_node.core.state import State
from xrollup.keys import Address

LIEN = b"lien:"

LOCKED = "locked"
PENDING = "pending"  # a release bundle is undecided
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Lien:
    id: bytes
    owner: Address
    asset: str
    amount: int
    controller_rollup: str
    controller_position: bytes
    status: str
    locked_height: int
    released_height: int = 0
    paid_out: int = 0
    payee: bytes = b""


_LIEN_FIELDS = tuple(f.name for f in fields(Lien))


def encode_lien(lien: Lien) -> bytes:
    d = {name: getattr(lien, name) for name in _LIEN_FIELDS}  # asdict() deep-copies: slow
    for k in ("id", "owner", "controller_position", "payee"):
        d[k] = getattr(lien, k).hex()
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


def decode_lien(raw: bytes) -> Lien:
    d = json.loads(raw)
    for k in ("id", "owner", "controller_position", "payee"):
        d[k] = bytes.fromhex(d[k])
    return Lien(**d)


def get_lien(state: State, lien_id: bytes) -> Lien | None:
    raw = state.get(LIEN + lien_id)
    return None if raw is None else decode_lien(raw)


def save_lien(state: State, lien: Lien) -> None:
    state.put(LIEN + lien.id, encode_lien(lien))


def is_holding(lien: Lien) -> bool:
    """True while the lien's amount is locked (counts toward supply)."""
    return lien.status in (LOCKED, PENDING)
