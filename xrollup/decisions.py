"""The sequencer's side of the bundle protocol: it watches bundles and votes as
they are ordered and decides each bundle in the ordered log.

- commit(B) once every rollup B touches has voted yes;
- abort(B) as soon as any of them votes no;
- abort(B) at the deadline height (B's height + deadline blocks) when a vote is
  still missing.

Only votes that passed admission (signed by the rollup's genesis vote key) reach
the tracker; the first vote per (bundle, rollup) counts and later ones are
ignored. Decisions for a block are computed from the entries ordered before
them, in bundle order, so anyone replaying the log reaches the same decisions
(the checker does)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DecisionSpec:
    bundle_id: bytes
    commit: bool
    reason: str


@dataclass
class OpenBundle:
    id: bytes
    rollups: tuple[str, ...]
    height: int
    deadline: int
    votes: dict[str, tuple[bool, str]] = field(default_factory=dict)


class BundleTracker:
    def __init__(self, deadline_blocks: int) -> None:
        assert deadline_blocks > 0
        self.deadline_blocks = deadline_blocks
        self.open: dict[bytes, OpenBundle] = {}  # in log order

    def observe_bundle(self, bundle_id: bytes, rollups: tuple[str, ...], height: int) -> None:
        if bundle_id not in self.open:
            self.open[bundle_id] = OpenBundle(
                bundle_id, tuple(sorted(set(rollups))), height, height + self.deadline_blocks
            )

    def observe_vote(self, rollup: str, votes: list[tuple[bytes, bool, str]]) -> None:
        """Record a rollup's votes; votes on bundles not open or not touching
        `rollup`, and second votes, are ignored."""
        for bundle_id, yes, reason in votes:
            b = self.open.get(bundle_id)
            if b is not None and rollup in b.rollups and rollup not in b.votes:
                b.votes[rollup] = (yes, reason)

    def observe_decision(self, bundle_id: bytes) -> None:
        self.open.pop(bundle_id, None)

    def decide(self, height: int) -> list[DecisionSpec]:
        """Decisions to append to block `height`, removing those bundles."""
        out: list[DecisionSpec] = []
        for b in list(self.open.values()):
            spec = compute_decision(b, height)
            if spec is not None:
                out.append(spec)
                del self.open[b.id]
        return out


def compute_decision(b: OpenBundle, height: int) -> DecisionSpec | None:
    for rollup in b.rollups:
        vote = b.votes.get(rollup)
        if vote is not None and not vote[0]:
            return DecisionSpec(b.id, False, f"{rollup} voted no: {vote[1]}")
    if all(r in b.votes for r in b.rollups):
        return DecisionSpec(b.id, True, "every rollup voted yes")
    if height >= b.deadline:
        missing = ", ".join(r for r in b.rollups if r not in b.votes)
        return DecisionSpec(
            b.id, False, f"deadline height {b.deadline} passed with no vote from {missing}"
        )
    return None


@dataclass(frozen=True, slots=True)
class BundleMeta:
    """What the tracker needs of an admitted bundle."""

    rollups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VoteMeta:
    """What the tracker needs of an admitted vote."""

    rollup: str
    votes: tuple[tuple[bytes, bool, str], ...]


EntryMeta = BundleMeta | VoteMeta
