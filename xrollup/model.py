"""Domain types: what a transaction, bundle, vote, decision and block are, free of
protobuf. The codec (xrollup/codec.py) converts at the edge; nothing deeper sees
a _pb2 type."""

from __future__ import annotations

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


Action = Transfer | PriceUpdate


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
