"""Domain types: what a transaction, bundle, vote, decision and block are, free of
protobuf. The codec (xrollup/codec.py) converts at the edge; nothing deeper sees
a _pb2 type."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from xrollup.keys import Address
from xrollup.numeric import Amount, Height


@dataclass(frozen=True, slots=True)
class Transfer:
    to: Address
    asset: str
    amount: Amount


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """`price` quote base units per one whole unit of `base`."""

    base: str
    quote: str
    price: Amount


class OptionKind(enum.IntEnum):
    PUT = 1  # cash-secured put
    CALL = 2  # covered call


@dataclass(frozen=True, slots=True)
class LockCollateral:
    """Bundle only: lock the leg sender's asset as a lien (id = bundle id),
    controlled by the option this bundle opens on `controller_rollup`."""

    asset: str
    amount: Amount
    controller_rollup: str


@dataclass(frozen=True, slots=True)
class OpenOption:
    """Bundle only: the leg sender (holder) buys an option (id = bundle id) from
    `writer`, collateralized by the lien this bundle locks on `collateral_rollup`."""

    kind: OptionKind
    underlying: str
    quote: str
    strike: Amount  # quote base units per whole unit of the underlying
    size: Amount  # underlying base units
    expiry_height: Height
    premium: Amount  # quote base units, holder -> writer
    writer: Address
    collateral_rollup: str


@dataclass(frozen=True, slots=True)
class SettleOption:
    option_id: bytes
    payout: Amount


@dataclass(frozen=True, slots=True)
class ReleaseLien:
    lien_id: bytes
    payout: Amount
    payee: Address


Action = Transfer | PriceUpdate | LockCollateral | OpenOption | SettleOption | ReleaseLien
BUNDLE_ONLY = (LockCollateral, OpenOption, SettleOption, ReleaseLien)


@dataclass(frozen=True, slots=True)
class Signature:
    public_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class TxBody:
    chain_id: str
    rollup: str
    sender: Address
    nonce: int
    expiry_height: Height
    action: Action


@dataclass(frozen=True, slots=True)
class Tx:
    id: bytes
    body: TxBody
    body_bytes: bytes
    signatures: tuple[Signature, ...]


@dataclass(frozen=True, slots=True)
class Leg:
    rollup: str
    sender: Address
    action: Action


@dataclass(frozen=True, slots=True)
class BundleBody:
    chain_id: str
    nonce: int
    expiry_height: Height
    legs: tuple[Leg, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    id: bytes
    body: BundleBody
    body_bytes: bytes
    signatures: tuple[Signature, ...]

    @property
    def rollups(self) -> tuple[str, ...]:
        """The rollups this bundle touches, sorted."""
        return tuple(sorted({leg.rollup for leg in self.body.legs}))


@dataclass(frozen=True, slots=True)
class BundleVote:
    bundle_id: bytes
    yes: bool
    reason: str


@dataclass(frozen=True, slots=True)
class VoteBody:
    chain_id: str
    rollup: str
    height: Height
    votes: tuple[BundleVote, ...]


@dataclass(frozen=True, slots=True)
class Vote:
    id: bytes
    body: VoteBody
    body_bytes: bytes
    signature: Signature


@dataclass(frozen=True, slots=True)
class Decision:
    id: bytes
    bundle_id: bytes
    commit: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """An entry of a sealed block that does not decode. Nodes give it a failed
    receipt instead of stopping; an honest sequencer never orders one."""

    id: bytes
    reason: str


Entry = Tx | Bundle | Vote | Decision | Malformed


@dataclass(frozen=True, slots=True)
class Block:
    height: Height
    parent_hash: bytes
    timestamp_ms: int
    entries: tuple[Entry, ...]
    hash: bytes
