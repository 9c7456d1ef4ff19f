"""Keys (xrollup/keys.py): dev keys derive deterministically from the documented
dev seed (pinned by a golden address, so a change is never silent), signatures
verify over the exact body bytes, and anything tampered fails."""

from __future__ import annotations

import blake3
import pytest

from xrollup.errors import InvalidInput
from xrollup.keys import (
    DEV_SEED,
    Keypair,
    compute_address,
    decode_address,
    derive_dev_account,
    derive_oracle_key,
    derive_rollup_vote_key,
    encode_address,
    is_valid_signature,
)

# Golden values: dev account 0 on every devnet. Changing the derivation breaks these.
DEV_ACCOUNT_0_ADDRESS = "0xdabebc0979c71e960dee320a456090fba7575184"
DEV_ACCOUNT_0_PUBLIC_KEY = "dd09b8f9f01243cb83baee732f3f2e5c904eb436ed6f5e65912650820ab844e2"


def test_dev_account_0_is_pinned() -> None:
    k = derive_dev_account(0)
    assert encode_address(k.address) == DEV_ACCOUNT_0_ADDRESS
    assert k.public_key.hex() == DEV_ACCOUNT_0_PUBLIC_KEY


def test_dev_keys_follow_the_documented_derivation() -> None:
    # seed_i = blake3(DEV_SEED || "/account/" || i); address = blake3(public key)[:20]
    for i in (0, 1, 9):
        k = derive_dev_account(i)
        assert k.seed == blake3.blake3(DEV_SEED + f"/account/{i}".encode()).digest()
        assert k.address == blake3.blake3(k.public_key).digest()[:20]
        assert compute_address(k.public_key) == k.address


def test_dev_keys_are_deterministic_and_distinct() -> None:
    assert derive_dev_account(3) == derive_dev_account(3)
    assert derive_dev_account(3).public_key == derive_dev_account(3).public_key
    keys = [derive_dev_account(i) for i in range(10)]
    keys += [derive_oracle_key(), derive_rollup_vote_key("alpha"), derive_rollup_vote_key("beta")]
    assert len({k.public_key for k in keys}) == len(keys)
    assert len({k.address for k in keys}) == len(keys)


def test_negative_dev_index_is_refused() -> None:
    with pytest.raises(InvalidInput, match=">= 0"):
        derive_dev_account(-1)


def test_signature_verifies_over_the_exact_body() -> None:
    k = derive_dev_account(1)
    body = b"some body bytes"
    sig = k.sign(body)
    assert len(sig) == 64
    assert is_valid_signature(k.public_key, sig, body)
    assert k.sign(body) == sig  # Ed25519 is deterministic


@pytest.mark.parametrize("where", [0, 7, 14])
def test_tampered_body_fails(where: int) -> None:
    k = derive_dev_account(1)
    body = b"some body bytes"
    sig = k.sign(body)
    tampered = bytearray(body)
    tampered[where] ^= 0x01
    assert not is_valid_signature(k.public_key, sig, bytes(tampered))
    assert not is_valid_signature(k.public_key, sig, body + b"\x00")
    assert not is_valid_signature(k.public_key, sig, body[:-1])


def test_tampered_signature_wrong_key_and_bad_lengths_fail() -> None:
    k, other = derive_dev_account(1), derive_dev_account(2)
    body = b"transfer 5 USDC"
    sig = k.sign(body)
    assert not is_valid_signature(k.public_key, bytes([sig[0] ^ 1]) + sig[1:], body)
    assert not is_valid_signature(other.public_key, sig, body)
    assert not is_valid_signature(k.public_key[:31], sig, body)
    assert not is_valid_signature(k.public_key, sig[:63], body)
    assert not is_valid_signature(k.public_key, bytes(64), body)
    assert not is_valid_signature(bytes(32), sig, body)


def test_any_seed_makes_a_working_keypair() -> None:
    k = Keypair(bytes(range(32)))
    assert is_valid_signature(k.public_key, k.sign(b"x"), b"x")


def test_address_text_round_trip_and_refusals() -> None:
    a = derive_dev_account(0).address
    assert decode_address(encode_address(a)) == a
    assert decode_address(encode_address(a)[2:]) == a
    assert decode_address(encode_address(a).upper().replace("0X", "0x")) == a
    with pytest.raises(InvalidInput, match="not hex"):
        decode_address("0xzz")
    with pytest.raises(InvalidInput, match="19 bytes, want 20"):
        decode_address("0x" + "ab" * 19)
