"""Helpers the rollup state-machine unit tests share: dev genesis, signed
transactions as domain objects, signed votes and decisions, blocks sealed with
the dev sequencer key, and a small chain that applies blocks to a MemoryState
the way the node does (incremental accumulator) while checking it against the
accumulator computed from scratch."""

from __future__ import annotations

from collections.abc import Sequence

import blocksupport
import pytest
from blocksupport import decision

from rollup_node.core import bank
from rollup_node.core.execute import BlockOutcome, apply_block, apply_genesis
from rollup_node.core.root import (
    compute_accumulator,
    compute_state_root,
    update_accumulator,
)
from rollup_node.core.state import OPEN, MemoryState, State, encode_u64, expiry_key, seen_key
from rollup_node.core.supply import compute_supply
from xrollup.blocks import GENESIS_PARENT, BlockRefused
from xrollup.client import build_transfer, build_tx
from xrollup.codec import (
    decode_tx,
    encode_entry,
)
from xrollup.genesis import Genesis, compute_genesis_hash, dev_genesis
from xrollup.keys import (
    Address,
    Keypair,
    derive_dev_account,
    derive_oracle_key,
    derive_sequencer_key,
)
from xrollup.model import (
    Block,
    BundleVote,
    Entry,
    PriceUpdate,
    ReasonCode,
    Tx,
    Vote,
)
from xrollup.numeric import Amount
from xrollup.v1 import types_pb2 as pb
from xrollup.verify import seal_block, verify_block

GENESIS = dev_genesis()
GENESIS_HASH = compute_genesis_hash(GENESIS)
ALICE, BOB, CAROL, DAVE = (derive_dev_account(i) for i in range(4))
ORACLE = derive_oracle_key()
USDC_GENESIS = 1_000_000 * 10**6  # per dev account per rollup
ETH_GENESIS = 1_000 * 10**9


def transfer(
    signer: Keypair,
    to: Address,
    asset: str,
    amount: int,
    expiry: int = 100,
    nonce: int = 1,
    rollup: str = "alpha",
) -> Tx:
    """A signed transfer, decoded at the edge as the node receives it."""
    return decode_tx(build_transfer(signer, rollup, to, asset, amount, expiry, nonce=nonce))


def price_update(
    signer: Keypair,
    base: str,
    quote: str,
    price: int,
    expiry: int = 100,
    nonce: int = 1,
    rollup: str = "alpha",
) -> Tx:
    action = PriceUpdate(base, quote, Amount(price))
    return decode_tx(build_tx(signer, rollup, action, expiry, nonce=nonce))


def signed_vote(
    rollup: str,
    height: int,
    votes: Sequence[BundleVote],
    key: Keypair | None = None,
    genesis: Genesis = GENESIS,
    genesis_hash: bytes | None = None,
    chain_id: str | None = None,
) -> Vote:
    """blocksupport.signed_vote with the dev genesis by default."""
    return blocksupport.signed_vote(rollup, height, votes, genesis, key, genesis_hash, chain_id)


def make_block(
    height: int,
    entries: Sequence[Entry | pb.Entry],
    parent: bytes = GENESIS_PARENT,
    timestamp_ms: int = 0,
    genesis: Genesis = GENESIS,
) -> Block:
    """A block of these entries (domain entries, or wire entries as they are,
    such as one that does not decode), committed and signed with the dev
    sequencer key, and decoded as a node decodes it after verify_block."""
    ts = timestamp_ms or 1_700_000_000_000 + height
    wire = [e if isinstance(e, pb.Entry) else encode_entry(e) for e in entries]
    genesis_hash = compute_genesis_hash(genesis)
    msg = seal_block(wire, height, parent, ts, genesis, genesis_hash, derive_sequencer_key())
    block = verify_block(msg, genesis, genesis_hash, height, parent)
    assert all(
        isinstance(e, pb.Entry) or b == e for e, b in zip(entries, block.entries, strict=True)
    )
    return block


def seen_marker(tx: Tx) -> dict[bytes, bytes | None]:
    """The only writes a failed (but not expired) transaction may leave."""
    expiry = int(tx.body.expiry_height)
    return {seen_key(tx.id): encode_u64(expiry), expiry_key(expiry, tx.id): b""}


def balance(state: MemoryState | State, who: Keypair | Address, asset: str) -> int:
    address = who.address if isinstance(who, Keypair) else who
    reader = state if isinstance(state, State) else State(state)
    return int(bank.get_balance(reader, address, asset))


def genesis_state(rollup: str = "alpha", genesis: Genesis = GENESIS) -> MemoryState:
    state = MemoryState()
    state.apply(apply_genesis(state, genesis, rollup).writes)
    return state


class Chain:
    """One rollup's state over a sequence of blocks, as a node keeps it: each
    block's writes fold into the accumulator incrementally. Every step also
    checks the incremental accumulator against one computed from all items."""

    def __init__(
        self, rollup: str = "alpha", genesis: Genesis = GENESIS, verify_signatures: bool = True
    ) -> None:
        self.rollup = rollup
        self.genesis = genesis
        self.verify_signatures = verify_signatures
        self.state = MemoryState()
        self.acc = 0
        self.parent = GENESIS_PARENT
        self.roots: list[bytes] = []
        self._commit(apply_genesis(self.state, genesis, rollup))

    @property
    def height(self) -> int:
        return len(self.roots) - 1

    @property
    def root(self) -> bytes:
        return self.roots[-1]

    def _commit(self, outcome: BlockOutcome) -> None:
        changes = [(k, self.state.get(k), v) for k, v in outcome.writes.items()]
        self.acc = update_accumulator(self.acc, changes)
        self.state.apply(outcome.writes)
        assert self.acc == compute_accumulator(self.state.items.items()), (
            f"incremental accumulator diverged at height {outcome.height}"
        )
        self.roots.append(compute_state_root(self.acc))

    def next_block(self, entries: Sequence[Entry | pb.Entry]) -> Block:
        return make_block(self.height + 1, entries, self.parent, genesis=self.genesis)

    def apply(self, entries: Sequence[Entry | pb.Entry]) -> BlockOutcome:
        """Apply the next block carrying `entries`."""
        return self.apply_block(self.next_block(entries))

    def apply_block(self, block: Block) -> BlockOutcome:
        assert block.height == self.height + 1
        outcome = apply_block(self.state, block, self.rollup, self.genesis, self.verify_signatures)
        self._commit(outcome)
        self.parent = block.hash
        return outcome

    def balance(self, who: Keypair | Address, asset: str) -> int:
        return balance(self.state, who, asset)


def vote_entries(rollup: str, outcome: BlockOutcome, genesis: Genesis = GENESIS) -> list[Vote]:
    """The signed vote entries a node of `rollup` sends for the bundles it
    prepared in this block, split as the node splits them (compute_vote_chunks)."""
    from rollup_node.follower import compute_vote_chunks  # the node's shell: imports grpc

    if not outcome.votes:
        return []
    chunks = compute_vote_chunks(
        genesis.chain_id,
        rollup,
        outcome.height,
        outcome.votes,
        genesis.limits.max_body_bytes,
        compute_genesis_hash(genesis),
    )
    return [signed_vote(rollup, int(c.height), c.votes, genesis=genesis) for c in chunks]


class Pair:
    """alpha and beta applying the same blocks, as two nodes do; supply is
    checked on both after each block (compute_supply: balances + escrows + liens
    equal what genesis minted). The votes each rollup gives on a bundle are kept,
    signed with its dev vote key, for the block that decides it."""

    def __init__(self, genesis: Genesis = GENESIS) -> None:
        self.genesis = genesis
        self.alpha, self.beta = Chain("alpha", genesis), Chain("beta", genesis)
        self.votes: dict[bytes, list[Vote]] = {}

    @property
    def height(self) -> int:
        return self.alpha.height

    def apply(self, *entries: Entry) -> tuple[BlockOutcome, BlockOutcome]:
        block = self.alpha.next_block(entries)
        out = self.alpha.apply_block(block), self.beta.apply_block(block)
        for rollup, o in zip(("alpha", "beta"), out, strict=True):
            for v in o.votes:
                vote = signed_vote(rollup, o.height, (v,), genesis=self.genesis)
                self.votes.setdefault(v.bundle_id, []).append(vote)
        self.check()
        return out

    def check(self) -> None:
        for chain in (self.alpha, self.beta):
            for a in compute_supply(chain.state.items.items()).assets.values():
                assert a.conserved, f"{chain.rollup}: {a} is not conserved"

    def vote_entries(self, bundle_id: bytes) -> list[Vote]:
        """The rollups' signed votes on this bundle not logged yet (and now taken)."""
        return self.votes.pop(bundle_id, [])

    def decide(
        self, bundle_id: bytes, commit: bool, code: ReasonCode | None = None
    ) -> tuple[BlockOutcome, BlockOutcome]:
        """The block an honest sequencer logs: every rollup's vote on the bundle,
        then the decision. The bundle is no longer tracked on either rollup."""
        out = self.apply(*self.vote_entries(bundle_id), decision(bundle_id, commit, code))
        for chain in (self.alpha, self.beta):
            assert OPEN + bundle_id not in chain.state.items
        return out

    def refuse(
        self, *entries: Entry, rollups: Sequence[str] = ("alpha", "beta")
    ) -> list[BlockRefused]:
        """The rollups named refuse the next block carrying `entries`: apply_block
        raises and they apply nothing of it. The refusals."""
        block = self.alpha.next_block(entries)
        refusals = []
        for chain in (self.alpha, self.beta):
            if chain.rollup not in rollups:
                continue
            before, height = dict(chain.state.items), chain.height
            with pytest.raises(BlockRefused) as err:
                chain.apply_block(block)
            assert (chain.state.items, chain.height) == (before, height)
            refusals.append(err.value)
        return refusals

    def skip_to(self, height: int) -> None:
        """Apply empty blocks until the next block is at `height`."""
        while self.height < height - 1:
            self.apply()
