"""Shared by the property tests: run a hypothesis test under the pytest `seed`,
and build what a log carries (sealed blocks, signed votes, decisions) the way
the sequencer and the nodes do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import hypothesis
from hypothesis import HealthCheck, Phase, settings

from xrollup.blocks import compute_decision_id
from xrollup.codec import decode_vote, encode_entry, encode_signed_vote, encode_vote_body
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair, derive_rollup_vote_key, derive_sequencer_key
from xrollup.model import Block, BundleVote, Decision, Entry, ReasonCode, Signature, Vote, VoteBody
from xrollup.numeric import Height
from xrollup.verify import seal_block, verify_block

SEQUENCER = derive_sequencer_key()


def run_seeded(
    seed: int, max_examples: int, shrink: bool = True
) -> Callable[[Callable[..., None]], None]:
    """Run a @given test under hypothesis with the pytest `seed`. `shrink=False`
    reports the first failing example as found: for long interactive histories,
    whose shrinking can outlast the test timeout."""

    def run(test: Callable[..., None]) -> None:
        phases = [p for p in Phase if shrink or p not in (Phase.shrink, Phase.explain)]
        configured = settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            print_blob=True,
            phases=phases,
            suppress_health_check=[HealthCheck.too_slow],
        )(test)
        hypothesis.seed(seed)(configured)()

    return run


def seal(height: int, parent: bytes, entries: Sequence[Entry], genesis: Genesis) -> Block:
    """The next block of these entries, sealed with the dev sequencer key and
    verified as a node verifies it."""
    genesis_hash = compute_genesis_hash(genesis)
    msg = seal_block(
        [encode_entry(e) for e in entries],
        height,
        parent,
        1_700_000_000_000 + height,
        genesis,
        genesis_hash,
        SEQUENCER,
    )
    return verify_block(msg, genesis, genesis_hash, height, parent)


def signed_vote(
    rollup: str,
    height: int,
    votes: Sequence[BundleVote],
    genesis: Genesis,
    key: Keypair | None = None,
    genesis_hash: bytes | None = None,
) -> Vote:
    """A vote entry of `rollup`, signed with its dev vote key (or `key`), bound
    to `genesis` (or `genesis_hash`)."""
    body = VoteBody(
        genesis.chain_id,
        rollup,
        Height(height),
        tuple(votes),
        compute_genesis_hash(genesis) if genesis_hash is None else genesis_hash,
    )
    raw = encode_vote_body(body)
    signer = key or derive_rollup_vote_key(rollup)
    return decode_vote(encode_signed_vote(raw, Signature(signer.public_key, signer.sign(raw))))


def decision(bundle_id: bytes, commit: bool, code: ReasonCode) -> Decision:
    return Decision(compute_decision_id(bundle_id, commit, code), bundle_id, commit, code)
