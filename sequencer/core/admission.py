"""Admission: the immutable checks a submission must pass before it may wait for
a block. Pure: it reads genesis and the next height, and returns the decoded
entry or raises a domain error saying what was wrong."""

from __future__ import annotations

from collections.abc import Iterable

from xrollup import checks, codec
from xrollup.errors import XrollupError
from xrollup.genesis import Genesis
from xrollup.model import Bundle, Tx, Vote
from xrollup.v1 import types_pb2 as pb


def admit_tx(msg: pb.SignedTx, genesis: Genesis, next_height: int) -> Tx:
    checks.validate_body_size(msg.body, genesis, "tx")  # before parsing it
    tx = codec.decode_tx(msg)
    checks.validate_expiry(tx.body.expiry_height, next_height, genesis, "tx")
    checks.validate_tx(tx, genesis)
    return tx


# (id, expiry height, rollup, carries nothing but its fields), or why it was refused
Admitted = tuple[bytes, int, str, bool] | XrollupError


def admit_each(msgs: Iterable[pb.SignedTx], genesis: Genesis, next_height: int) -> list[Admitted]:
    """Admit each transaction of a batch on its own: one refusal stops no other.
    Each admitted one also says whether it is already canonical (no unknown
    field), so the event loop re-encodes only those that are not (the check
    runs here, in the worker processes)."""
    out: list[Admitted] = []
    for msg in msgs:
        try:
            tx = admit_tx(msg, genesis, next_height)
            canonical = codec.strip_unknown_fields(msg)  # in place: the caller's copy only
            out.append((tx.id, tx.body.expiry_height, tx.body.rollup, canonical))
        except XrollupError as e:
            out.append(e)
    return out


def admit_bundle(msg: pb.SignedBundle, genesis: Genesis, next_height: int) -> Bundle:
    checks.validate_body_size(msg.body, genesis, "bundle")
    bundle = codec.decode_bundle(msg, max_legs=genesis.limits.max_legs)
    checks.validate_expiry(bundle.body.expiry_height, next_height, genesis, "bundle")
    checks.validate_bundle(bundle, genesis)
    return bundle


def admit_vote(msg: pb.SignedVote, genesis: Genesis) -> Vote:
    checks.validate_body_size(msg.body, genesis, "vote")
    vote = codec.decode_vote(msg)
    checks.validate_vote(vote, genesis)
    return vote
