"""apply_genesis and apply_block: the rollup's state transition. The state after
a block depends only on the state before it, the block and genesis.

Per transaction of this rollup, in block order: immutable checks again
(signatures, known assets, limits), then expiry against the block height, then
replay (an id executes at most once), then the action. A transaction that fails
gets a failed receipt with its reason and changes nothing but its seen-marker."""

from __future__ import annotations

from dataclasses import dataclass

from rollup_node.core import bank, bundles, collateral, oracle, protocol, retention
from rollup_node.core.bundles import BundleRecord
from rollup_node.core.state import (
    EXPIRY,
    State,
    StateReader,
    encode_u64,
    expiry_key,
    seen_key,
)
from xrollup import checks
from xrollup.decisions import is_counted_vote
from xrollup.errors import BadSignature, Expired, Refused, WrongSigners, XrollupError
from xrollup.genesis import Genesis
from xrollup.keys import Address
from xrollup.model import (
    Action,
    Block,
    Bundle,
    BundleVote,
    Decision,
    Malformed,
    PriceUpdate,
    ReclaimLien,
    Transfer,
    Tx,
    Vote,
)
from xrollup.numeric import Amount, Height


@dataclass(frozen=True, slots=True)
class Receipt:
    id: bytes
    height: int
    index: int
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    height: int
    receipts: tuple[Receipt, ...]
    writes: dict[bytes, bytes | None]
    votes: tuple[BundleVote, ...] = ()  # this rollup's votes on bundles prepared here
    finished: tuple[BundleRecord, ...] = ()  # bundles this block's decisions finished here


class Replay(Refused):
    """The id was executed before."""


def apply_genesis(base: StateReader, genesis: Genesis, rollup: str) -> BlockOutcome:
    """Height 0: the genesis allocations of this rollup."""
    state = State(base)
    for a in genesis.allocations:
        if a.rollup == rollup and a.amount > 0:
            bank.mint(state, a.address, a.asset, Amount(a.amount))
    return BlockOutcome(0, (), state.writes)


def apply_block(
    base: StateReader, block: Block, rollup: str, genesis: Genesis, verify_signatures: bool = True
) -> BlockOutcome:
    """The state transition of one verified block (xrollup/verify.py). Raises
    BlockRefused, with nothing applied, when a logged decision contradicts the
    logged votes (xrollup/decisions.py)."""
    state = State(base)
    height = block.height
    deadline_blocks = genesis.limits.bundle_deadline_blocks
    prune_seen(state, height)
    retention.prune_records(state, height, genesis.limits)
    receipts: list[Receipt] = []
    votes: list[BundleVote] = []
    finished: list[BundleRecord] = []
    touched: list[bytes] = []
    for index, entry in zip(block.positions(), block.entries, strict=True):
        if isinstance(entry, Tx):
            if entry.body.rollup == rollup:
                receipt = apply_tx(state, entry, height, index, genesis, verify_signatures)
                if receipt is not None:
                    receipts.append(receipt)
        elif isinstance(entry, Bundle):
            if rollup in entry.rollups:  # a node tracks the bundles with a leg on its rollup
                protocol.observe_bundle(state, entry, height, deadline_blocks)
            prepared = bundles.prepare_bundle(
                state, entry, rollup, height, genesis, verify_signatures
            )
            if prepared is not None:
                if bundles.get_record(state, entry.id) is not None:
                    mark_seen(state, entry.id, entry.body.expiry_height)
                votes.append(prepared.vote)
                receipts.append(Receipt(entry.id, height, index, prepared.vote.yes, prepared.text))
        elif isinstance(entry, Vote):
            # Only votes on bundles tracked here count (the signature is checked then).
            if protocol.concerns_open(state, entry.body.votes) and is_counted_vote(entry, genesis):
                touched += protocol.observe_votes(state, entry.body.rollup, entry.body.votes)
        elif isinstance(entry, Decision):
            if not protocol.is_tracked(state, entry.bundle_id):
                continue  # no leg here: the nodes of its rollups judge it
            protocol.accept_decision(state, entry, height)
            record = bundles.finish_bundle(state, entry.bundle_id, entry.commit, entry.code, height)
            if record is not None:
                finished.append(record)
        elif isinstance(entry, Malformed):
            receipts.append(
                Receipt(entry.id, height, index, False, f"malformed entry: {entry.reason}")
            )
    # Decisions the log did not carry (a sequencer that omits them): every node
    # derives them itself, deadline aborts included.
    for spec in protocol.derive_decisions(state, touched, height):
        record = bundles.finish_bundle(state, spec.bundle_id, spec.commit, spec.code, height)
        if record is not None:
            finished.append(record)
    retention.schedule_finished(state, height, genesis.limits)
    return BlockOutcome(height, tuple(receipts), state.writes, tuple(votes), tuple(finished))


def apply_tx(
    state: State,
    tx: Tx,
    height: Height,
    index: int,
    genesis: Genesis,
    verify_signatures: bool = True,
) -> Receipt | None:
    """Execute one transaction; None when its id was executed before (the first
    receipt stands)."""
    if state.get(seen_key(tx.id)) is not None:
        return None
    if tx.body.expiry_height < height:
        reason = f"expired at height {int(tx.body.expiry_height)}, executed at {int(height)}"
        return Receipt(tx.id, height, index, False, str(Expired(reason)))
    try:
        if verify_signatures:
            checks.validate_tx(tx, genesis)
    except (BadSignature, WrongSigners) as e:
        # The id covers the body, not the signatures: a forged copy must not
        # burn the id of the genuine transaction, so nothing is marked.
        return Receipt(tx.id, height, index, False, str(e))
    except XrollupError as e:
        mark_seen(state, tx.id, tx.body.expiry_height)
        return Receipt(tx.id, height, index, False, str(e))
    state.begin()
    try:
        apply_action(state, tx.body.sender, tx.body.action, height, genesis)
    except XrollupError as e:
        state.rollback()
        mark_seen(state, tx.id, tx.body.expiry_height)
        return Receipt(tx.id, height, index, False, str(e))
    state.commit()
    mark_seen(state, tx.id, tx.body.expiry_height)
    return Receipt(tx.id, height, index, True)


def apply_action(
    state: State, sender: Address, action: Action, height: Height, genesis: Genesis
) -> None:
    if isinstance(action, Transfer):
        bank.apply_transfer(state, sender, action)
    elif isinstance(action, PriceUpdate):
        oracle.apply_price_update(state, action, height)
    elif isinstance(action, ReclaimLien):
        collateral.apply_reclaim(
            state, sender, action.lien_id, int(height), genesis.limits.lien_grace_blocks
        )
    else:
        raise Refused(f"{type(action).__name__} is only valid as a leg of a bundle")


def mark_seen(state: State, entry_id: bytes, expiry_height: int) -> None:
    state.put(seen_key(entry_id), encode_u64(expiry_height))
    state.put(expiry_key(expiry_height, entry_id), b"")


def prune_seen(state: State, height: int) -> None:
    """Forget ids whose expiry height is below `height`: they can never execute
    again (expiry is checked first), so the seen-set stays bounded."""
    stop = expiry_key(height, b"")
    for key, _ in state.iterate_base(EXPIRY, stop):
        entry_id = key[len(EXPIRY) + 8 :]
        state.delete(key)
        state.delete(seen_key(entry_id))
