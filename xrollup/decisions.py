"""The decision rule of the bundle protocol: a pure function of the ordered log,
which the sequencer, every node and the checker apply alike. The sequencer
coordinates; it is not trusted for atomicity.

For a bundle B ordered at height h, touching rollups R:
- a vote counts when it is signed by the rollup's genesis vote key, bound to
  this chain's genesis hash and to B's height h, on a rollup in R, and is that
  rollup's first vote on B;
- commit(B) once every rollup in R has a counted yes;
- abort(B) as soon as a rollup in R has a counted no;
- abort(B) at the deadline h + K (genesis `limits.bundle_deadline_blocks`) when a
  vote is still missing.

Decisions are evaluated at the end of each block, after its entries (votes first),
in the order bundles were ordered: that is when the sequencer appends them and
when a node derives them itself. A logged decision must be the one the rule gives
at its place in the log; anything else (a commit with a no or a missing vote, a
decision before its bundle, a second decision) is refused with the whole block."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from xrollup.blocks import BlockRefused, RefusalCode
from xrollup.checks import validate_vote
from xrollup.errors import XrollupError
from xrollup.genesis import Genesis
from xrollup.model import BundleVote, Decision, ReasonCode, Vote


@dataclass(frozen=True, slots=True)
class DecisionSpec:
    bundle_id: bytes
    commit: bool
    code: ReasonCode


@dataclass(frozen=True, slots=True)
class OpenBundle:
    """An ordered, undecided bundle and the votes counted so far (first per rollup)."""

    id: bytes
    rollups: tuple[str, ...]  # sorted
    height: int
    deadline: int
    votes: tuple[tuple[str, bool, ReasonCode], ...] = ()  # (rollup, yes, code), sorted

    def vote_of(self, rollup: str) -> tuple[bool, ReasonCode] | None:
        for r, yes, code in self.votes:
            if r == rollup:
                return yes, code
        return None


def open_bundle(
    bundle_id: bytes, rollups: Iterable[str], height: int, deadline_blocks: int
) -> OpenBundle:
    return OpenBundle(bundle_id, tuple(sorted(set(rollups))), height, height + deadline_blocks)


def record_vote(b: OpenBundle, rollup: str, vote: BundleVote) -> OpenBundle | None:
    """B with this vote counted, or None when it does not count (not one of B's
    rollups, bound to another height, or a second vote)."""
    if rollup not in b.rollups or vote.bundle_height != b.height or b.vote_of(rollup):
        return None
    votes = tuple(sorted((*b.votes, (rollup, vote.yes, vote.code))))
    return replace(b, votes=votes)


def compute_decision(b: OpenBundle, height: int) -> DecisionSpec | None:
    """The rule at the end of block `height`; None while B stays undecided."""
    if any(not yes for _, yes, _ in b.votes):
        return DecisionSpec(b.id, False, ReasonCode.VOTED_NO)
    if len(b.votes) == len(b.rollups):
        return DecisionSpec(b.id, True, ReasonCode.ALL_YES)
    if height >= b.deadline:
        return DecisionSpec(b.id, False, ReasonCode.DEADLINE)
    return None


def validate_decision(b: OpenBundle | None, decision: Decision, height: int) -> None:
    """A logged decision is the one the votes give at its place in block `height`.
    Raises BlockRefused (BAD_DECISION) otherwise."""
    what = f"decision {'commit' if decision.commit else 'abort'}({decision.bundle_id.hex()[:16]})"
    if b is None:
        raise BlockRefused(
            RefusalCode.BAD_DECISION,
            height,
            f"{what}: no undecided bundle with that id (a decision before its bundle,"
            " for a bundle never ordered, or a second decision)",
        )
    due = compute_decision(b, height)
    if due is None:
        missing = ", ".join(r for r in b.rollups if b.vote_of(r) is None)
        raise BlockRefused(
            RefusalCode.BAD_DECISION,
            height,
            f"{what}: no vote yet from {missing} and the deadline {b.deadline} has not passed",
        )
    if (due.commit, due.code) != (decision.commit, decision.code):
        raise BlockRefused(
            RefusalCode.BAD_DECISION,
            height,
            f"{what} ({decision.code.name}) contradicts the logged votes, which give"
            f" {'commit' if due.commit else 'abort'} ({due.code.name})",
        )


def is_counted_vote(vote: Vote, genesis: Genesis) -> bool:
    """A logged vote counts only when it passes the checks admission applies to
    it (checks.validate_vote): for this chain (chain id and genesis hash), within
    the body limit, and signed by the genesis vote key of the rollup it speaks for."""
    try:
        validate_vote(vote, genesis)
    except XrollupError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class BundleMeta:
    """What the sequencer's tracker needs of an admitted bundle."""

    rollups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VoteMeta:
    """What the sequencer's tracker needs of an admitted (already verified) vote."""

    rollup: str
    votes: tuple[BundleVote, ...]


EntryMeta = BundleMeta | VoteMeta


class BundleTracker:
    """The rule over an in-memory table of open bundles, in log order: the
    sequencer decides with it, the checker replays the log through it."""

    def __init__(self, deadline_blocks: int) -> None:
        assert deadline_blocks > 0
        self.deadline_blocks = deadline_blocks
        self.open: dict[bytes, OpenBundle] = {}  # in log order

    def observe_bundle(self, bundle_id: bytes, rollups: Sequence[str], height: int) -> None:
        if bundle_id not in self.open:
            self.open[bundle_id] = open_bundle(bundle_id, rollups, height, self.deadline_blocks)

    def observe_vote(self, rollup: str, votes: Iterable[BundleVote]) -> None:
        """Count a rollup's (verified) votes; those that do not count are ignored."""
        for v in votes:
            b = self.open.get(v.bundle_id)
            if b is not None and (counted := record_vote(b, rollup, v)) is not None:
                self.open[v.bundle_id] = counted

    def observe_decision(self, decision: Decision, height: int) -> None:
        """Apply a logged decision; raises BlockRefused when it contradicts the votes."""
        validate_decision(self.open.get(decision.bundle_id), decision, height)
        del self.open[decision.bundle_id]

    def decide(self, height: int) -> list[DecisionSpec]:
        """The decisions due at the end of block `height`, removing those bundles."""
        out: list[DecisionSpec] = []
        for b in list(self.open.values()):
            spec = compute_decision(b, height)
            if spec is not None:
                out.append(spec)
                del self.open[b.id]
        return out
