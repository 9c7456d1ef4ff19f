"""The wire codec (xrollup/codec.py): domain -> bytes -> domain round trips, ids
over the exact body bytes, canonical bodies only (no unknown fields, no repeated
signer), malformed input refused with InvalidInput naming the field; and blocks
(xrollup/verify.py): a sealed block verifies, any alteration is refused with the
RefusalCode of the check it fails."""

from __future__ import annotations

import dataclasses

import blake3
import pytest

from xrollup import codec
from xrollup.blocks import (
    BlockRefused,
    RefusalCode,
    compute_block_hash,
    compute_id,
    encode_header,
)
from xrollup.errors import InvalidInput, LimitExceeded
from xrollup.genesis import DEV_CHAIN_ID, Genesis, compute_genesis_hash, dev_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_rollup_vote_key, derive_sequencer_key
from xrollup.model import (
    BundleBody,
    BundleVote,
    Leg,
    Malformed,
    PriceUpdate,
    ReasonCode,
    Signature,
    Transfer,
    TxBody,
    VoteBody,
)
from xrollup.numeric import Amount, Height, Term
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block, verify_block

ALICE, BOB = derive_dev_account(0), derive_dev_account(1)
GENESIS = dev_genesis()
GENESIS_HASH = compute_genesis_hash(GENESIS)
SEQUENCER = derive_sequencer_key()
PARENT = b"\x11" * 32


def tx_body(**kw: object) -> TxBody:
    fields: dict[str, object] = dict(
        chain_id=DEV_CHAIN_ID,
        rollup="alpha",
        sender=ALICE.address,
        nonce=42,
        expiry_height=Height(100),
        action=Transfer(BOB.address, "USDC", Amount(5_000_000)),
    )
    fields.update(kw)
    return TxBody(**fields)  # type: ignore[arg-type]


def signed_tx(body: TxBody) -> pb.SignedTx:
    raw = codec.encode_tx_body(body)
    return codec.encode_signed_tx(raw, [Signature(ALICE.public_key, ALICE.sign(raw))])


def pb_body(**kw: object) -> dict[str, object]:
    """TxBody proto fields for a good transfer; drop or override with `kw`."""
    fields: dict[str, object] = dict(
        chain_id=DEV_CHAIN_ID,
        rollup="alpha",
        sender=ALICE.address,
        nonce=1,
        expiry_height=100,
        action=pb.Action(transfer=pb.Transfer(to=BOB.address, asset="USDC", amount=5)),
    )
    fields.update(kw)
    return {k: v for k, v in fields.items() if v is not None}


def wrap(**kw: object) -> pb.SignedTx:
    raw = pb.TxBody(**pb_body(**kw)).SerializeToString()
    return pb.SignedTx(
        body=raw, signatures=[pb.Signature(public_key=ALICE.public_key, signature=ALICE.sign(raw))]
    )


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "action",
    [Transfer(BOB.address, "ETH", Amount(1)), PriceUpdate("ETH", "USDC", Amount(3_000_000_000))],
)
def test_tx_round_trip(action) -> None:
    body = tx_body(action=action)
    msg = signed_tx(body)

    tx = codec.decode_tx(pb.SignedTx.FromString(msg.SerializeToString()))

    assert tx.body == body
    assert tx.body_bytes == msg.body
    assert tx.id == compute_id(msg.body)
    assert tx.signatures == (Signature(ALICE.public_key, ALICE.sign(msg.body)),)
    assert codec.encode_tx_body(tx.body) == msg.body


def test_bundle_round_trip() -> None:
    legs = (
        Leg("alpha", ALICE.address, Transfer(BOB.address, "USDC", Amount(10))),
        Leg("beta", BOB.address, Transfer(ALICE.address, "ETH", Amount(2))),
    )
    body = BundleBody(DEV_CHAIN_ID, 7, Height(50), legs)
    raw = codec.encode_bundle_body(body)
    sigs = [Signature(k.public_key, k.sign(raw)) for k in (ALICE, BOB)]

    bundle = codec.decode_bundle(codec.encode_signed_bundle(raw, sigs))

    assert bundle.body == body
    assert bundle.id == compute_id(raw)
    assert bundle.signatures == tuple(sigs)
    assert bundle.rollups == ("alpha", "beta")


def test_vote_round_trip() -> None:
    key = derive_rollup_vote_key("alpha")
    body = VoteBody(
        DEV_CHAIN_ID,
        "alpha",
        Height(9),
        (
            BundleVote(b"\x01" * 32, True, ReasonCode.NONE, Height(8)),
            BundleVote(b"\x02" * 32, False, ReasonCode.INSUFFICIENT_FUNDS, Height(9)),
        ),
        GENESIS_HASH,
    )
    raw = codec.encode_vote_body(body)

    vote = codec.decode_vote(
        codec.encode_signed_vote(raw, Signature(key.public_key, key.sign(raw)))
    )

    assert vote.body == body
    assert vote.id == compute_id(raw)
    assert vote.signature.public_key == key.public_key


def test_decision_id_depends_on_every_field() -> None:
    bid = b"\x05" * 32
    base = codec.decode_decision(
        pb.Decision(bundle_id=bid, commit=True, code=pb.REASON_CODE_ALL_YES)
    )
    assert (base.bundle_id, base.commit, base.code) == (bid, True, ReasonCode.ALL_YES)
    others = [
        codec.decode_decision(
            pb.Decision(bundle_id=bid, commit=False, code=pb.REASON_CODE_ALL_YES)
        ),
        codec.decode_decision(
            pb.Decision(bundle_id=bid, commit=True, code=pb.REASON_CODE_DEADLINE)
        ),
        codec.decode_decision(
            pb.Decision(bundle_id=b"\x06" * 32, commit=True, code=pb.REASON_CODE_ALL_YES)
        ),
    ]
    assert len({base.id, *(d.id for d in others)}) == 4
    assert codec.encode_decision(bid, True, ReasonCode.ALL_YES).decision == pb.Decision(
        bundle_id=bid, commit=True, code=pb.REASON_CODE_ALL_YES
    )


def test_unknown_reason_codes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="reason code 999 is not known"):
        codec.decode_decision(pb.Decision(bundle_id=b"\x05" * 32, commit=False, code=999))  # type: ignore[arg-type]


# ---------------------------------------------------------------- blocks: seal and verify


def sealed(
    entries: list[pb.Entry],
    height: int = 3,
    parent: bytes = PARENT,
    key: Keypair = SEQUENCER,
    genesis: Genesis = GENESIS,
    genesis_hash: bytes = GENESIS_HASH,
    term: int = 0,
) -> pb.Block:
    return seal_block(entries, height, parent, 1_700_000_000_000, genesis, genesis_hash, key, term)


def two_entries() -> list[pb.Entry]:
    return [
        pb.Entry(tx=signed_tx(tx_body())),
        codec.encode_decision(b"\x07" * 32, True, ReasonCode.ALL_YES),
    ]


def verify(
    msg: pb.Block,
    height: int = 3,
    parent: bytes = PARENT,
    genesis: Genesis = GENESIS,
    min_term: int = 0,
):
    """The block as a node at height - 1 with block `parent` (of leader term
    `min_term`) receives it off the wire."""
    wire = codec.decode_block_bytes(msg.SerializeToString())
    return verify_block(
        wire, genesis, compute_genesis_hash(genesis), height, parent, min_term=min_term
    )


def test_a_sealed_block_verifies_and_round_trips() -> None:
    entries = two_entries()
    msg = sealed(entries)

    block = verify(msg)

    assert (block.height, block.parent_hash, block.hash) == (3, PARENT, bytes(msg.hash))
    assert [e.id for e in block.entries] == [codec.compute_entry_id(e) for e in entries]
    assert [codec.encode_entry(e) for e in block.entries] == entries
    h = block.header
    assert (h.entry_count, h.byte_count) == (2, sum(e.ByteSize() for e in entries))
    # one commitment for the protocol namespace, one per genesis rollup, empty ones too
    assert [(c.rollup, c.count) for c in h.namespaces] == [("", 1), ("alpha", 1), ("beta", 0)]
    assert compute_block_hash(h) == block.hash
    assert codec.decode_block_bytes(msg.SerializeToString()) == msg


def flip_signature_byte(msg: pb.Block) -> None:
    sig = msg.entries[0].tx.signatures[0]
    sig.signature = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]


ALTERATIONS = {
    # what is altered: (alter the message, (height, parent) the node expects, refusal)
    "height": (lambda m: setattr(m.header, "height", 4), (4, PARENT), RefusalCode.BAD_HEADER),
    "height, at the node's height": (
        lambda m: setattr(m.header, "height", 4),
        (3, PARENT),
        RefusalCode.BAD_LINK,
    ),
    "parent": (
        lambda m: setattr(m.header, "parent_hash", b"\x12" * 32),
        (3, b"\x12" * 32),
        RefusalCode.BAD_HEADER,
    ),
    "parent, against the node's chain": (
        lambda m: setattr(m.header, "parent_hash", b"\x12" * 32),
        (3, PARENT),
        RefusalCode.BAD_LINK,
    ),
    "timestamp": (
        lambda m: setattr(m.header, "timestamp_ms", m.header.timestamp_ms + 1),
        (3, PARENT),
        RefusalCode.BAD_HEADER,
    ),
    "term": (lambda m: setattr(m.header, "term", 1), (3, PARENT), RefusalCode.BAD_HEADER),
    "an entry's signature byte": (flip_signature_byte, (3, PARENT), RefusalCode.BAD_COMMITMENT),
    "an entry replaced": (
        lambda m: m.entries[0].CopyFrom(pb.Entry(tx=signed_tx(tx_body(nonce=43)))),
        (3, PARENT),
        RefusalCode.BAD_COMMITMENT,
    ),
    "an added entry": (
        lambda m: m.entries.append(codec.encode_decision(b"\x08" * 32, False, ReasonCode.DEADLINE)),
        (3, PARENT),
        RefusalCode.BAD_HEADER,
    ),
    "a removed entry": (lambda m: m.entries.pop(), (3, PARENT), RefusalCode.BAD_HEADER),
    "the signature": (
        lambda m: setattr(m, "signature", ALICE.sign(bytes(m.hash))),
        (3, PARENT),
        RefusalCode.BAD_SIGNATURE,
    ),
    "the hash": (
        lambda m: setattr(m, "hash", bytes(32)),
        (3, PARENT),
        RefusalCode.BAD_HEADER,
    ),
}


@pytest.mark.parametrize("what", list(ALTERATIONS))
def test_an_altered_block_is_refused(what: str) -> None:
    alter, (height, parent), code = ALTERATIONS[what]
    msg = sealed(two_entries())
    verify(msg)  # the original is good

    alter(msg)

    with pytest.raises(BlockRefused) as err:
        verify(msg, height, parent)
    assert err.value.code == code
    assert isinstance(err.value, InvalidInput)


def test_a_block_signed_by_another_key_or_for_another_genesis_is_refused() -> None:
    for msg in (
        sealed(two_entries(), key=ALICE),
        sealed(two_entries(), genesis_hash=bytes(32)),
    ):
        with pytest.raises(BlockRefused, match="not signed by the genesis sequencer key") as err:
            verify(msg)
        assert err.value.code == RefusalCode.BAD_SIGNATURE


def test_a_resigned_header_over_other_entries_fails_its_commitments() -> None:
    # The sequencer's key signs a header, but the entries delivered are not the ones it
    # commits to (same count and size: a different transfer amount of the same width).
    good = sealed([pb.Entry(tx=signed_tx(tx_body(nonce=41)))])
    other = sealed([pb.Entry(tx=signed_tx(tx_body(nonce=42)))])
    mixed = pb.Block(header=good.header, hash=good.hash, signature=good.signature)
    mixed.entries.extend(other.entries)
    assert mixed.entries[0].ByteSize() == good.entries[0].ByteSize()

    with pytest.raises(BlockRefused, match="do not match the header's commitment") as err:
        verify(mixed)
    assert err.value.code == RefusalCode.BAD_COMMITMENT


def test_a_header_over_the_byte_budget_is_refused_even_when_signed() -> None:
    entries = [pb.Entry(tx=signed_tx(tx_body(nonce=n))) for n in range(4)]
    size = sum(e.ByteSize() for e in entries)
    tight = dataclasses.replace(
        GENESIS, limits=dataclasses.replace(GENESIS.limits, max_block_bytes=size - 1)
    )
    msg = sealed(entries, genesis=tight, genesis_hash=compute_genesis_hash(tight))

    with pytest.raises(
        BlockRefused, match=f"{size} bytes of entries, the block budget is {size - 1}"
    ) as err:
        verify(msg, genesis=tight)
    assert err.value.code == RefusalCode.TOO_LARGE
    # the same entries at the budget verify
    fits = dataclasses.replace(
        tight, limits=dataclasses.replace(tight.limits, max_block_bytes=size)
    )
    verify(sealed(entries, genesis=fits, genesis_hash=compute_genesis_hash(fits)), genesis=fits)


# ---------------------------------------------------------------- leader terms


def test_the_header_hash_covers_the_term_under_the_v3_tag() -> None:
    at_5, at_6 = sealed(two_entries(), term=5), sealed(two_entries(), term=6)

    h5, h6 = codec.decode_header(at_5.header), codec.decode_header(at_6.header)

    assert (h5.term, h6.term) == (Term(5), Term(6)) and isinstance(h5.term, Term)
    assert dataclasses.replace(h5, term=Term(6)) == h6  # the term is all that differs
    assert at_5.hash != at_6.hash
    # height u64, then term u64, big-endian, hashed under the v3 tag
    assert encode_header(h5)[:16] == (3).to_bytes(8, "big") + (5).to_bytes(8, "big")
    assert (
        compute_block_hash(h5) == blake3.blake3(b"xrollup/header/v3" + encode_header(h5)).digest()
    )
    assert codec.encode_header(h5) == at_5.header
    assert sealed(two_entries()).header.term == 0  # a single sequencer's: term 0


def test_a_signed_block_of_a_lower_term_is_refused_stale_and_equal_or_higher_verify() -> None:
    msg = sealed(two_entries(), term=5)

    for seen in (0, 4, 5):
        assert verify(msg, min_term=seen).header.term == 5
    with pytest.raises(BlockRefused) as err:
        verify(msg, min_term=6)

    assert err.value.code == RefusalCode.STALE_TERM and err.value.height == 3
    assert str(err.value) == (
        "block 3: term 5 is below term 6, which this node has seen: signed by a superseded leader"
    )


def test_a_stale_term_is_refused_as_such_wherever_the_block_would_link() -> None:
    # A superseded leader's block at another height or on another parent is stale,
    # not a link failure (which the follower would examine as a possible fork).
    msg = sealed(two_entries(), term=5)
    for height, parent in ((3, b"\x12" * 32), (2, PARENT), (9, PARENT)):
        with pytest.raises(BlockRefused) as err:
            verify(msg, height, parent, min_term=6)
        assert err.value.code == RefusalCode.STALE_TERM
    # ... and at the expected link with an equal term, a wrong parent is BAD_LINK as before
    with pytest.raises(BlockRefused) as err:
        verify(msg, 3, b"\x12" * 32, min_term=5)
    assert err.value.code == RefusalCode.BAD_LINK


def test_a_lower_term_header_that_is_not_the_sequencers_is_refused_for_that_not_as_stale() -> None:
    # Anyone on the link can write a low term: only a signed header is a superseded
    # leader's.
    forged = sealed(two_entries(), key=ALICE, term=5)
    altered = sealed(two_entries(), term=5)
    altered.header.timestamp_ms += 1  # no longer hashes to its signed hash

    for msg, code in ((forged, RefusalCode.BAD_SIGNATURE), (altered, RefusalCode.BAD_HEADER)):
        with pytest.raises(BlockRefused) as err:
            verify(msg, min_term=6)
        assert err.value.code == code


def test_an_entry_that_does_not_decode_is_sealed_as_malformed() -> None:
    # An honest sequencer never orders one; a block that carries one still verifies
    # (its bytes are committed) and the entry decodes as Malformed.
    junk = pb.Entry(tx=pb.SignedTx(body=b"\x0a\xff", signatures=[pb.Signature()]))

    block = verify(sealed([junk, *two_entries()]))

    bad = block.entries[0]
    assert isinstance(bad, Malformed) and bad.id == compute_id(b"\x0a\xff")
    assert "do not decode as TxBody" in bad.reason
    assert not isinstance(block.entries[1], Malformed)


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("chain_id", "tx.chain_id: missing field"),
        ("rollup", "tx.rollup: missing field"),
        ("expiry_height", "tx.expiry_height: missing field"),
        ("action", "tx.action: missing field"),
        ("sender", "tx.sender: missing field"),
    ],
)
def test_tx_missing_field_is_named(field: str, named: str) -> None:
    with pytest.raises(InvalidInput) as err:
        codec.decode_tx(wrap(**{field: None}))
    assert named in str(err.value)


@pytest.mark.parametrize(
    ("transfer", "named"),
    [
        (pb.Transfer(asset="USDC", amount=5), "tx.transfer.to: missing field"),
        (
            pb.Transfer(to=b"\x01" * 19, asset="USDC", amount=5),
            "tx.transfer.to: address is 19 bytes",
        ),
        (pb.Transfer(to=b"\x01" * 20, amount=5), "tx.transfer.asset: missing field"),
        (pb.Transfer(to=b"\x01" * 20, asset="USDC"), "tx.transfer.amount: must be positive"),
    ],
)
def test_transfer_fields_are_checked(transfer: pb.Transfer, named: str) -> None:
    with pytest.raises(InvalidInput) as err:
        codec.decode_tx(wrap(action=pb.Action(transfer=transfer)))
    assert named in str(err.value)


def test_empty_action_and_price_fields_are_named() -> None:
    with pytest.raises(InvalidInput, match=r"tx\.action: missing field"):
        codec.decode_tx(wrap(action=pb.Action()))
    with pytest.raises(InvalidInput, match=r"tx\.price_update\.quote: missing field"):
        codec.decode_tx(wrap(action=pb.Action(price_update=pb.PriceUpdate(base="ETH", price=1))))
    with pytest.raises(InvalidInput, match=r"tx\.price_update\.price: must be positive"):
        codec.decode_tx(
            wrap(action=pb.Action(price_update=pb.PriceUpdate(base="ETH", quote="USDC")))
        )


def test_unsigned_and_empty_bodies_are_refused() -> None:
    good = wrap()
    with pytest.raises(InvalidInput, match=r"tx\.signatures: missing \(unsigned\)"):
        codec.decode_tx(pb.SignedTx(body=good.body))
    with pytest.raises(InvalidInput, match="tx: missing body"):
        codec.decode_tx(pb.SignedTx(signatures=list(good.signatures)))


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x0a\xff", b"\x07", b"\x0a\x01\xff"])
def test_undecodable_bytes_are_invalid_input(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="do not decode as TxBody"):
        codec.decode_tx(pb.SignedTx(body=raw, signatures=[pb.Signature()]))
    with pytest.raises(InvalidInput, match="do not decode as BundleBody"):
        codec.decode_bundle(pb.SignedBundle(body=raw, signatures=[pb.Signature()]))
    with pytest.raises(InvalidInput, match="do not decode as VoteBody"):
        codec.decode_vote(pb.SignedVote(body=raw, signature=pb.Signature()))
    with pytest.raises(InvalidInput, match="block bytes do not decode"):
        codec.decode_block_bytes(raw)


def test_bundle_structure_is_checked() -> None:
    def bundle(**kw: object) -> pb.SignedBundle:
        fields: dict[str, object] = dict(chain_id=DEV_CHAIN_ID, nonce=1, expiry_height=10)
        fields.update(kw)
        raw = pb.BundleBody(**fields).SerializeToString()
        return pb.SignedBundle(body=raw, signatures=[pb.Signature()])

    leg = pb.Leg(
        rollup="alpha",
        sender=ALICE.address,
        action=pb.Action(transfer=pb.Transfer(to=BOB.address, asset="USDC", amount=1)),
    )
    with pytest.raises(InvalidInput, match=r"bundle\.legs: missing"):
        codec.decode_bundle(bundle())
    with pytest.raises(InvalidInput, match=r"bundle\.legs\[1\]\.rollup: missing field"):
        codec.decode_bundle(bundle(legs=[leg, pb.Leg(sender=ALICE.address, action=leg.action)]))
    with pytest.raises(InvalidInput, match=r"bundle\.legs\[0\]\.action: missing field"):
        codec.decode_bundle(bundle(legs=[pb.Leg(rollup="alpha", sender=ALICE.address)]))
    with pytest.raises(InvalidInput, match=r"bundle\.expiry_height: missing field"):
        codec.decode_bundle(bundle(expiry_height=0, legs=[leg]))
    # The leg count is checked before any leg is decoded.
    with pytest.raises(LimitExceeded, match="9 legs, limit is 8"):
        codec.decode_bundle(bundle(legs=[pb.Leg()] * 9), max_legs=8)
    assert len(codec.decode_bundle(bundle(legs=[leg] * 8), max_legs=8).body.legs) == 8


def test_vote_structure_is_checked() -> None:
    def vote(sig: bool = True, **kw: object) -> pb.SignedVote:
        fields: dict[str, object] = dict(chain_id=DEV_CHAIN_ID, rollup="alpha", height=3)
        fields.update(kw)
        raw = pb.VoteBody(**fields).SerializeToString()
        return pb.SignedVote(body=raw, signature=pb.Signature() if sig else None)

    with pytest.raises(InvalidInput, match=r"vote\.signature: missing \(unsigned\)"):
        codec.decode_vote(vote(sig=False))
    with pytest.raises(InvalidInput, match=r"vote\.height: missing field"):
        codec.decode_vote(vote(height=0))
    with pytest.raises(InvalidInput, match=r"vote\.votes\[0\]\.bundle_id: want 32 bytes"):
        codec.decode_vote(vote(votes=[pb.BundleVote(bundle_id=b"\x01" * 31)]))


def test_entry_without_kind_is_refused() -> None:
    with pytest.raises(InvalidInput, match="entry: no kind set"):
        codec.decode_entry(pb.Entry())
    with pytest.raises(InvalidInput, match="entry: no kind set"):
        codec.compute_entry_id(pb.Entry())


# ---------------------------------------------------------------- canonical bodies and padding


def unknown_field(number: int, payload: bytes) -> bytes:
    """The bytes of a length-delimited field `number` (wire type 2) no message defines."""

    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_a_body_with_an_unknown_field_is_refused_even_when_signed() -> None:
    # Re-signed by its own signers, so only the encoding is wrong: the body bytes
    # would carry padding and one content would have two ids.
    tx_raw = codec.encode_tx_body(tx_body()) + unknown_field(99, b"padding")
    tx = pb.SignedTx(
        body=tx_raw,
        signatures=[pb.Signature(public_key=ALICE.public_key, signature=ALICE.sign(tx_raw))],
    )
    legs = (Leg("alpha", ALICE.address, Transfer(BOB.address, "USDC", Amount(10))),)
    bundle_raw = codec.encode_bundle_body(
        BundleBody(DEV_CHAIN_ID, 7, Height(50), legs)
    ) + unknown_field(77, b"x")
    bundle = codec.encode_signed_bundle(
        bundle_raw, [Signature(ALICE.public_key, ALICE.sign(bundle_raw))]
    )
    key = derive_rollup_vote_key("alpha")
    vote_raw = codec.encode_vote_body(
        VoteBody(DEV_CHAIN_ID, "alpha", Height(9), (), GENESIS_HASH)
    ) + unknown_field(15, b"")
    vote = codec.encode_signed_vote(vote_raw, Signature(key.public_key, key.sign(vote_raw)))

    for decode, msg, what in (
        (codec.decode_tx, tx, "tx"),
        (codec.decode_bundle, bundle, "bundle"),
        (codec.decode_vote, vote, "vote"),
    ):
        with pytest.raises(InvalidInput, match=f"{what}: body bytes are not canonically encoded"):
            decode(msg)  # type: ignore[operator]
    # without the unknown field the same content decodes
    assert codec.decode_tx(signed_tx(tx_body())).body == tx_body()


def test_repeated_signatures_by_one_key_are_refused_before_any_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sequencer.core import admission
    from xrollup import checks

    verified: list[bytes] = []

    def spy(public_key: bytes, signature: bytes, body: bytes) -> bool:
        verified.append(public_key)
        return True

    monkeypatch.setattr(checks, "is_valid_signature", spy)
    raw = codec.encode_tx_body(tx_body())
    one = Signature(ALICE.public_key, ALICE.sign(raw))
    junk = Signature(ALICE.public_key, bytes(64))
    legs = (Leg("alpha", ALICE.address, Transfer(BOB.address, "USDC", Amount(10))),)
    bundle_raw = codec.encode_bundle_body(BundleBody(DEV_CHAIN_ID, 7, Height(50), legs))
    b_one = Signature(ALICE.public_key, ALICE.sign(bundle_raw))

    for call in (
        lambda: admission.admit_tx(codec.encode_signed_tx(raw, [one, one]), GENESIS, 1),
        lambda: admission.admit_tx(codec.encode_signed_tx(raw, [one, junk]), GENESIS, 1),
        lambda: admission.admit_tx(codec.encode_signed_tx(raw, [one] * 8), GENESIS, 1),
        lambda: admission.admit_bundle(
            codec.encode_signed_bundle(bundle_raw, [b_one, b_one]), GENESIS, 1
        ),
    ):
        with pytest.raises(InvalidInput, match=r"signatures: a key signs more than once") as err:
            call()
        assert type(err.value) is InvalidInput
    assert verified == []  # refused on structure: not one signature was verified
    admission.admit_tx(codec.encode_signed_tx(raw, [one]), GENESIS, 1)
    assert verified == [ALICE.public_key]


def test_the_log_copy_of_a_padded_submission_carries_no_padding() -> None:
    msg = signed_tx(tx_body())
    padding = unknown_field(1000, b"\x00" * (100 * 1024))
    padded = pb.SignedTx.FromString(msg.SerializeToString() + padding)
    assert padded.ByteSize() > 100 * 1024  # the padding is kept by the parser...
    assert codec.decode_tx(padded) == codec.decode_tx(msg)  # ...and is no part of the tx

    entry = codec.encode_canonical_tx(padded)

    assert entry.ByteSize() == codec.encode_canonical_tx(msg).ByteSize()
    assert entry.SerializeToString() == pb.Entry(tx=msg).SerializeToString()
