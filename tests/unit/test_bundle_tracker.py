"""The sequencer's bundle decisions (sequencer/core/bundles.py): commit once
every touched rollup voted yes, abort on the first no, abort at the deadline
height when a vote is missing; first vote per rollup counts; each bundle is
decided once and then forgotten."""

from __future__ import annotations

from sequencer.core.bundles import BundleTracker, DecisionSpec

B1, B2, B3 = (bytes([i]) * 32 for i in (1, 2, 3))


def tracker_with(*bundles: tuple[bytes, tuple[str, ...], int], deadline: int = 10) -> BundleTracker:
    t = BundleTracker(deadline)
    for bundle_id, rollups, height in bundles:
        t.observe_bundle(bundle_id, rollups, height)
    return t


def test_undecided_until_every_rollup_voted_yes() -> None:
    t = tracker_with((B1, ("beta", "alpha"), 5))
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(6) == []
    t.observe_vote("beta", [(B1, True, "")])

    assert t.decide(7) == [DecisionSpec(B1, True, "every rollup voted yes")]
    assert t.open == {}
    assert t.decide(8) == []  # decided once


def test_first_no_aborts_without_waiting() -> None:
    t = tracker_with((B1, ("alpha", "beta"), 5))
    t.observe_vote("beta", [(B1, False, "insufficient balance")])

    [d] = t.decide(6)

    assert not d.commit and d.reason == "beta voted no: insufficient balance"


def test_missing_vote_aborts_at_the_deadline_height() -> None:
    t = tracker_with((B1, ("alpha", "beta"), 5), deadline=10)
    t.observe_vote("alpha", [(B1, True, "")])
    assert t.decide(14) == []

    [d] = t.decide(15)

    assert not d.commit
    assert "deadline height 15" in d.reason and "no vote from beta" in d.reason


def test_only_first_vote_of_a_touched_rollup_counts() -> None:
    t = tracker_with((B1, ("alpha",), 5))
    t.observe_vote("beta", [(B1, False, "not mine")])  # beta is not touched
    t.observe_vote("alpha", [(B1, True, "")])
    t.observe_vote("alpha", [(B1, False, "second thoughts")])

    assert t.decide(6) == [DecisionSpec(B1, True, "every rollup voted yes")]


def test_votes_on_unknown_or_decided_bundles_are_ignored() -> None:
    t = tracker_with((B1, ("alpha",), 5))
    t.observe_vote("alpha", [(B2, False, "unknown")])
    t.observe_decision(B1)  # decided already (seen in the log on restart)
    t.observe_vote("alpha", [(B1, False, "late")])

    assert t.decide(100) == []


def test_decisions_come_in_log_order_and_a_bundle_is_observed_once() -> None:
    t = tracker_with((B2, ("alpha",), 3), (B1, ("alpha",), 4), (B3, ("alpha",), 5), deadline=2)
    t.observe_bundle(B2, ("alpha", "beta"), 9)  # seen again: ignored, keeps height 3
    t.observe_vote("alpha", [(B3, True, "")])

    decided = t.decide(6)

    assert [d.bundle_id for d in decided] == [B2, B1, B3]
    assert [d.commit for d in decided] == [False, False, True]
