"""The wire codec: protobuf <-> domain types, and nothing else touches _pb2
messages' fields. Decoding checks structure (decodable, fields present, lengths);
xrollup/checks.py checks meaning (signatures, known rollups, limits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from xrollup.blocks import compute_decision_id, compute_id
from xrollup.errors import InvalidInput, LimitExceeded
from xrollup.keys import ADDRESS_LEN
from xrollup.model import (
    Action,
    Block,
    Bundle,
    BundleBody,
    BundleVote,
    Commitment,
    Decision,
    Entry,
    Header,
    Leg,
    LockCollateral,
    Malformed,
    OpenOption,
    OptionKind,
    PriceUpdate,
    ReasonCode,
    ReclaimLien,
    ReleaseLien,
    SettleOption,
    Signature,
    Transfer,
    Tx,
    TxBody,
    Vote,
    VoteBody,
)
from xrollup.numeric import Amount, Height, Term
from xrollup.v1 import types_pb2 as pb

M = TypeVar("M", bound=Message)

# ---------------------------------------------------------------- decode


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidInput(what)


def _decode_address(raw: bytes, what: str) -> bytes:
    _require(len(raw) > 0, f"{what}: missing field")
    _require(len(raw) == ADDRESS_LEN, f"{what}: address is {len(raw)} bytes, want {ADDRESS_LEN}")
    return raw


def decode_action(msg: pb.Action, where: str) -> Action:
    kind = msg.WhichOneof("kind")
    if kind == "transfer":
        t = msg.transfer
        _require(bool(t.asset), f"{where}.transfer.asset: missing field")
        _require(t.amount > 0, f"{where}.transfer.amount: must be positive")
        return Transfer(_decode_address(t.to, f"{where}.transfer.to"), t.asset, Amount(t.amount))
    if kind == "price_update":
        p = msg.price_update
        _require(bool(p.base), f"{where}.price_update.base: missing field")
        _require(bool(p.quote), f"{where}.price_update.quote: missing field")
        _require(p.price > 0, f"{where}.price_update.price: must be positive")
        return PriceUpdate(p.base, p.quote, Amount(p.price))
    if kind == "lock_collateral":
        c = msg.lock_collateral
        _require(bool(c.asset), f"{where}.lock_collateral.asset: missing field")
        _require(c.amount > 0, f"{where}.lock_collateral.amount: must be positive")
        _require(
            bool(c.controller_rollup), f"{where}.lock_collateral.controller_rollup: missing field"
        )
        return LockCollateral(c.asset, Amount(c.amount), c.controller_rollup)
    if kind == "open_option":
        o = msg.open_option
        w = f"{where}.open_option"
        _require(
            o.kind in (pb.OPTION_KIND_PUT, pb.OPTION_KIND_CALL), f"{w}.kind: must be PUT or CALL"
        )
        _require(bool(o.underlying), f"{w}.underlying: missing field")
        _require(bool(o.quote), f"{w}.quote: missing field")
        _require(o.strike > 0, f"{w}.strike: must be positive")
        _require(o.size > 0, f"{w}.size: must be positive")
        _require(o.expiry_height > 0, f"{w}.expiry_height: missing field")
        _require(len(o.collateral_rollups) > 0, f"{w}.collateral_rollups: missing field")
        _require(all(o.collateral_rollups), f"{w}.collateral_rollups: an empty rollup name")
        return OpenOption(
            kind=OptionKind(o.kind),
            underlying=o.underlying,
            quote=o.quote,
            strike=Amount(o.strike),
            size=Amount(o.size),
            expiry_height=Height(o.expiry_height),
            premium=Amount(o.premium),
            writer=_decode_address(o.writer, f"{w}.writer"),
            collateral_rollups=tuple(o.collateral_rollups),
        )
    if kind == "settle_option":
        s = msg.settle_option
        _require(len(s.option_id) == 32, f"{where}.settle_option.option_id: want 32 bytes")
        return SettleOption(bytes(s.option_id), Amount(s.payout))
    if kind == "release_lien":
        r = msg.release_lien
        _require(len(r.lien_id) == 32, f"{where}.release_lien.lien_id: want 32 bytes")
        payee = _decode_address(r.payee, f"{where}.release_lien.payee")
        return ReleaseLien(bytes(r.lien_id), Amount(r.payout), payee)
    if kind == "reclaim_lien":
        rc = msg.reclaim_lien
        _require(len(rc.lien_id) == 32, f"{where}.reclaim_lien.lien_id: want 32 bytes")
        return ReclaimLien(bytes(rc.lien_id))
    raise InvalidInput(f"{where}.action: missing field (no action set)")


def decode_signatures(msgs: Sequence[pb.Signature], where: str) -> tuple[Signature, ...]:
    """The signatures (their count and repeated signers are refused by
    checks.validate_signatures before any is verified)."""
    _require(len(msgs) > 0, f"{where}.signatures: missing (unsigned)")
    return tuple(Signature(bytes(s.public_key), bytes(s.signature)) for s in msgs)


def _parse(cls: type[M], raw: bytes, what: str) -> M:
    """Parse a signed body, which must be canonically encoded: no unknown fields
    and no other byte layout than protobuf's own serialization of its fields, so
    a body cannot carry padding and one content has one id."""
    _require(len(raw) > 0, f"{what}: missing body")
    try:
        msg = cls.FromString(raw)
    except DecodeError as e:
        raise InvalidInput(f"{what}: body bytes do not decode as {cls.__name__}: {e}") from None
    msg.DiscardUnknownFields()
    if msg.SerializeToString(deterministic=True) != raw:
        raise InvalidInput(
            f"{what}: body bytes are not canonically encoded (unknown fields or a"
            f" non-canonical layout); encode {cls.__name__} with protobuf's serializer"
        )
    return msg


def decode_tx(msg: pb.SignedTx) -> Tx:
    body_bytes = bytes(msg.body)
    b: pb.TxBody = _parse(pb.TxBody, body_bytes, "tx")
    _require(bool(b.chain_id), "tx.chain_id: missing field")
    _require(bool(b.rollup), "tx.rollup: missing field")
    _require(b.expiry_height > 0, "tx.expiry_height: missing field")
    _require(b.HasField("action"), "tx.action: missing field")
    body = TxBody(
        chain_id=b.chain_id,
        rollup=b.rollup,
        sender=_decode_address(b.sender, "tx.sender"),
        nonce=b.nonce,
        expiry_height=Height(b.expiry_height),
        action=decode_action(b.action, "tx"),
    )
    return Tx(compute_id(body_bytes), body, body_bytes, decode_signatures(msg.signatures, "tx"))


def decode_bundle(msg: pb.SignedBundle, max_legs: int | None = None) -> Bundle:
    """Decode a bundle. `max_legs` is checked before legs are decoded, so an
    oversized bundle costs little."""
    body_bytes = bytes(msg.body)
    b: pb.BundleBody = _parse(pb.BundleBody, body_bytes, "bundle")
    _require(bool(b.chain_id), "bundle.chain_id: missing field")
    _require(b.expiry_height > 0, "bundle.expiry_height: missing field")
    _require(len(b.legs) > 0, "bundle.legs: missing (a bundle needs at least one leg)")
    if max_legs is not None and len(b.legs) > max_legs:
        raise LimitExceeded(f"bundle has {len(b.legs)} legs, limit is {max_legs}")
    legs = []
    for i, leg in enumerate(b.legs):
        where = f"bundle.legs[{i}]"
        _require(bool(leg.rollup), f"{where}.rollup: missing field")
        _require(leg.HasField("action"), f"{where}.action: missing field")
        legs.append(
            Leg(
                leg.rollup,
                _decode_address(leg.sender, f"{where}.sender"),
                decode_action(leg.action, where),
            )
        )
    body = BundleBody(b.chain_id, b.nonce, Height(b.expiry_height), tuple(legs))
    return Bundle(
        compute_id(body_bytes), body, body_bytes, decode_signatures(msg.signatures, "bundle")
    )


def decode_vote(msg: pb.SignedVote) -> Vote:
    body_bytes = bytes(msg.body)
    b: pb.VoteBody = _parse(pb.VoteBody, body_bytes, "vote")
    _require(bool(b.chain_id), "vote.chain_id: missing field")
    _require(bool(b.rollup), "vote.rollup: missing field")
    _require(b.height > 0, "vote.height: missing field")
    _require(msg.HasField("signature"), "vote.signature: missing (unsigned)")
    votes = []
    for i, v in enumerate(b.votes):
        _require(len(v.bundle_id) == 32, f"vote.votes[{i}].bundle_id: want 32 bytes")
        _require(v.bundle_height > 0, f"vote.votes[{i}].bundle_height: missing field")
        votes.append(
            BundleVote(bytes(v.bundle_id), v.yes, _decode_reason(v.code), Height(v.bundle_height))
        )
    _require(len(b.genesis_hash) == 32, "vote.genesis_hash: want 32 bytes")
    body = VoteBody(b.chain_id, b.rollup, Height(b.height), tuple(votes), bytes(b.genesis_hash))
    sig = Signature(bytes(msg.signature.public_key), bytes(msg.signature.signature))
    return Vote(compute_id(body_bytes), body, body_bytes, sig)


def _decode_reason(code: int) -> ReasonCode:
    try:
        return ReasonCode(code)
    except ValueError:
        raise InvalidInput(f"reason code {code} is not known") from None


def decode_decision(msg: pb.Decision) -> Decision:
    _require(len(msg.bundle_id) == 32, "decision.bundle_id: want 32 bytes")
    return Decision(
        compute_decision_id(msg.bundle_id, msg.commit, msg.code),
        bytes(msg.bundle_id),
        msg.commit,
        _decode_reason(msg.code),
    )


def decode_entry(msg: pb.Entry) -> Entry:
    kind = msg.WhichOneof("kind")
    if kind == "tx":
        return decode_tx(msg.tx)
    if kind == "bundle":
        return decode_bundle(msg.bundle)
    if kind == "vote":
        return decode_vote(msg.vote)
    if kind == "decision":
        return decode_decision(msg.decision)
    raise InvalidInput("entry: no kind set")


def compute_entry_id(msg: pb.Entry) -> bytes:
    """An entry's id without decoding its body."""
    kind = msg.WhichOneof("kind")
    if kind == "tx":
        return compute_id(msg.tx.body)
    if kind == "bundle":
        return compute_id(msg.bundle.body)
    if kind == "vote":
        return compute_id(msg.vote.body)
    if kind == "decision":
        d = msg.decision
        return compute_decision_id(d.bundle_id, d.commit, d.code)
    raise InvalidInput("entry: no kind set")


def decode_entry_tolerant(msg: pb.Entry) -> Entry:
    """As decode_entry, but an entry that does not decode becomes Malformed."""
    try:
        return decode_entry(msg)
    except InvalidInput as e:
        try:
            entry_id = compute_entry_id(msg)
        except InvalidInput:
            entry_id = compute_id(msg.SerializeToString())
        return Malformed(entry_id, str(e))


def decode_header(msg: pb.BlockHeader) -> Header:
    return Header(
        height=Height(msg.height),
        parent_hash=bytes(msg.parent_hash),
        timestamp_ms=msg.timestamp_ms,
        entry_count=msg.entry_count,
        namespaces=tuple(Commitment(c.rollup, c.count, bytes(c.root)) for c in msg.namespaces),
        byte_count=msg.byte_count,
        term=Term(msg.term),
    )


def decode_block(msg: pb.Block) -> Block:
    """Decode a block; entries that do not decode become Malformed. Checks
    nothing else: xrollup/verify.py verifies a block before anyone applies it."""
    return Block(
        decode_header(msg.header),
        tuple(decode_entry_tolerant(e) for e in msg.entries),
        bytes(msg.hash),
        bytes(msg.signature),
        tuple(msg.indices),
    )


def encode_entries(msg: pb.Block) -> list[bytes]:
    """Each entry's full encoded bytes, as the header's commitments cover them."""
    return [e.SerializeToString() for e in msg.entries]


def decode_block_bytes(raw: bytes) -> pb.Block:
    try:
        return pb.Block.FromString(raw)
    except DecodeError as e:
        raise InvalidInput(f"block bytes do not decode: {e}") from None


# ---------------------------------------------------------------- encode


def encode_action(action: Action) -> pb.Action:
    if isinstance(action, Transfer):
        return pb.Action(
            transfer=pb.Transfer(to=action.to, asset=action.asset, amount=action.amount)
        )
    if isinstance(action, PriceUpdate):
        return pb.Action(
            price_update=pb.PriceUpdate(base=action.base, quote=action.quote, price=action.price)
        )
    if isinstance(action, LockCollateral):
        return pb.Action(
            lock_collateral=pb.LockCollateral(
                asset=action.asset, amount=action.amount, controller_rollup=action.controller_rollup
            )
        )
    if isinstance(action, OpenOption):
        return pb.Action(
            open_option=pb.OpenOption(
                kind=int(action.kind),  # type: ignore[arg-type]
                underlying=action.underlying,
                quote=action.quote,
                strike=action.strike,
                size=action.size,
                expiry_height=action.expiry_height,
                premium=action.premium,
                writer=action.writer,
                collateral_rollups=list(action.collateral_rollups),
            )
        )
    if isinstance(action, SettleOption):
        return pb.Action(
            settle_option=pb.SettleOption(option_id=action.option_id, payout=action.payout)
        )
    if isinstance(action, ReclaimLien):
        return pb.Action(reclaim_lien=pb.ReclaimLien(lien_id=action.lien_id))
    return pb.Action(
        release_lien=pb.ReleaseLien(
            lien_id=action.lien_id, payout=action.payout, payee=action.payee
        )
    )


def encode_tx_body(body: TxBody) -> bytes:
    return pb.TxBody(
        chain_id=body.chain_id,
        rollup=body.rollup,
        sender=body.sender,
        nonce=body.nonce,
        expiry_height=body.expiry_height,
        action=encode_action(body.action),
    ).SerializeToString()


def encode_bundle_body(body: BundleBody) -> bytes:
    return pb.BundleBody(
        chain_id=body.chain_id,
        nonce=body.nonce,
        expiry_height=body.expiry_height,
        legs=[
            pb.Leg(rollup=leg.rollup, sender=leg.sender, action=encode_action(leg.action))
            for leg in body.legs
        ],
    ).SerializeToString()


def encode_vote_body(body: VoteBody) -> bytes:
    return pb.VoteBody(
        chain_id=body.chain_id,
        rollup=body.rollup,
        height=body.height,
        votes=[
            pb.BundleVote(
                bundle_id=v.bundle_id,
                yes=v.yes,
                code=int(v.code),  # type: ignore[arg-type]
                bundle_height=v.bundle_height,
            )
            for v in body.votes
        ],
        genesis_hash=body.genesis_hash,
    ).SerializeToString()


def _encode_signatures(sigs: Sequence[Signature]) -> list[pb.Signature]:
    return [pb.Signature(public_key=s.public_key, signature=s.signature) for s in sigs]


def encode_signed_tx(body_bytes: bytes, signatures: Sequence[Signature]) -> pb.SignedTx:
    return pb.SignedTx(body=body_bytes, signatures=_encode_signatures(signatures))


def encode_signed_bundle(body_bytes: bytes, signatures: Sequence[Signature]) -> pb.SignedBundle:
    return pb.SignedBundle(body=body_bytes, signatures=_encode_signatures(signatures))


def encode_signed_vote(body_bytes: bytes, signature: Signature) -> pb.SignedVote:
    return pb.SignedVote(
        body=body_bytes,
        signature=pb.Signature(public_key=signature.public_key, signature=signature.signature),
    )


def encode_decision(bundle_id: bytes, commit: bool, code: ReasonCode) -> pb.Entry:
    return pb.Entry(decision=pb.Decision(bundle_id=bundle_id, commit=commit, code=int(code)))  # type: ignore[arg-type]


def strip_unknown_fields(msg: Message) -> bool:
    """Drop unknown fields (padding) in place, nested messages included; True
    when there were none."""
    size = msg.ByteSize()
    msg.DiscardUnknownFields()
    return msg.ByteSize() == size


def _canonical_entry(entry: pb.Entry) -> pb.Entry:
    entry.DiscardUnknownFields()
    return entry


def encode_canonical_tx(msg: pb.SignedTx) -> pb.Entry:
    """The log's copy of an admitted transaction: a copy without any unknown
    field, so no padding a client attached reaches a block."""
    return _canonical_entry(pb.Entry(tx=msg))


def encode_canonical_bundle(msg: pb.SignedBundle) -> pb.Entry:
    return _canonical_entry(pb.Entry(bundle=msg))


def encode_canonical_vote(msg: pb.SignedVote) -> pb.Entry:
    return _canonical_entry(pb.Entry(vote=msg))


def encode_entry(entry: Entry) -> pb.Entry:
    """A decoded entry back on the wire (the inverse of decode_entry)."""
    if isinstance(entry, Tx):
        return pb.Entry(tx=encode_signed_tx(entry.body_bytes, entry.signatures))
    if isinstance(entry, Bundle):
        return pb.Entry(bundle=encode_signed_bundle(entry.body_bytes, entry.signatures))
    if isinstance(entry, Vote):
        return pb.Entry(vote=encode_signed_vote(entry.body_bytes, entry.signature))
    if isinstance(entry, Decision):
        return encode_decision(entry.bundle_id, entry.commit, entry.code)
    raise InvalidInput(f"a {type(entry).__name__} entry cannot be encoded")


def encode_header(h: Header) -> pb.BlockHeader:
    return pb.BlockHeader(
        height=h.height,
        parent_hash=h.parent_hash,
        timestamp_ms=h.timestamp_ms,
        entry_count=h.entry_count,
        namespaces=[
            pb.NamespaceCommitment(rollup=c.rollup, count=c.count, root=c.root)
            for c in h.namespaces
        ],
        byte_count=h.byte_count,
        term=h.term,
    )


def encode_block(
    header: Header, entries: Sequence[pb.Entry], block_hash: bytes, signature: bytes
) -> pb.Block:
    """A sealed block message from its header and already-admitted entries."""
    return pb.Block(
        header=encode_header(header), entries=entries, hash=block_hash, signature=signature
    )
