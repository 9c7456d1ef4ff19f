"""Signed protocol entries as domain objects, shared by the unit and property
tests (tests/ is on sys.path through tests/conftest.py): votes signed with the
dev vote keys and bound to a genesis, and decisions."""

from __future__ import annotations

from collections.abc import Sequence

from xrollup.blocks import compute_decision_id
from xrollup.codec import decode_vote, encode_signed_vote, encode_vote_body
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import Keypair, derive_rollup_vote_key
from xrollup.model import BundleVote, Decision, ReasonCode, Signature, Vote, VoteBody
from xrollup.numeric import Height


def signed_vote(
    rollup: str,
    height: int,
    votes: Sequence[BundleVote],
    genesis: Genesis,
    key: Keypair | None = None,
    genesis_hash: bytes | None = None,
    chain_id: str | None = None,
) -> Vote:
    """A logged vote entry of `rollup` on bundles it prepared in block `height`,
    signed with its dev vote key (or `key`), bound to `genesis` (or to
    `genesis_hash` / `chain_id`, to forge one that must not count)."""
    body = VoteBody(
        genesis.chain_id if chain_id is None else chain_id,
        rollup,
        Height(height),
        tuple(votes),
        compute_genesis_hash(genesis) if genesis_hash is None else genesis_hash,
    )
    raw = encode_vote_body(body)
    signer = key or derive_rollup_vote_key(rollup)
    return decode_vote(encode_signed_vote(raw, Signature(signer.public_key, signer.sign(raw))))


def decision(bundle_id: bytes, commit: bool, code: ReasonCode | None = None) -> Decision:
    """A logged decision; the code defaults to what the rule gives for `commit`
    (ALL_YES, VOTED_NO)."""
    if code is None:
        code = ReasonCode.ALL_YES if commit else ReasonCode.VOTED_NO
    return Decision(compute_decision_id(bundle_id, commit, code), bundle_id, commit, code)
