"""Ed25519 keys, addresses and signatures, and the well-known dev keys.

An account address is blake3(public key)[:20]. A signature covers the exact body
bytes. Dev keys derive from DEV_SEED and an index, so every devnet has the same
dev accounts (as Anvil and Hardhat do): seed_i = blake3(DEV_SEED || "/account/" || i).
PyNaCl is used because it verifies about twice as fast as `cryptography` here
(bench/sequencer.py measures both)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import blake3
import nacl.bindings
import nacl.exceptions
import nacl.signing

from xrollup.errors import InvalidInput

DEV_SEED = b"xrollup devnet dev seed v1 -- never use for real funds"
ADDRESS_LEN = 20
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64

Address = bytes


def compute_address(public_key: bytes) -> Address:
    """The account a public key controls."""
    return blake3.blake3(public_key).digest()[:ADDRESS_LEN]


def encode_address(address: Address) -> str:
    return "0x" + address.hex()


def decode_address(text: str) -> Address:
    """Parse a 0x-prefixed 40-hex-digit address."""
    s = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        raise InvalidInput(f"address {text!r} is not hex") from None
    if len(raw) != ADDRESS_LEN:
        raise InvalidInput(f"address {text!r} is {len(raw)} bytes, want {ADDRESS_LEN}")
    return raw


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 signing key and what follows from it."""

    seed: bytes

    @functools.cached_property
    def _signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)  # ~0.3 ms to derive: kept

    @functools.cached_property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @functools.cached_property
    def address(self) -> Address:
        return compute_address(self.public_key)

    def sign(self, body: bytes) -> bytes:
        return bytes(self._signing_key.sign(body).signature)


def derive_keypair(label: str) -> Keypair:
    """A deterministic keypair from the dev seed and a label."""
    return Keypair(blake3.blake3(DEV_SEED + b"/" + label.encode()).digest())


def derive_dev_account(index: int) -> Keypair:
    """Dev account `index` (0, 1, 2, ...), the same on every devnet."""
    if index < 0:
        raise InvalidInput(f"dev account index must be >= 0, got {index}")
    return derive_keypair(f"account/{index}")


def derive_rollup_vote_key(rollup: str) -> Keypair:
    return derive_keypair(f"rollup/{rollup}/vote")


def derive_oracle_key() -> Keypair:
    return derive_keypair("oracle")


def derive_sequencer_key() -> Keypair:
    """The dev sequencer's block-signing key. Anyone with the dev seed can sign
    blocks with it: that is what the byzantine fault tools use."""
    return derive_keypair("sequencer")


def load_keypair(path: Path | None, default: Keypair, what: str) -> Keypair:
    """A key from a file holding its 32-byte seed in hex, or `default` (a dev key)."""
    if path is None:
        return default
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{what} {path}: {e}") from None
    if len(seed) != 32:
        raise InvalidInput(f"{what} {path}: want a 32-byte hex seed")
    return Keypair(seed)


def is_valid_signature(public_key: bytes, signature: bytes, body: bytes) -> bool:
    """True when `signature` by `public_key` verifies over `body`. Releases the GIL."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + body, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True
