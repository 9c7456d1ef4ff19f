"""Which historic blocks and ids the sequencer may delete (pure).

Blocks: only below a floor that every node and every snapshot is past. The
sequencer cannot know offline nodes, so it is told: SetPruneFloor(height) sets
the floor (the devnet sets it to the lowest applied height of its nodes and
snapshot height, devnet/retention.py), and blocks below min(floor, head - N + 1)
go, N being --retain-blocks (0: keep every block; never fewer than the bundle
deadline window, which a restart reads again to find undecided bundles). No
floor set (0): nothing is deleted.

Ids (the duplicate index): an entry ordered at height h expired at most
limits.max_expiry_window blocks after it was admitted, so from head + 1 >
h + window on a second submission of it is refused as expired before the index
is asked; its id may go then, and only once its block has gone too (the index
also answers GetSubmission)."""

from __future__ import annotations

from dataclasses import dataclass

from xrollup.genesis import Limits


@dataclass(frozen=True, slots=True)
class KeepFrom:
    """The first height whose block, and whose ids, are kept (1: everything)."""

    blocks: int
    ids: int


def compute_keep_from(head: int, retain_blocks: int, floor: int, limits: Limits) -> KeepFrom:
    if retain_blocks <= 0 or floor <= 0:
        return KeepFrom(1, 1)
    window = max(retain_blocks, limits.bundle_deadline_blocks + 1)
    blocks = max(1, min(floor, head - window + 1))
    ids = max(1, min(blocks, head + 1 - limits.max_expiry_window))
    return KeepFrom(blocks, ids)
