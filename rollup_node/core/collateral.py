"""collateral: liens. A lien locks an amount of an asset owned by an account,
controlled by a position on another rollup. While locked it is nobody's
balance; only a committed bundle that also carries the settlement leg on the
controlling rollup can release it (pay out, and return the rest to the owner).

Its exit when the controlling rollup or the oracle never comes back: from the
option's expiry plus `limits.lien_grace_blocks` the owner may reclaim a lien
still LOCKED with a plain transaction on this rollup (docs/exits.md). Until then
the holder can settle; from then on the option's rollup refuses settlement too,
so the two sides never both pay out."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace

from rollup_node.core import bank
from rollup_node.core.state import LIEN, State, account_lien_key, encode_record
from xrollup.errors import NotAuthorized, Refused
from xrollup.keys import Address
from xrollup.model import ReasonCode
from xrollup.numeric import Amount

LOCKED = "locked"
PENDING = "pending"  # a release bundle is undecided
RELEASED = "released"
RECLAIMED = "reclaimed"  # taken back by its owner after the option's expiry + grace


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
    option_expiry_height: int = 0  # the controlling option's expiry


_LIEN_FIELDS = tuple(f.name for f in fields(Lien))


def encode_lien(lien: Lien) -> bytes:
    d = {name: getattr(lien, name) for name in _LIEN_FIELDS}  # asdict() deep-copies: slow
    for k in ("id", "owner", "controller_position", "payee"):
        d[k] = getattr(lien, k).hex()
    return encode_record(d)


def decode_lien(raw: bytes) -> Lien:
    d = json.loads(raw)
    for k in ("id", "owner", "controller_position", "payee"):
        d[k] = bytes.fromhex(d[k])
    return Lien(**d)


def get_lien(state: State, lien_id: bytes) -> Lien | None:
    raw = state.get(LIEN + lien_id)
    return None if raw is None else decode_lien(raw)


def save_lien(state: State, lien: Lien) -> None:
    """Save the lien, and its owner's index key (b"acl:") while it holds funds:
    written when it is created, kept while PENDING, deleted when it is released
    or reclaimed (before retention can prune the record)."""
    state.put(LIEN + lien.id, encode_lien(lien))
    key = account_lien_key(lien.owner, lien.id)
    if is_holding(lien):
        state.put(key, b"")
    else:
        state.delete(key)


def is_holding(lien: Lien) -> bool:
    """True while the lien's amount is locked (counts toward supply)."""
    return lien.status in (LOCKED, PENDING)


def compute_reclaimable_height(option_expiry_height: int, grace_blocks: int) -> int:
    """From this height a lien still locked belongs to its owner again."""
    return option_expiry_height + grace_blocks


class ReclaimRefused(Refused):
    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def apply_reclaim(state: State, sender: Address, lien_id: bytes, height: int, grace: int) -> Lien:
    """The lien's owner takes back a lien whose option was not settled by its
    expiry plus the grace period. Returns the lien as reclaimed."""
    lien = get_lien(state, lien_id)
    if lien is None:
        raise ReclaimRefused(ReasonCode.NO_POSITION, f"no lien {lien_id.hex()}")
    if lien.owner != sender:
        raise NotAuthorized(f"lien {lien_id.hex()[:16]} is not owned by the sender")
    if lien.status != LOCKED:
        raise ReclaimRefused(
            ReasonCode.POSITION_BUSY, f"lien {lien_id.hex()[:16]} is {lien.status}"
        )
    due = compute_reclaimable_height(lien.option_expiry_height, grace)
    if height < due:
        raise ReclaimRefused(
            ReasonCode.NOT_EXPIRED,
            f"lien {lien_id.hex()[:16]} is reclaimable from height {due}"
            f" (option expiry {lien.option_expiry_height} + grace {grace}); now {height}",
        )
    bank.increase_balance(state, lien.owner, lien.asset, Amount(lien.amount))
    done = replace(lien, status=RECLAIMED, released_height=height)
    save_lien(state, done)
    return done
