"""The state root: a commitment to every (key, value) pair of the state,
updated in O(writes) per block.

Each pair is hashed with blake3 (XOF, 256 bytes) to a 2048-bit integer; the
accumulator is their sum mod 2^2048 (an additive multiset hash, AdHash), so it
does not depend on order and a block only adds and subtracts the pairs it
changed. The root is blake3(tag || accumulator). `compute_accumulator` builds
it from scratch; tests check both ways agree."""

from __future__ import annotations

import struct
from collections.abc import Iterable

import blake3

ACC_BYTES = 256
MODULUS = 1 << (8 * ACC_BYTES)
_ITEM_TAG = b"xrollup/state-item/v1"
_ROOT_TAG = b"xrollup/state-root/v1"


def compute_item_hash(key: bytes, value: bytes) -> int:
    h = blake3.blake3(_ITEM_TAG + struct.pack(">I", len(key)) + key + value)
    return int.from_bytes(h.digest(length=ACC_BYTES), "big")


def compute_accumulator(items: Iterable[tuple[bytes, bytes]]) -> int:
    acc = 0
    for key, value in items:
        acc += compute_item_hash(key, value)
    return acc % MODULUS


def update_accumulator(
    acc: int, changes: Iterable[tuple[bytes, bytes | None, bytes | None]]
) -> int:
    """Apply (key, old value, new value) changes; None means absent."""
    for key, old, new in changes:
        if old == new:
            continue
        if old is not None:
            acc -= compute_item_hash(key, old)
        if new is not None:
            acc += compute_item_hash(key, new)
    return acc % MODULUS


def compute_state_root(acc: int) -> bytes:
    return blake3.blake3(_ROOT_TAG + acc.to_bytes(ACC_BYTES, "big")).digest()


def encode_accumulator(acc: int) -> bytes:
    return acc.to_bytes(ACC_BYTES, "big")


def decode_accumulator(raw: bytes) -> int:
    return int.from_bytes(raw, "big")
