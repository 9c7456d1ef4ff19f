"""Blocks on the wire: sealing one (commitments, hash, signature) and verifying
one. Verification is what every node does to a block before applying anything
of it, in order of cost: the link to the chain it has, the header's byte budget
and hash, the sequencer's signature, then every entry's full bytes against the
header's namespace commitments. A block of a lower leader term than the node has
applied is refused as stale once its signature verifies, wherever it would link:
a superseded leader's block is neither the next block nor evidence of a fork. A
block that fails is never applied."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xrollup import codec
from xrollup.blocks import (
    PROTOCOL,
    BlockRefused,
    RefusalCode,
    compute_block_hash,
    compute_commitments,
    compute_entry_namespaces,
    is_valid_block_signature,
    sign_block,
    validate_commitments,
    validate_filtered_commitments,
    validate_header,
    validate_link,
    validate_term,
)
from xrollup.genesis import Genesis
from xrollup.keys import Keypair
from xrollup.model import Block, Header
from xrollup.numeric import Height, Term
from xrollup.v1 import types_pb2 as pb


def verify_block(
    msg: pb.Block,
    genesis: Genesis,
    genesis_hash: bytes,
    expected_height: int,
    expected_parent: bytes,
    rollup: str | None = None,
    min_term: int = 0,
) -> Block:
    """The decoded block, once it is shown to be the sequencer's, unaltered, and
    the next block of this chain. Raises BlockRefused saying which check failed.
    `rollup`: the block was streamed filtered to that rollup (filter_block): its
    entries are checked against the protocol's and that rollup's commitments, at
    the positions the block gives; the other namespaces rest on the signature. A
    whole block is checked whole either way. `min_term`: the leader term of the
    block the node applied last; a signed block of a lower term is refused
    STALE_TERM before its link is looked at (a forged one BAD_SIGNATURE)."""
    header = codec.decode_header(msg.header)

    def validate_signed() -> None:
        validate_header(
            header,
            bytes(msg.hash),
            bytes(msg.signature),
            genesis.sequencer_key,
            genesis_hash,
            genesis.rollup_names,
            genesis.limits.max_block_bytes,
        )

    if header.term < min_term:
        validate_signed()
        validate_term(header, min_term)
    validate_link(header, expected_height, expected_parent)
    validate_signed()
    block = codec.decode_block(msg)
    raw = codec.encode_entries(msg)
    rollups = genesis.rollup_names
    entries = [
        (r, compute_entry_namespaces(e, rollups)) for r, e in zip(raw, block.entries, strict=True)
    ]
    if rollup is not None and (msg.indices or len(entries) != header.entry_count):
        validate_filtered_commitments(header, entries, list(msg.indices), rollup)
    elif msg.indices:
        raise BlockRefused(
            RefusalCode.BAD_HEADER, int(header.height), "a filtered block where whole was asked"
        )
    else:  # a whole block (also accepted where a filtered one was asked: checked whole)
        validate_commitments(header, entries, rollups)
    return block


def compute_entry_spaces(
    entries: Iterable[pb.Entry], rollups: Sequence[str]
) -> list[tuple[str, ...]]:
    """Each entry's namespaces, found by decoding it (entries read from a log or
    about to be sealed elsewhere than the sequencer, which knows them from admission)."""
    return [compute_entry_namespaces(codec.decode_entry_tolerant(e), rollups) for e in entries]


def filter_block(msg: pb.Block, spaces: Sequence[tuple[str, ...]], rollup: str) -> pb.Block:
    """The block as streamed to `rollup`'s nodes: the header, hash and signature,
    and only the entries of `rollup`'s namespace and the protocol namespace, with
    their positions in the whole block."""
    keep = [i for i, names in enumerate(spaces) if rollup in names or PROTOCOL in names]
    out = strip_entries(msg)
    out.entries.extend(msg.entries[i] for i in keep)
    out.indices.extend(keep)
    return out


def seal_block(
    entries: Sequence[pb.Entry],
    height: int,
    parent_hash: bytes,
    timestamp_ms: int,
    genesis: Genesis,
    genesis_hash: bytes,
    key: Keypair,
    term: int = 0,
) -> pb.Block:
    """A block of these entries, committed and signed with `key` for leader
    `term`, finding each entry's namespaces by decoding it: for tests, test stream
    servers and the byzantine fault tools (the sequencer knows them from admission)."""
    rollups = genesis.rollup_names
    spaces = compute_entry_spaces(entries, rollups)
    return seal_entries(
        entries, spaces, height, parent_hash, timestamp_ms, rollups, genesis_hash, key, term
    )


def seal_entries(
    entries: Sequence[pb.Entry],
    spaces: Sequence[tuple[str, ...]],
    height: int,
    parent_hash: bytes,
    timestamp_ms: int,
    rollups: Sequence[str],
    genesis_hash: bytes,
    key: Keypair,
    term: int = 0,
) -> pb.Block:
    """The sealed block: every entry's full bytes committed per namespace
    (`spaces[i]` are entry i's), the header hashed and signed with `key`.
    `term`: the sealing leader's term, 0 for a single sequencer; an HA leader
    passes the term it won (its etcd leader key's create revision)."""
    raw = [e.SerializeToString() for e in entries]
    header = Header(
        height=Height(height),
        parent_hash=parent_hash,
        timestamp_ms=timestamp_ms,
        entry_count=len(entries),
        namespaces=compute_commitments(list(zip(raw, spaces, strict=True)), rollups),
        byte_count=sum(len(r) for r in raw),
        term=Term(term),
    )
    block_hash = compute_block_hash(header)
    return codec.encode_block(
        header, entries, block_hash, sign_block(key, genesis_hash, block_hash)
    )


def is_signed_header(msg: pb.Block, genesis: Genesis, genesis_hash: bytes) -> bool:
    """True when the header hashes to its hash and carries the sequencer's
    signature: half of the evidence of equivocation."""
    header = codec.decode_header(msg.header)
    return compute_block_hash(header) == bytes(msg.hash) and is_valid_block_signature(
        genesis.sequencer_key, genesis_hash, bytes(msg.hash), bytes(msg.signature)
    )


def strip_entries(msg: pb.Block) -> pb.Block:
    """A block's header, hash and signature without its entries (evidence)."""
    return pb.Block(header=msg.header, hash=msg.hash, signature=msg.signature)


__all__ = [
    "BlockRefused",
    "RefusalCode",
    "compute_entry_spaces",
    "filter_block",
    "is_signed_header",
    "strip_entries",
    "verify_block",
]
