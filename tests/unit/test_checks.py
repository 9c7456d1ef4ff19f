"""Admission checks (xrollup/checks.py): each refusal raises its own class from
xrollup.errors, with a message naming the problem, and xrollup.grpc_status maps
each class to one status code."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from xrollup import checks, codec, errors
from xrollup.blocks import compute_id
from xrollup.genesis import DEV_CHAIN_ID, Limits, compute_genesis_hash, dev_genesis
from xrollup.grpc_status import compute_status, compute_status_value
from xrollup.keys import Keypair, derive_dev_account, derive_oracle_key, derive_rollup_vote_key
from xrollup.model import (
    Bundle,
    BundleBody,
    Leg,
    PriceUpdate,
    Signature,
    Transfer,
    Tx,
    TxBody,
    Vote,
    VoteBody,
)
from xrollup.numeric import Amount, Height

GENESIS = dev_genesis()
GENESIS_HASH = compute_genesis_hash(GENESIS)
ALICE, BOB, CAROL = (derive_dev_account(i) for i in range(3))
ORACLE = derive_oracle_key()


def make_tx(*signers: Keypair, sender: Keypair = ALICE, **kw: object) -> Tx:
    fields: dict[str, object] = dict(
        chain_id=DEV_CHAIN_ID,
        rollup="alpha",
        sender=sender.address,
        nonce=1,
        expiry_height=Height(100),
        action=Transfer(BOB.address, "USDC", Amount(5)),
    )
    fields.update(kw)
    body = TxBody(**fields)  # type: ignore[arg-type]
    raw = codec.encode_tx_body(body)
    sigs = tuple(Signature(k.public_key, k.sign(raw)) for k in (signers or (sender,)))
    return Tx(compute_id(raw), body, raw, sigs)


def make_bundle(
    legs: tuple[Leg, ...], signers: tuple[Keypair, ...], chain_id: str = DEV_CHAIN_ID
) -> Bundle:
    body = BundleBody(chain_id, 1, Height(100), legs)
    raw = codec.encode_bundle_body(body)
    return Bundle(b"", body, raw, tuple(Signature(k.public_key, k.sign(raw)) for k in signers))


def make_vote(
    signer: Keypair,
    rollup: str = "alpha",
    chain_id: str = DEV_CHAIN_ID,
    genesis_hash: bytes = GENESIS_HASH,
) -> Vote:
    body = VoteBody(chain_id, rollup, Height(3), (), genesis_hash)
    raw = codec.encode_vote_body(body)
    return Vote(b"", body, raw, Signature(signer.public_key, signer.sign(raw)))


def leg(sender: Keypair, rollup: str = "alpha", asset: str = "USDC") -> Leg:
    return Leg(rollup, sender.address, Transfer(CAROL.address, asset, Amount(1)))


# ---------------------------------------------------------------- accepted


def test_good_submissions_pass() -> None:
    checks.validate_tx(make_tx(), GENESIS)
    checks.validate_tx(
        make_tx(sender=ORACLE, action=PriceUpdate("ETH", "USDC", Amount(3))), GENESIS
    )
    checks.validate_bundle(make_bundle((leg(ALICE), leg(BOB, "beta")), (ALICE, BOB)), GENESIS)
    checks.validate_bundle(make_bundle((leg(ALICE), leg(ALICE, "beta")), (ALICE,)), GENESIS)
    checks.validate_vote(make_vote(derive_rollup_vote_key("beta"), "beta"), GENESIS)
    checks.validate_expiry(10, 10, GENESIS, "tx")  # the last height it may be ordered at
    checks.validate_expiry(10 + GENESIS.limits.max_expiry_window, 10, GENESIS, "tx")


# ---------------------------------------------------------------- refused, one class each


def test_invalid_input_refusals() -> None:
    cases = [
        (lambda: checks.validate_tx(make_tx(chain_id="other"), GENESIS), "tx.chain_id is 'other'"),
        (lambda: checks.validate_tx(make_tx(rollup="gamma"), GENESIS), "unknown rollup 'gamma'"),
        (
            lambda: checks.validate_tx(
                make_tx(action=Transfer(BOB.address, "DOGE", Amount(1))), GENESIS
            ),
            "unknown asset 'DOGE'",
        ),
        (
            lambda: checks.validate_tx(
                make_tx(sender=ORACLE, action=PriceUpdate("ETH", "DOGE", Amount(1))), GENESIS
            ),
            "price_update.quote: unknown asset 'DOGE'",
        ),
        (
            lambda: checks.validate_bundle(make_bundle((leg(ALICE, "gamma"),), (ALICE,)), GENESIS),
            "bundle.legs[0].rollup",
        ),
        (
            lambda: checks.validate_vote(make_vote(ALICE, "gamma"), GENESIS),
            "unknown rollup 'gamma'",
        ),
        (
            lambda: checks.validate_vote(make_vote(ALICE, chain_id="x"), GENESIS),
            "vote.chain_id is 'x'",
        ),
        (
            lambda: checks.validate_vote(
                make_vote(derive_rollup_vote_key("alpha"), genesis_hash=bytes(32)), GENESIS
            ),
            "vote.genesis_hash: the vote is for another chain's genesis",
        ),
        (
            lambda: checks.validate_expiry(
                10 + GENESIS.limits.max_expiry_window + 1, 10, GENESIS, "tx"
            ),
            "blocks ahead",
        ),
    ]
    for call, words in cases:
        with pytest.raises(errors.InvalidInput) as err:
            call()
        assert words in str(err.value)
        assert compute_status(err.value)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_expired_is_refused_by_state() -> None:
    with pytest.raises(errors.Expired, match="expired at height 9; the next block is 10") as err:
        checks.validate_expiry(9, 10, GENESIS, "tx")
    assert isinstance(err.value, errors.Refused)
    assert compute_status(err.value)[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_bad_signature_is_unauthenticated() -> None:
    tx = make_tx()
    forged = dataclasses.replace(tx, signatures=(Signature(ALICE.public_key, bytes(64)),))
    with pytest.raises(errors.BadSignature, match=r"tx\.signatures\[0\] does not verify"):
        checks.validate_tx(forged, GENESIS)
    # A signature over other bytes does not verify over these.
    other = make_tx(nonce=2)
    with pytest.raises(errors.BadSignature):
        checks.validate_tx(dataclasses.replace(tx, signatures=other.signatures), GENESIS)
    short_key = dataclasses.replace(
        tx, signatures=(Signature(b"\x01", tx.signatures[0].signature),)
    )
    with pytest.raises(errors.BadSignature):
        checks.validate_tx(short_key, GENESIS)
    vote = make_vote(derive_rollup_vote_key("alpha"))
    with pytest.raises(errors.BadSignature, match=r"vote\.signature does not verify"):
        checks.validate_vote(
            dataclasses.replace(vote, body_bytes=vote.body_bytes + b"\x00"), GENESIS
        )
    assert compute_status(errors.BadSignature("x"))[0] == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_signer_is_not_authorized() -> None:
    cases = [
        (make_tx(BOB), "has not signed"),  # sender ALICE signed by BOB
        (make_tx(ALICE, BOB), "does not touch"),  # an extra signer
    ]
    for tx, words in cases:
        with pytest.raises(errors.NotAuthorized, match=words):
            checks.validate_tx(tx, GENESIS)
    with pytest.raises(errors.NotAuthorized, match=BOB.address.hex()):
        checks.validate_bundle(make_bundle((leg(ALICE), leg(BOB, "beta")), (ALICE,)), GENESIS)
    with pytest.raises(errors.NotAuthorized, match="oracle"):
        checks.validate_tx(make_tx(action=PriceUpdate("ETH", "USDC", Amount(3))), GENESIS)
    with pytest.raises(errors.NotAuthorized, match="genesis vote key"):
        checks.validate_vote(make_vote(ALICE), GENESIS)
    with pytest.raises(errors.NotAuthorized, match="genesis vote key"):
        checks.validate_vote(make_vote(derive_rollup_vote_key("beta"), "alpha"), GENESIS)
    assert compute_status(errors.NotAuthorized("x"))[0] == grpc.StatusCode.PERMISSION_DENIED


def test_limits_are_resource_exhausted() -> None:
    limits = GENESIS.limits
    big = make_tx(action=Transfer(BOB.address, "X" * limits.max_body_bytes, Amount(1)))
    cases = [
        (lambda: checks.validate_tx(big, GENESIS), f"limit is {limits.max_body_bytes}"),
        (
            lambda: checks.validate_tx(
                make_tx(action=Transfer(BOB.address, "USDC", Amount(2**63))), GENESIS
            ),
            "over the limit",
        ),
        (lambda: checks.validate_tx(make_tx(*[ALICE] * 9), GENESIS), "9 signatures, limit is 8"),
        (
            lambda: checks.validate_bundle(
                make_bundle(tuple(leg(ALICE) for _ in range(9)), (ALICE,)), GENESIS
            ),
            "9 legs, limit is 8",
        ),
    ]
    for call, words in cases:
        with pytest.raises(errors.LimitExceeded) as err:
            call()
        assert words in str(err.value)
        assert compute_status(err.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_limits_come_from_genesis() -> None:
    def tight(**limits: int):
        return dataclasses.replace(GENESIS, limits=dataclasses.replace(Limits(), **limits))

    with pytest.raises(errors.LimitExceeded, match="limit is 64"):
        checks.validate_tx(make_tx(), tight(max_body_bytes=64))
    with pytest.raises(errors.LimitExceeded, match="limit is 1"):
        checks.validate_bundle(
            make_bundle((leg(ALICE), leg(ALICE, "beta")), (ALICE,)), tight(max_legs=1)
        )
    with pytest.raises(errors.LimitExceeded, match="over the limit 4"):
        checks.validate_tx(
            make_tx(action=Transfer(BOB.address, "USDC", Amount(5))), tight(max_amount=4)
        )


# ---------------------------------------------------------------- the status table


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (errors.InvalidInput("m"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.BadSignature("m"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.NotAuthorized("m"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Refused("m"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Expired("m"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Conflict("m"), grpc.StatusCode.ABORTED),
        (errors.NotFound("m"), grpc.StatusCode.NOT_FOUND),
        (errors.Unavailable("m"), grpc.StatusCode.UNAVAILABLE),
        (errors.LimitExceeded("m"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.PoolFull("m"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_each_error_class_has_one_status(err: errors.XrollupError, code: grpc.StatusCode) -> None:
    assert compute_status(err) == (code, "m")
    assert compute_status_value(err) == (code.value[0], "m")


@pytest.mark.parametrize(
    "err", [ValueError("boom"), AssertionError("broken"), errors.XrollupError("base")]
)
def test_unexpected_errors_are_internal_never_unknown(err: Exception) -> None:
    code, message = compute_status(err)
    assert code == grpc.StatusCode.INTERNAL
    assert type(err).__name__ in message and str(err) in message
