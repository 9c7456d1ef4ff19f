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
|                | of this very block, or an id never ordered)              |                |
| equivocate     | the honest block h, then a second block h signed with    | EQUIVOCATION   |
|                | the dev sequencer key (one entry dropped, or a later     | (evidence kept,|
|                | timestamp when the block is empty)                       | node halts)    |

Blocks with nothing to corrupt (no signed entry) pass unchanged under
`corrupt`. forge-decision and equivocate sign as the sequencer, so they need
the dev sequencer key (xrollup.keys.derive_sequencer_key) to be the key genesis
names; `require_signing_key` says so before a mode is turned on."""

from __future__ import annotations

from collections.abc import Callable

import blake3

from xrollup import codec
from xrollup.blocks import compute_id
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair, derive_keypair, derive_sequencer_key
from xrollup.model import ReasonCode
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block

CORRUPT = "corrupt"
FORGE_BLOCK = "forge-block"
FORGE_DECISION = "forge-decision"
EQUIVOCATE = "equivocate"
MODES = (CORRUPT, FORGE_BLOCK, FORGE_DECISION, EQUIVOCATE)
SIGNING_MODES = (FORGE_DECISION, EQUIVOCATE)  # they sign as the genesis sequencer key
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
        self._modes: dict[str, Callable[[pb.Block], list[pb.Block]]] = {
            CORRUPT: self.corrupt,
            FORGE_BLOCK: self.forge_block,
            FORGE_DECISION: self.forge_decision,
            EQUIVOCATE: self.equivocate,
        }

    def apply(self, mode: str, msg: pb.Block) -> list[pb.Block]:
        return self._modes[check_mode(mode)](msg)

    def apply_bytes(self, mode: str, raw: bytes) -> list[bytes]:
        """As apply, on a block's wire bytes (what the proxy relays)."""
        return [b.SerializeToString() for b in self.apply(mode, pb.Block.FromString(raw))]

    def reseal(
        self,
        msg: pb.Block,
        entries: list[pb.Entry],
        key: Keypair,
        timestamp_ms: int | None = None,
    ) -> pb.Block:
        """A block at msg's height and parent with these entries, signed by `key`."""
        h = msg.header
        return seal_block(
            entries,
            h.height,
            bytes(h.parent_hash),
            h.timestamp_ms if timestamp_ms is None else timestamp_ms,
            self.genesis,
            self.genesis_hash,
            key,
        )

    # ------------------------------------------------------------ the modes

    def corrupt(self, msg: pb.Block) -> list[pb.Block]:
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

    def forge_block(self, msg: pb.Block) -> list[pb.Block]:
        return [self.reseal(msg, list(msg.entries), self.forger_key)]

    def forge_decision(self, msg: pb.Block) -> list[pb.Block]:
        """The block plus commit(B) for the first bundle it orders (no rollup can
        have voted on it yet), or for an id never ordered when it orders none;
        validly signed, so only the decision rule can catch it."""
        entries = list(msg.entries)
        bundle_id = next(
            (compute_id(e.bundle.body) for e in entries if e.WhichOneof("kind") == "bundle"),
            None,
        )
        if bundle_id is None:  # an id never ordered, the same for each retry of this block
            bundle_id = blake3.blake3(b"xrollup/forged-decision" + bytes(msg.hash)).digest()
        decision = codec.encode_decision(bundle_id, True, ReasonCode.ALL_YES)
        # Stay within the block byte budget, or the node would refuse it as TOO_LARGE.
        budget = self.genesis.limits.max_block_bytes - decision.ByteSize()
        size = sum(e.ByteSize() for e in entries)
        while entries and size > budget:
            size -= entries.pop().ByteSize()
        return [self.reseal(msg, [*entries, decision], self.sequencer_key)]

    def equivocate(self, msg: pb.Block) -> list[pb.Block]:
        """The honest block, then another one for the same height, also signed by
        the sequencer key: two signed headers for one height."""
        entries = list(msg.entries)
        if entries:
            other = self.reseal(msg, entries[:-1], self.sequencer_key)
        else:
            other = self.reseal(msg, entries, self.sequencer_key, msg.header.timestamp_ms + 1)
        return [msg, other]
