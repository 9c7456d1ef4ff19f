"""`devnet watch`'s pure core (devnet/cli/observe.py): the window of recent
blocks, the rates over it, and a snapshot from what status and faults read."""

from __future__ import annotations

from typing import Any

from devnet.cli.observe import (
    BlockSample,
    compute_rates,
    compute_watch_snapshot,
    compute_window,
)


def blocks(first: int, last: int, entries: int = 10, ms: int = 20) -> list[BlockSample]:
    return [BlockSample(h, 1_000_000 + h * ms, entries) for h in range(first, last + 1)]


def test_the_window_extends_with_consecutive_blocks_and_keeps_the_last_span() -> None:
    window = compute_window((), blocks(1, 10))
    window = compute_window(window, blocks(11, 20))
    assert [s.height for s in window] == list(range(1, 21))

    trimmed = compute_window(window, blocks(21, 30), span_ms=100)  # 20 ms blocks: 6 kept
    assert [s.height for s in trimmed] == list(range(25, 31))


def test_a_gap_or_a_lower_height_starts_the_window_over() -> None:
    window = compute_window((), blocks(1, 10))

    assert [s.height for s in compute_window(window, blocks(15, 17))] == [15, 16, 17]
    assert [s.height for s in compute_window(window, blocks(3, 4))] == [3, 4]  # a new chain


def test_rates_count_the_blocks_after_the_first_over_their_time() -> None:
    window = blocks(1, 51, entries=7)  # 50 blocks after the first in 1,000 ms

    assert compute_rates(window) == (50.0, 350.0)
    assert compute_rates(window[:1]) == (None, None)
    assert compute_rates([BlockSample(1, 5, 1), BlockSample(2, 5, 1)]) == (None, None)


def status_row(name: str, role: str, height: int | None, **extra: Any) -> dict[str, Any]:
    alive = extra.pop("running", True)
    return {
        "name": name,
        "role": role,
        "rollup": name.split("-")[0] if role == "node" else None,
        "endpoint": "127.0.0.1:1",
        "running": alive,
        "paused": extra.pop("paused", False),
        "healthy": extra.pop("healthy", alive),
        "height": height,
        "state_root": None,
        **extra,
    }


def fault_row(name: str, state: str = "running", **link: Any) -> dict[str, Any]:
    return {
        "name": name,
        "role": "node",
        "pid": None,
        "state": state,
        "partitioned": link.get("partitioned", False),
        "delay_ms": link.get("delay_ms", 0),
        "byzantine": link.get("byzantine"),
    }


def test_a_snapshot_shows_heights_lag_refusals_and_faults_in_force() -> None:
    refusal = {"code": "BAD_SIGNATURE", "height": 90, "message": "..."}
    rows = [
        status_row("sequencer", "sequencer", 100),
        status_row("proxy", "proxy", None),
        status_row("a", "node", 97, connected=True),
        status_row("b", "node", 89, connected=True, refusal=refusal, refused_blocks=3),
        status_row("a-replica", "node", None, running=False),
        status_row("c", "node", 60, connected=False),
        status_row("d", "node", 103, connected=True),  # read after the head moved on
    ]
    faults = [
        fault_row("sequencer"),
        fault_row("a"),
        fault_row("b", byzantine="forge-block"),
        fault_row("a-replica", state="dead"),
        fault_row("c", partitioned=True, delay_ms=200),
        fault_row("d", state="paused"),
    ]

    snap = compute_watch_snapshot(rows, faults, blocks(1, 51, entries=4))

    assert (snap.head, snap.blocks_per_s, snap.entries_per_s, snap.window_blocks) == (
        100,
        50.0,
        200.0,
        51,
    )
    by_name = {p["name"]: p for p in snap.processes}
    assert [p["name"] for p in snap.processes] == [r["name"] for r in rows]
    assert {n: (p["health"], p["height"], p["lag"]) for n, p in by_name.items()} == {
        "sequencer": ("SERVING", 100, None),
        "proxy": ("SERVING", None, None),
        "a": ("SERVING", 97, 3),
        "b": ("SERVING", 89, 11),
        "a-replica": ("down", None, None),
        "c": ("SERVING", 60, 40),
        "d": ("SERVING", 103, 0),
    }
    assert by_name["a"]["note"] is None
    assert by_name["b"]["note"] == "refusing block 90: BAD_SIGNATURE (3x)"
    assert by_name["c"]["note"] == "not connected to the sequencer"
    assert snap.faults == (
        ("b", "byzantine forge-block"),
        ("a-replica", "down"),
        ("c", "partitioned, delay 200 ms"),
        ("d", "paused"),
    )
    assert snap.to_json()["faults"][0] == {"name": "b", "what": "byzantine forge-block"}


def test_a_snapshot_without_a_sequencer_has_no_head_lag_or_rates() -> None:
    rows = [
        status_row("sequencer", "sequencer", None, running=False),
        status_row("a", "node", 7, connected=False),
    ]

    snap = compute_watch_snapshot(rows, [fault_row("sequencer", state="dead")], ())

    assert (snap.head, snap.blocks_per_s, snap.entries_per_s) == (None, None, None)
    assert snap.processes[1]["lag"] is None
    assert snap.faults == (("sequencer", "down"),)
