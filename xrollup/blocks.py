"""Ids and the block hash chain. An id is blake3(body bytes); a block's hash is
blake3 over its canonical header encoding and the ids of its entries, so anyone
can verify the chain without trusting protobuf's serialization."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import blake3

from xrollup.errors import InvalidInput

HASH_LEN = 32
GENESIS_PARENT = bytes(HASH_LEN)
_BLOCK_TAG = b"xrollup/block/v1"
_DECISION_TAG = b"xrollup/decision/v1"


def compute_id(body: bytes) -> bytes:
    """The id of a signed body (transaction, bundle or vote)."""
    return blake3.blake3(body).digest()


def compute_decision_id(bundle_id: bytes, commit: bool, reason: str) -> bytes:
    return blake3.blake3(
        _DECISION_TAG + bundle_id + (b"\x01" if commit else b"\x00") + reason.encode()
    ).digest()


def compute_block_hash(
    height: int, parent_hash: bytes, timestamp_ms: int, entry_ids: Sequence[bytes]
) -> bytes:
    """blake3(tag || height u64 || parent 32B || timestamp u64 || count u32 || ids)."""
    h = blake3.blake3(_BLOCK_TAG)
    h.update(
        struct.pack(">Q", height) + parent_hash + struct.pack(">QI", timestamp_ms, len(entry_ids))
    )
    for entry_id in entry_ids:
        h.update(entry_id)
    return h.digest()


def validate_chain_link(
    height: int,
    parent_hash: bytes,
    timestamp_ms: int,
    entry_ids: Sequence[bytes],
    block_hash: bytes,
    expected_height: int,
    expected_parent: bytes,
) -> None:
    """Raise InvalidInput unless this block extends the chain at expected_height."""
    if height != expected_height:
        raise InvalidInput(f"block height {height}, expected {expected_height}")
    if parent_hash != expected_parent:
        raise InvalidInput(f"block {height}: parent hash does not match block {height - 1}")
    if compute_block_hash(height, parent_hash, timestamp_ms, entry_ids) != block_hash:
        raise InvalidInput(f"block {height}: hash does not match its header and entries")
