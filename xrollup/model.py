"""Domain types: what a transaction, bundle, vote, decision and block are, free of
protobuf. The codec (xrollup/codec.py) converts at the edge; nothing deeper sees
a _pb2 type."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from xrollup.keys import Address
from xrollup.numeric import Amount, Height, Term


class ReasonCode(enum.IntEnum):
    """Why a rollup voted no on a bundle, or why a bundle was decided as it was
    (mirrors xrollup.v1.ReasonCode). Consensus data carries only these codes;
    the text for people lives in receipts, logs and API answers."""

    NONE = 0
    ALL_YES = 1
    VOTED_NO = 2
    DEADLINE = 3
    EXPIRED = 10
    INVALID = 11
    BAD_SIGNATURE = 12
    INSUFFICIENT_FUNDS = 13
    MARGIN = 14
    NO_POSITION = 15
    POSITION_BUSY = 16
    NOT_EXPIRED = 17
    NO_PRICE = 18
    PAYOUT_MISMATCH = 19
    WRONG_PAYEE = 20
    NOT_CONTROLLER = 21
    CLAIM_WINDOW_CLOSED = 22
    OVERFLOW = 23
    REFUSED = 24


def describe_reason(code: ReasonCode) -> str:
    """A reason code in words, for answers and logs (never for consensus data)."""
    return _REASON_TEXT.get(code, code.name.lower().replace("_", " "))


_REASON_TEXT = {
    ReasonCode.NONE: "",
    ReasonCode.ALL_YES: "every rollup voted yes",
    ReasonCode.VOTED_NO: "a rollup voted no",
    ReasonCode.DEADLINE: "a vote was missing at the deadline",
    ReasonCode.EXPIRED: "the bundle expired before it was prepared",
    ReasonCode.INVALID: "the bundle fails the immutable checks",
    ReasonCode.BAD_SIGNATURE: "signatures do not verify or are not by the accounts it touches",
    ReasonCode.INSUFFICIENT_FUNDS: "insufficient funds",
    ReasonCode.MARGIN: "the lien does not cover the margin rule",
    ReasonCode.NO_POSITION: "no such option or lien here",
    ReasonCode.POSITION_BUSY: "the option or lien is not open",
    ReasonCode.NOT_EXPIRED: "the option has not expired",
    ReasonCode.NO_PRICE: "no oracle price at or after expiry",
    ReasonCode.PAYOUT_MISMATCH: "the stated payout is not the computed one",
    ReasonCode.WRONG_PAYEE: "the lien would not pay the holder",
    ReasonCode.NOT_CONTROLLER: "the bundle does not settle the lien's controlling position",
    ReasonCode.CLAIM_WINDOW_CLOSED: "past the option's expiry plus the grace period",
    ReasonCode.OVERFLOW: "an amount would leave its range",
    ReasonCode.REFUSED: "refused by the current state",
}


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
    `writer`, collateralized by the liens this bundle locks, one on each of
    `collateral_rollups`, in payout order (xrollup/options.py split_payout)."""

    kind: OptionKind
    underlying: str
    quote: str
    strike: Amount  # quote base units per whole unit of the underlying
    size: Amount  # underlying base units
    expiry_height: Height
    premium: Amount  # quote base units, holder -> writer
    writer: Address
    collateral_rollups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SettleOption:
    option_id: bytes
    payout: Amount


@dataclass(frozen=True, slots=True)
class ReleaseLien:
    lien_id: bytes
    payout: Amount
    payee: Address


@dataclass(frozen=True, slots=True)
class ReclaimLien:
    """A plain transaction by a lien's owner on the lien's rollup: take it back
    once its option's expiry plus the grace period has passed unsettled."""

    lien_id: bytes


Action = (
    Transfer | PriceUpdate | LockCollateral | OpenOption | SettleOption | ReleaseLien | ReclaimLien
)
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
    code: ReasonCode  # NONE on a yes
    bundle_height: Height  # the height that ordered the bundle


@dataclass(frozen=True, slots=True)
class VoteBody:
    chain_id: str
    rollup: str
    height: Height
    votes: tuple[BundleVote, ...]
    genesis_hash: bytes


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
    code: ReasonCode


@dataclass(frozen=True, slots=True)
class Malformed:
    """An entry of a sealed block that does not decode. Nodes give it a failed
    receipt instead of stopping; an honest sequencer never orders one."""

    id: bytes
    reason: str


Entry = Tx | Bundle | Vote | Decision | Malformed


@dataclass(frozen=True, slots=True)
class Commitment:
    """One namespace's commitment in a block header (see xrollup/blocks.py)."""

    rollup: str  # "" for the protocol namespace
    count: int
    root: bytes


@dataclass(frozen=True, slots=True)
class Header:
    height: Height
    parent_hash: bytes
    timestamp_ms: int  # informational, never read by state transitions
    entry_count: int
    namespaces: tuple[Commitment, ...]
    byte_count: int
    term: Term  # the leader's term (0 for a single sequencer); never decreases along a chain


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    entries: tuple[Entry, ...]
    hash: bytes
    signature: bytes
    # A block streamed filtered to one rollup: each entry's position in the whole
    # block; empty for a whole block.
    indices: tuple[int, ...] = ()

    @property
    def height(self) -> Height:
        return self.header.height

    def positions(self) -> Sequence[int]:
        """Each entry's position in the whole block (receipts give it)."""
        return self.indices or range(len(self.entries))

    @property
    def parent_hash(self) -> bytes:
        return self.header.parent_hash
