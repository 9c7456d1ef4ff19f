"""The wire codec (xrollup/codec.py): domain -> bytes -> domain round trips, ids
over the exact body bytes, block hashes checked on decode, and malformed input
refused with InvalidInput naming the field."""

from __future__ import annotations

import pytest

from xrollup import codec
from xrollup.blocks import GENESIS_PARENT, compute_block_hash, compute_id
from xrollup.errors import InvalidInput, LimitExceeded
from xrollup.genesis import DEV_CHAIN_ID
from xrollup.keys import derive_dev_account, derive_rollup_vote_key
from xrollup.model import (
    BundleBody,
    BundleVote,
    Leg,
    PriceUpdate,
    Signature,
    Transfer,
    TxBody,
    VoteBody,
)
from xrollup.numeric import Amount, Height
from xrollup.v1 import types_pb2 as pb

ALICE, BOB = derive_dev_account(0), derive_dev_account(1)


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
        (BundleVote(b"\x01" * 32, True, ""), BundleVote(b"\x02" * 32, False, "no funds")),
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
    base = codec.decode_decision(pb.Decision(bundle_id=bid, commit=True, reason=""))
    assert base.bundle_id == bid and base.commit
    others = [
        codec.decode_decision(pb.Decision(bundle_id=bid, commit=False, reason="")),
        codec.decode_decision(pb.Decision(bundle_id=bid, commit=True, reason="x")),
        codec.decode_decision(pb.Decision(bundle_id=b"\x06" * 32, commit=True, reason="")),
    ]
    assert len({base.id, *(d.id for d in others)}) == 4


def test_block_round_trip_and_hash() -> None:
    tx_msg = signed_tx(tx_body())
    entries = [pb.Entry(tx=tx_msg), codec.encode_decision(b"\x07" * 32, True, "")]
    ids = [codec.compute_entry_id(e) for e in entries]

    msg = codec.encode_block(1, GENESIS_PARENT, 1_700_000_000_000, entries, ids)
    block = codec.decode_block(pb.Block.FromString(msg.SerializeToString()))

    assert block.height == 1 and block.parent_hash == GENESIS_PARENT
    assert [e.id for e in block.entries] == ids
    assert block.hash == compute_block_hash(1, GENESIS_PARENT, 1_700_000_000_000, ids)
    assert codec.decode_block_bytes(msg.SerializeToString()) == msg


@pytest.mark.parametrize("field", ["height", "parent_hash", "timestamp_ms", "entry"])
def test_block_with_altered_contents_fails_its_hash(field: str) -> None:
    entries = [pb.Entry(tx=signed_tx(tx_body()))]
    msg = codec.encode_block(3, b"\x11" * 32, 1000, entries, [codec.compute_entry_id(entries[0])])
    if field == "height":
        msg.header.height = 4
    elif field == "parent_hash":
        msg.header.parent_hash = b"\x12" * 32
    elif field == "timestamp_ms":
        msg.header.timestamp_ms = 1001
    else:
        msg.entries[0].CopyFrom(pb.Entry(tx=signed_tx(tx_body(nonce=43))))

    with pytest.raises(InvalidInput, match="hash does not match"):
        codec.decode_block(msg)


def test_block_with_wrong_entry_count_is_refused() -> None:
    msg = codec.encode_block(1, GENESIS_PARENT, 1, [], [])
    msg.header.entry_count = 1
    with pytest.raises(InvalidInput, match="entry_count"):
        codec.decode_block(msg)


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
