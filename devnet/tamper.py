"""Byzantine fault tools: what a malicious sequencer (or anything on a node's
link) could send instead of the honest block stream. The proxy applies one of
these modes to every block it streams to a node (devnet/proxy.py); the node
must refuse what is not the sequencer's honest, committed, signed block
(DESIGN.md I7) and show why in GetNodeStatus.

| mode           | what the node receives                                   | refusal        |
|----------------|----------------------------------------------------------|----------------|
| corrupt        | the first signature of every tx, bundle and vote entry   | BAD_COMMITMENT |
|                | with one byte flipped; header and signature unchanged    |                |
| forge-block    | the same entries re-sealed with a key that is not the    | BAD_SIGNATURE  |
|                | sequencer's (derive_keypair("forger"))                   |                |
| forge-decision | the block re-sealed with the dev sequencer key, plus a   | BAD_DECISION   |
|                | commit decision the logged votes do not give (a bundle   |                |
|                | of this very block, or the last the stream ordered)      |                |
| equivocate     | the honest block h, then a second block h signed with    | EQUIVOCATION   |
|                | the dev sequencer key (one entry dropped, or a later     | (evidence kept,|
|                | timestamp when the block is empty)                       | node halts)    |

Blocks with nothing to corrupt (no signed entry) pass unchanged under
`corrupt`, and blocks before any bundle under `forge-decision`. A stream filtered
to one rollup (StreamBlocksRequest.rollup) is forged as such: the protocol's and
that rollup's commitments recomputed, the others copied from the honest header.
forge-decision and equivocate sign as the sequencer, so they need the dev
sequencer key (xrollup.keys.derive_sequencer_key) to be the key genesis
names; `require_signing_key` says so before a mode is turned on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from xrollup import codec
from xrollup.blocks import (
    PROTOCOL,
    compute_block_hash,
    compute_commitments,
    compute_id,
    sign_block,
)
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair, derive_keypair, derive_sequencer_key
from xrollup.model import ReasonCode
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import compute_entry_spaces, seal_block

CORRUPT = "corrupt"
FORGE_BLOCK = "forge-block"
FORGE_DECISION = "forge-decision"
EQUIVOCATE = "equivocate"
MODES = (CORRUPT, FORGE_BLOCK, FORGE_DECISION, EQUIVOCATE)
SIGNING_MODES = (FORGE_DECISION, EQUIVOCATE)  # they sign as the genesis sequencer key
# How many ordered bundles forge-decision remembers per stream: enough that a node
# sent an older height again still finds one ordered below it (~100 bytes each).
SEEN_BUNDLES = 4096
EXPECTED_REFUSAL = {
    CORRUPT: "BAD_COMMITMENT",
    FORGE_BLOCK: "BAD_SIGNATURE",
    FORGE_DECISION: "BAD_DECISION",
    EQUIVOCATE: "EQUIVOCATION",
}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"unknown byzantine mode {mode!r} (modes: {', '.join(MODES)})")
    return mode


def require_signing_key(genesis: Genesis, mode: str) -> None:
    """Refuse a mode that signs as the sequencer when genesis names another key."""
    if mode in SIGNING_MODES and genesis.sequencer_key != derive_sequencer_key().public_key:
        raise InvalidInput(
            f"{mode} signs blocks as the sequencer: it needs the dev sequencer key, and this"
            " devnet's genesis names another one"
        )


def flip(signature: bytes) -> bytes:
    """The signature with its first byte changed (empty stays empty)."""
    return bytes([signature[0] ^ 0x01]) + signature[1:] if signature else signature


class Tamperer:
    """Applies a byzantine mode to one streamed block: `apply(mode, msg)` gives the
    blocks to send in its place (one, or two for equivocate)."""

    def __init__(
        self,
        genesis: Genesis,
        sequencer_key: Keypair | None = None,
        forger_key: Keypair | None = None,
    ) -> None:
        self.genesis = genesis
        self.genesis_hash = compute_genesis_hash(genesis)
        self.sequencer_key = sequencer_key or derive_sequencer_key()
        self.forger_key = forger_key or derive_keypair("forger")
        # The bundles seen ordered, per stream rollup ("" for the whole stream), as
        # (height, id), newest last: what forge-decision targets in a block that
        # orders none.
        self._seen_bundles: dict[str, list[tuple[int, bytes]]] = {}
        self._modes: dict[str, Callable[[pb.Block, str], list[pb.Block]]] = {
            CORRUPT: self.corrupt,
            FORGE_BLOCK: self.forge_block,
            FORGE_DECISION: self.forge_decision,
            EQUIVOCATE: self.equivocate,
        }

    def apply(self, mode: str, msg: pb.Block, rollup: str = "") -> list[pb.Block]:
        """The blocks to send instead of `msg`, a block of the stream asked for
        `rollup` ("" for every entry; else filtered: xrollup.verify.filter_block)."""
        return self._modes[check_mode(mode)](msg, rollup)

    def apply_bytes(self, mode: str, raw: bytes, rollup: str = "") -> list[bytes]:
        """As apply, on a block's wire bytes (what the proxy relays)."""
        return [b.SerializeToString() for b in self.apply(mode, pb.Block.FromString(raw), rollup)]

    def reseal(
        self,
        msg: pb.Block,
        entries: list[pb.Entry],
        key: Keypair,
        timestamp_ms: int | None = None,
        rollup: str = "",
        positions: list[int] | None = None,
    ) -> pb.Block:
        """A block at msg's height, term and parent with these entries, signed by `key`.
        For a filtered stream (`rollup`), the entries sent at `positions` (default:
        msg's): the protocol's and the rollup's commitments are recomputed from
        them, the other namespaces' copied from msg's header, as a sequencer
        forging a block for that rollup's nodes would."""
        h = msg.header
        ts = h.timestamp_ms if timestamp_ms is None else timestamp_ms
        if not rollup:
            return seal_block(
                entries,
                h.height,
                bytes(h.parent_hash),
                ts,
                self.genesis,
                self.genesis_hash,
                key,
                h.term,
            )
        at = list(msg.indices) if positions is None else positions
        header = codec.decode_header(h)
        raw = [e.SerializeToString() for e in entries]
        spaces = compute_entry_spaces(entries, self.genesis.rollup_names)
        kept = {
            c.rollup: c
            for c in compute_commitments(
                list(zip(raw, spaces, strict=True)), (), at, (PROTOCOL, rollup)
            )
        }
        sent = sum(len(e.SerializeToString()) for e in msg.entries)
        forged = replace(
            header,
            timestamp_ms=ts,
            entry_count=max(header.entry_count, at[-1] + 1 if at else 0),
            byte_count=header.byte_count - sent + sum(len(r) for r in raw),
            namespaces=tuple(kept.get(c.rollup, c) for c in header.namespaces),
        )
        block_hash = compute_block_hash(forged)
        out = codec.encode_block(
            forged, entries, block_hash, sign_block(key, self.genesis_hash, block_hash)
        )
        out.indices.extend(at)
        return out

    # ------------------------------------------------------------ the modes

    def corrupt(self, msg: pb.Block, rollup: str) -> list[pb.Block]:
        out = pb.Block()
        out.CopyFrom(msg)
        for e in out.entries:
            kind = e.WhichOneof("kind")
            if kind == "tx" and e.tx.signatures:
                s = e.tx.signatures[0]
                s.signature = flip(s.signature)
            elif kind == "bundle" and e.bundle.signatures:
                s = e.bundle.signatures[0]
                s.signature = flip(s.signature)
            elif kind == "vote" and e.vote.HasField("signature"):
                e.vote.signature.signature = flip(e.vote.signature.signature)
        return [out]

    def forge_block(self, msg: pb.Block, rollup: str) -> list[pb.Block]:
        return [self.reseal(msg, list(msg.entries), self.forger_key, rollup=rollup)]

    def forge_decision(self, msg: pb.Block, rollup: str) -> list[pb.Block]:
        """The block plus commit(B) for the first bundle it orders (no rollup can
        have voted on it yet); in a block that orders none, for the last bundle this
        stream ordered before (decided by now, or undecided without all its votes:
        either way not a commit the votes give). Blocks before the stream has shown
        any bundle pass unchanged: a node judges only the decisions of bundles it
        tracks (a leg on its rollup). Validly signed, so only the decision rule can
        catch it. The fallback is a bundle ordered below this block's height, which
        the node has applied."""
        entries = list(msg.entries)
        height = msg.header.height
        ordered = [compute_id(e.bundle.body) for e in entries if e.WhichOneof("kind") == "bundle"]
        seen = self._seen_bundles.setdefault(rollup, [])
        # Only a bundle ordered *below* this height: the node has prepared it, so it
        # judges the decision. Nodes of one rollup share this list and a node may be
        # sent a height again (after a refusal, a restart, a replica behind the
        # primary); a bundle ordered above it is one the node has not seen, and a
        # decision on a bundle a node does not track is ignored, so the forged block
        # would be applied: a second signed block at that height, which is
        # equivocation, not the bad decision this mode is for.
        earlier = [bundle_id for h, bundle_id in seen if h < height]
        bundle_id = ordered[0] if ordered else (earlier[-1] if earlier else None)
        known = {(h, b) for h, b in seen}
        fresh = [(height, b) for b in ordered if (height, b) not in known]
        seen[:] = sorted(seen + fresh)[-SEEN_BUNDLES:]
        if bundle_id is None:
            return [msg]  # no bundle to decide yet: passed on as it is
        decision = codec.encode_decision(bundle_id, True, ReasonCode.ALL_YES)
        # Stay within the block byte budget, or the node would refuse it as TOO_LARGE.
        budget = self.genesis.limits.max_block_bytes - decision.ByteSize()
        positions = list(msg.indices)
        size = msg.header.byte_count if rollup else sum(e.ByteSize() for e in entries)
        while entries and size > budget:
            size -= entries.pop().ByteSize()
            if positions:
                positions.pop()
        if not rollup:
            return [self.reseal(msg, [*entries, decision], self.sequencer_key)]
        last = max(msg.header.entry_count, (positions[-1] + 1) if positions else 0)
        return [
            self.reseal(
                msg,
                [*entries, decision],
                self.sequencer_key,
                rollup=rollup,
                positions=[*positions, last],
            )
        ]

    def equivocate(self, msg: pb.Block, rollup: str) -> list[pb.Block]:
        """The honest block, then another one for the same height, also signed by
        the sequencer key: two signed headers for one height."""
        entries = list(msg.entries)
        if entries:
            positions = list(msg.indices)[:-1] if rollup else None
            other = self.reseal(
                msg, entries[:-1], self.sequencer_key, rollup=rollup, positions=positions
            )
        else:
            other = self.reseal(
                msg, entries, self.sequencer_key, msg.header.timestamp_ms + 1, rollup=rollup
            )
        return [msg, other]
