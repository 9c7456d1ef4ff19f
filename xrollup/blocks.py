"""Ids, block headers and their verification: what every party recomputes.

- An id is blake3(body bytes): for de-duplication only, it omits signatures.
- A header commits to the *full* encoded bytes of every entry, signatures
  included, per namespace: one commitment for each genesis rollup (its
  transactions and every bundle with a leg on it) and one for protocol entries
  (votes and decisions). Empty namespaces are committed too, so a stream
  filtered to one rollup cannot hide entries from it.
- The block hash is blake3 over the canonical header encoding below (never
  protobuf's serialization); the sequencer signs (tag, genesis hash, block hash)
  with the key genesis names, so a block from another devnet never verifies.

- The header carries the sealing leader's term (0 for a single sequencer), so a
  node refuses a signed block of a lower term than the one it applied
  (STALE_TERM): a superseded leader's block is stale, not evidence.

Canonical header encoding (integers big-endian):
    height u64 | term u64 | parent 32 | timestamp u64 | entry count u32 | byte count u64 |
    namespace count u32 | per namespace: name length u16, name utf-8, count u32, root 32

A namespace root: blake3(tag | name | per entry in block order: index u32 | length u32 | bytes).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence

import blake3

from xrollup.errors import InvalidInput
from xrollup.keys import Keypair, is_valid_signature
from xrollup.model import Bundle, Commitment, Entry, Header, Tx

HASH_LEN = 32
GENESIS_PARENT = bytes(HASH_LEN)
PROTOCOL = ""  # the protocol namespace's name: votes and decisions
_HEADER_TAG = b"xrollup/header/v3"
_NAMESPACE_TAG = b"xrollup/namespace/v1"
_SIGNING_TAG = b"xrollup/block-signature/v1"
_DECISION_TAG = b"xrollup/decision/v2"
_ITEM = struct.Struct(">II")  # an entry's index and length in a namespace commitment


class RefusalCode(enum.IntEnum):
    """Why a node refused a block (mirrors xrollup.v1.Refusal.Code)."""

    BAD_SIGNATURE = 1
    BAD_COMMITMENT = 2
    BAD_LINK = 3
    BAD_HEADER = 4
    TOO_LARGE = 5
    BAD_DECISION = 6
    EQUIVOCATION = 7
    STALE_TERM = 8


class BlockRefused(InvalidInput):
    """A block that must never be applied; `code` says which check failed."""

    def __init__(self, code: RefusalCode, height: int, message: str) -> None:
        super().__init__(f"block {height}: {message}")
        self.code = code
        self.height = height


def compute_id(body: bytes) -> bytes:
    """The id of a signed body (transaction, bundle or vote)."""
    return blake3.blake3(body).digest()


def compute_decision_id(bundle_id: bytes, commit: bool, code: int) -> bytes:
    return blake3.blake3(
        _DECISION_TAG + bundle_id + (b"\x01" if commit else b"\x00") + struct.pack(">H", code)
    ).digest()


def compute_entry_namespaces(entry: Entry, rollups: Sequence[str]) -> tuple[str, ...]:
    """The namespaces an entry belongs to: a transaction's rollup, every rollup a
    bundle has a leg on; votes, decisions and anything naming no genesis rollup
    go to the protocol namespace."""
    if isinstance(entry, Tx):
        names: tuple[str, ...] = (entry.body.rollup,)
    elif isinstance(entry, Bundle):
        names = entry.rollups
    else:
        return (PROTOCOL,)
    known = tuple(n for n in names if n in rollups)
    return known or (PROTOCOL,)


def compute_commitments(
    entries: Sequence[tuple[bytes, tuple[str, ...]]],
    rollups: Sequence[str],
    positions: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
) -> tuple[Commitment, ...]:
    """The namespace commitments of a block's entries, each given as (encoded
    bytes, namespaces): the protocol namespace first, then each genesis rollup in
    genesis order. `positions`: each entry's position in the whole block (default:
    the entries are the whole block). `names`: only these namespaces' commitments
    (the ones a block filtered to one rollup carries whole)."""
    names = (PROTOCOL, *rollups) if names is None else tuple(names)
    parts: dict[str, list[bytes]] = {n: [] for n in names}
    at = range(len(entries)) if positions is None else positions
    for index, (raw, spaces) in zip(at, entries, strict=True):
        item = _ITEM.pack(index, len(raw))
        for n in spaces:
            if n in parts:
                parts[n] += (item, raw)
    hashers = {}
    for n in names:
        h = blake3.blake3(_NAMESPACE_TAG + struct.pack(">H", len(n)) + n.encode())
        h.update(b"".join(parts[n]))
        hashers[n] = h
    counts = {n: len(parts[n]) // 2 for n in names}
    return tuple(Commitment(n, counts[n], hashers[n].digest()) for n in names)


def encode_header(h: Header) -> bytes:
    parts = [
        struct.pack(">QQ", h.height, h.term),
        h.parent_hash,
        struct.pack(">QIQI", h.timestamp_ms, h.entry_count, h.byte_count, len(h.namespaces)),
    ]
    for c in h.namespaces:
        name = c.rollup.encode()
        parts.append(struct.pack(">H", len(name)) + name + struct.pack(">I", c.count) + c.root)
    return b"".join(parts)


def compute_block_hash(h: Header) -> bytes:
    return blake3.blake3(_HEADER_TAG + encode_header(h)).digest()


def _signing_message(genesis_hash: bytes, block_hash: bytes) -> bytes:
    return _SIGNING_TAG + genesis_hash + block_hash


def sign_block(key: Keypair, genesis_hash: bytes, block_hash: bytes) -> bytes:
    return key.sign(_signing_message(genesis_hash, block_hash))


def is_valid_block_signature(
    public_key: bytes, genesis_hash: bytes, block_hash: bytes, signature: bytes
) -> bool:
    return is_valid_signature(public_key, signature, _signing_message(genesis_hash, block_hash))


def validate_header(
    header: Header,
    block_hash: bytes,
    signature: bytes,
    sequencer_key: bytes,
    genesis_hash: bytes,
    rollups: Sequence[str],
    max_block_bytes: int,
) -> None:
    """The header is well formed, within the byte budget, hashes to `block_hash`
    and is signed by the sequencer key. Raises BlockRefused."""
    height = int(header.height)
    expected_names = (PROTOCOL, *rollups)
    if tuple(c.rollup for c in header.namespaces) != expected_names:
        raise BlockRefused(
            RefusalCode.BAD_HEADER, height, "namespaces are not the protocol's and genesis rollups'"
        )
    if header.byte_count > max_block_bytes:
        raise BlockRefused(
            RefusalCode.TOO_LARGE,
            height,
            f"{header.byte_count} bytes of entries, the block budget is {max_block_bytes}",
        )
    if compute_block_hash(header) != block_hash:
        raise BlockRefused(RefusalCode.BAD_HEADER, height, "hash does not match its header")
    if not is_valid_block_signature(sequencer_key, genesis_hash, block_hash, signature):
        raise BlockRefused(
            RefusalCode.BAD_SIGNATURE, height, "header is not signed by the genesis sequencer key"
        )


def validate_term(header: Header, min_term: int) -> None:
    """The header's leader term is not below `min_term`, the term of the applied
    header it competes with (the node's head for the next height, the one applied
    at its height for an applied one). Call it once the header's signature
    verified: only then is the block a superseded leader's rather than a forgery.
    Raises BlockRefused (STALE_TERM)."""
    if header.term < min_term:
        raise BlockRefused(
            RefusalCode.STALE_TERM,
            int(header.height),
            f"term {header.term} is below term {min_term}, which this node has seen:"
            " signed by a superseded leader",
        )


def validate_link(header: Header, expected_height: int, expected_parent: bytes) -> None:
    """The header extends the chain at expected_height. Raises BlockRefused."""
    if header.height != expected_height:
        raise BlockRefused(
            RefusalCode.BAD_LINK, int(header.height), f"expected height {expected_height}"
        )
    if header.parent_hash != expected_parent:
        raise BlockRefused(
            RefusalCode.BAD_LINK,
            int(header.height),
            f"parent hash does not match block {expected_height - 1}",
        )


def validate_commitments(
    header: Header, entries: Sequence[tuple[bytes, tuple[str, ...]]], rollups: Sequence[str]
) -> None:
    """The entries (encoded bytes, namespaces) are exactly what the header commits to."""
    height = int(header.height)
    if len(entries) != header.entry_count:
        raise BlockRefused(
            RefusalCode.BAD_HEADER,
            height,
            f"{len(entries)} entries, the header says {header.entry_count}",
        )
    size = sum(len(raw) for raw, _ in entries)
    if size != header.byte_count:
        raise BlockRefused(
            RefusalCode.BAD_COMMITMENT,
            height,
            f"{size} bytes of entries, the header commits to {header.byte_count}",
        )
    got = compute_commitments(entries, rollups)
    for mine, theirs in zip(got, header.namespaces, strict=True):
        if mine != theirs:
            name = mine.rollup or "protocol"
            raise BlockRefused(
                RefusalCode.BAD_COMMITMENT,
                height,
                f"the {name} entries do not match the header's commitment"
                " (altered, added or removed bytes)",
            )


def validate_filtered_commitments(
    header: Header,
    entries: Sequence[tuple[bytes, tuple[str, ...]]],
    positions: Sequence[int],
    rollup: str,
) -> None:
    """A block filtered to `rollup`: the entries sent (encoded bytes, namespaces) at
    their `positions` in the whole block are exactly what the header commits to for
    the protocol namespace and `rollup`'s, none missing, altered or added, and
    nothing else was sent. Raises BlockRefused."""
    height = int(header.height)
    if len(positions) != len(entries):
        raise BlockRefused(
            RefusalCode.BAD_HEADER,
            height,
            f"{len(entries)} entries with {len(positions)} positions",
        )
    previous = -1
    for p in positions:
        if not previous < p < header.entry_count:
            raise BlockRefused(
                RefusalCode.BAD_HEADER,
                height,
                f"entry position {p} is out of order or past the header's {header.entry_count}",
            )
        previous = p
    kept = (PROTOCOL, rollup)
    for p, (_, spaces) in zip(positions, entries, strict=True):
        if not any(n in kept for n in spaces):
            raise BlockRefused(
                RefusalCode.BAD_COMMITMENT,
                height,
                f"entry {p} belongs to neither {rollup} nor the protocol namespace",
            )
    size = sum(len(raw) for raw, _ in entries)
    if size > header.byte_count:
        raise BlockRefused(
            RefusalCode.BAD_COMMITMENT,
            height,
            f"{size} bytes of entries sent, the header commits to {header.byte_count} in all",
        )
    got = compute_commitments(entries, (), positions, kept)
    theirs = {c.rollup: c for c in header.namespaces}
    for mine in got:
        if theirs.get(mine.rollup) != mine:
            name = mine.rollup or "protocol"
            raise BlockRefused(
                RefusalCode.BAD_COMMITMENT,
                height,
                f"the {name} entries sent do not match the header's commitment"
                " (altered, added or withheld)",
            )
