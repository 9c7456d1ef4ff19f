"""A cross-rollup bundle's lifecycle, from the public gRPC APIs only: submitted
(the sequencer's admission), ordered at height h, prepared on each rollup (its
vote, the reason of a no, the height that ordered the vote), decided (commit or
abort, why, at which height) and finished on each node. One timeline that both
`devnet bundle trace` and the explorer's bundle page render.

Heights are consensus data; the milliseconds are not. "submitted" is the
sequencer's clock at admission, "ordered"/"prepared"/"decided" are the timestamps
of the blocks that ordered the bundle, each vote and the decision (the
sequencer's clock at sealing), "finished" is each node's own clock when it
applied the decision. All run on one machine in a devnet, so the differences are
meaningful; a time that is not remembered (after a restart) is None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grpc import StatusCode, aio

from xrollup import codec
from xrollup.client import Client, NodeClient
from xrollup.model import Bundle, Decision, ReasonCode, Vote, describe_reason
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import sequencer_pb2 as spb

SUBMITTED, ORDERED, PREPARED, DECIDED, FINISHED = (
    "submitted",
    "ordered",
    "prepared",
    "decided",
    "finished",
)


@dataclass(frozen=True)
class Stage:
    """One step of the timeline. `rollup` names the rollup (prepared) or the node
    (finished) it happened on; `ms_since_previous` counts from the bundle's previous
    step (ordered for a vote, decided for a node's finish); `ok` is the vote or the
    decision (None for the other stages)."""

    name: str
    rollup: str | None = None
    height: int | None = None
    unix_ms: int | None = None
    ms_since_previous: int | None = None
    ok: bool | None = None
    code: str = ""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rollup": self.rollup,
            "height": self.height,
            "unix_ms": self.unix_ms,
            "ms_since_previous": self.ms_since_previous,
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class BundleTrace:
    """`state`: unknown (the sequencer never saw it), pending (admitted, not yet
    ordered), ordered, prepared (some rollup voted, no decision yet), committed or
    aborted. `rollups`: the rollups the bundle has legs on, in leg order."""

    id: bytes
    state: str
    rollups: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    records: dict[str, npb.BundleRecord] = field(default_factory=dict)

    @property
    def total_ms(self) -> int | None:
        """From admission to the last node finishing, when both are known."""
        first = self.stages[0].unix_ms if self.stages else None
        ends = [s.unix_ms for s in self.stages if s.name == FINISHED and s.unix_ms]
        if first is None or not ends:
            return None
        return max(ends) - first

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id.hex(),
            "state": self.state,
            "rollups": list(self.rollups),
            "total_ms": self.total_ms,
            "stages": [s.to_json() for s in self.stages],
        }


def _since(t: int | None, before: int | None) -> int | None:
    return t - before if t and before else None


def _code_name(code: int) -> str:
    try:
        return ReasonCode(code).name
    except ValueError:
        return str(code)


def _reason_text(code: int) -> str:
    try:
        return describe_reason(ReasonCode(code))
    except ValueError:
        return f"reason code {code}"


# A node that does not know the bundle, is down, or does not answer in time (paused)
# is left out of the timeline rather than failing it.
_NO_RECORD = (StatusCode.NOT_FOUND, StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED)


async def _node_record(
    node: NodeClient, bundle_id: bytes, timeout: float
) -> npb.BundleRecord | None:
    try:
        return await node.bundle(bundle_id, timeout=timeout)
    except aio.AioRpcError as e:
        if e.code() in _NO_RECORD:
            return None
        raise


async def trace_bundle(
    sequencer: Client,
    nodes: Mapping[str, tuple[str, NodeClient]],
    bundle_id: bytes,
    max_scan_blocks: int = 64,
    node_timeout: float = 1.0,
) -> BundleTrace:
    """The timeline of `bundle_id`. `nodes` maps a node's name to (its rollup, a
    client); a node that is down or has not applied the bundle yet is left out of
    the stages that need it (one that does not answer within `node_timeout`
    seconds too, as a paused one). Reads at most `max_scan_blocks` blocks after the one
    that ordered the bundle, looking for its votes and decision (a bundle is
    decided within the genesis deadline, 50 blocks by default)."""
    try:
        sub = await sequencer.get_submission(bundle_id)
    except aio.AioRpcError as e:
        if e.code() == StatusCode.NOT_FOUND:
            return BundleTrace(bundle_id, "unknown")
        raise
    admitted = sub.admitted_unix_ms or None
    submitted = Stage(SUBMITTED, unix_ms=admitted)
    if sub.state != spb.GetSubmissionResponse.STATE_ORDERED:
        return BundleTrace(bundle_id, "pending", stages=(submitted,))

    ordered_block = await sequencer.get_block(sub.height)
    entry = codec.decode_entry_tolerant(ordered_block.entries[sub.index])
    rollups: tuple[str, ...] = ()
    if isinstance(entry, Bundle):
        rollups = tuple(dict.fromkeys(leg.rollup for leg in entry.body.legs))
    ordered_ms = ordered_block.header.timestamp_ms or None
    stages = [
        submitted,
        Stage(
            ORDERED,
            height=sub.height,
            unix_ms=ordered_ms,
            ms_since_previous=_since(ordered_ms, admitted),
        ),
    ]

    names = list(nodes)
    found = await asyncio.gather(
        *(_node_record(nodes[n][1], bundle_id, node_timeout) for n in names)
    )
    records = {n: r for n, r in zip(names, found, strict=True) if r is not None}
    by_rollup: dict[str, npb.BundleRecord] = {}
    for n, r in records.items():
        by_rollup.setdefault(nodes[n][0], r)
    decision_height = max((r.decision_height for r in records.values()), default=0)

    # The votes and the decision, from the blocks after the bundle's.
    votes: dict[str, tuple[int, int, bool, int]] = {}  # rollup -> (height, ms, yes, code)
    decision: tuple[int, int, bool, int] | None = None
    head = (await sequencer.status()).height
    last = min(head, sub.height + max_scan_blocks)
    if decision_height:
        last = min(last, decision_height)
    for h in range(sub.height, last + 1):
        block = ordered_block if h == sub.height else await sequencer.get_block(h)
        for raw in block.entries:
            if raw.WhichOneof("kind") not in ("vote", "decision"):
                continue
            logged = codec.decode_entry_tolerant(raw)
            if isinstance(logged, Vote):
                for v in logged.body.votes:
                    if v.bundle_id == bundle_id and logged.body.rollup not in votes:
                        ms = block.header.timestamp_ms
                        votes[logged.body.rollup] = (h, ms, v.yes, int(v.code))
            elif isinstance(logged, Decision) and logged.bundle_id == bundle_id:
                decision = decision or (
                    h,
                    block.header.timestamp_ms,
                    logged.commit,
                    int(logged.code),
                )
        if decision is not None:
            break

    for rollup in rollups:
        rec = by_rollup.get(rollup)
        if rollup in votes:
            h, ms, yes, code = votes[rollup]
            reason = "" if yes else (rec.reason if rec is not None else _reason_text(code))
            stages.append(
                Stage(
                    PREPARED, rollup, h, ms, _since(ms, ordered_ms), yes, _code_name(code), reason
                )
            )
        elif rec is not None:  # voted, the vote not ordered (yet)
            stages.append(
                Stage(
                    PREPARED,
                    rollup,
                    ok=rec.vote,
                    code=_code_name(rec.reason_code),
                    reason="" if rec.vote else rec.reason,
                )
            )

    state = "prepared" if votes or records else "ordered"
    if decision is not None:
        h, ms, commit, code = decision
        reason = _reason_text(code)
        if not commit:  # the no votes, with what their rollup says of why
            nos = [
                f"{r} voted no: "
                + (by_rollup[r].reason if r in by_rollup else _reason_text(votes[r][3]))
                for r in rollups
                if r in votes and not votes[r][2]
            ]
            reason = "; ".join(nos) or reason
        stages.append(
            Stage(DECIDED, None, h, ms, _since(ms, ordered_ms), commit, _code_name(code), reason)
        )
        state = "committed" if commit else "aborted"
        for n, rec in records.items():
            if not rec.decision_height:
                continue
            done = rec.finished_unix_ms or None
            committed = rec.status == npb.BundleRecord.STATUS_COMMITTED
            stages.append(
                Stage(FINISHED, n, rec.decision_height, done, _since(done, ms), committed)
            )
    return BundleTrace(bundle_id, state, rollups, tuple(stages), records)
