"""The decision rule on a node: every bundle in the log with a leg on the node's
rollup is tracked in state (b"opn:" with a deadline index b"ddl:") with the votes
counted for it, so each node derives the decision of every bundle it takes part
in itself (xrollup/decisions.py) and checks each logged one against it. Nothing
here trusts the sequencer's decisions. A node's state depends only on its
rollup's namespace and the protocol namespace, so a node following a stream
filtered to its rollup reaches the same state as one following the whole log;
the decisions of other rollups' bundles are their nodes' (and `devnet check`'s)
to judge."""

from __future__ import annotations

import json
import struct

from rollup_node.core.state import BUNDLE, DEADLINE, OPEN, State, deadline_key, encode_record
from xrollup.decisions import (
    DecisionSpec,
    OpenBundle,
    compute_decision,
    open_bundle,
    record_vote,
    validate_decision,
)
from xrollup.model import Bundle, BundleVote, Decision, ReasonCode


def encode_open(b: OpenBundle) -> bytes:
    return encode_record(
        {
            "rollups": list(b.rollups),
            "height": b.height,
            "deadline": b.deadline,
            "votes": [[r, yes, int(code)] for r, yes, code in b.votes],
        }
    )


def decode_open(bundle_id: bytes, raw: bytes) -> OpenBundle:
    d = json.loads(raw)
    return OpenBundle(
        bundle_id,
        tuple(d["rollups"]),
        int(d["height"]),
        int(d["deadline"]),
        tuple((str(r), bool(yes), ReasonCode(code)) for r, yes, code in d["votes"]),
    )


def get_open(state: State, bundle_id: bytes) -> OpenBundle | None:
    raw = state.get(OPEN + bundle_id)
    return None if raw is None else decode_open(bundle_id, raw)


def _save_open(state: State, b: OpenBundle) -> None:
    state.put(OPEN + b.id, encode_open(b))


def observe_bundle(state: State, bundle: Bundle, height: int, deadline_blocks: int) -> None:
    """Track a bundle the log orders (the first time its id is ordered)."""
    if state.get(OPEN + bundle.id) is not None:
        return
    b = open_bundle(bundle.id, bundle.rollups, height, deadline_blocks)
    _save_open(state, b)
    state.put(deadline_key(b.deadline, b.id), b"")


def observe_votes(state: State, rollup: str, votes: tuple[BundleVote, ...]) -> list[bytes]:
    """Count a rollup's (verified) votes; the ids of the bundles that changed."""
    changed = []
    for v in votes:
        b = get_open(state, v.bundle_id)
        if b is not None and (counted := record_vote(b, rollup, v)) is not None:
            _save_open(state, counted)
            changed.append(b.id)
    return changed


def concerns_open(state: State, votes: tuple[BundleVote, ...]) -> bool:
    """Whether any of these votes is on a bundle tracked here (open)."""
    return any(state.get(OPEN + v.bundle_id) is not None for v in votes)


def is_tracked(state: State, bundle_id: bytes) -> bool:
    """Whether a logged decision on `bundle_id` is this node's to check: the
    bundle is open here, or was prepared here (then a second decision is refused).
    Once retention has pruned the finished record (limits.record_retention_blocks
    after its decision, rollup_node/core/retention.py), a second decision is
    ignored instead, as every node prunes at the same height."""
    return state.get(OPEN + bundle_id) is not None or state.get(BUNDLE + bundle_id) is not None


def close(state: State, b: OpenBundle) -> None:
    state.delete(OPEN + b.id)
    state.delete(deadline_key(b.deadline, b.id))


def accept_decision(state: State, decision: Decision, height: int) -> None:
    """A logged decision: raises BlockRefused unless it is the one the votes give."""
    b = get_open(state, decision.bundle_id)
    validate_decision(b, decision, height)
    assert b is not None
    close(state, b)


def derive_decisions(state: State, touched: list[bytes], height: int) -> list[DecisionSpec]:
    """At the end of block `height`: the decisions due for bundles whose votes
    changed in it and for bundles whose deadline has come, closing them; in
    (bundle height, id) order, the same on every node."""
    candidates: dict[bytes, OpenBundle] = {}
    for bundle_id in touched:
        b = get_open(state, bundle_id)
        if b is not None:
            candidates[bundle_id] = b
    stop = DEADLINE + struct.pack(">Q", height + 1)
    for key, _ in state.iterate_base(DEADLINE, stop):
        bundle_id = key[len(DEADLINE) + 8 :]
        if bundle_id not in candidates and (b := get_open(state, bundle_id)) is not None:
            candidates[bundle_id] = b
    out = []
    for b in sorted(candidates.values(), key=lambda x: (x.height, x.id)):
        spec = compute_decision(b, height)
        if spec is not None:
            close(state, b)
            out.append(spec)
    return out
