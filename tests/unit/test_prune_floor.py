"""The devnet's prune floor (devnet/retention.py): the lowest applied height of
its nodes and height of its snapshots (complete, or being saved), held where it
was while a node is unheard of or a snapshot does not read."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from devnet.retention import (
    HOLD_SECONDS,
    compute_prune_floor,
    hold_floor,
    read_snapshot_heights,
    release_floor,
)


def test_the_floor_is_the_lowest_node_or_snapshot_and_held_while_a_node_is_unheard() -> None:
    assert compute_prune_floor([120, 95, 130], []) == 95
    assert compute_prune_floor([120, 95], [80, 200]) == 80
    assert compute_prune_floor([120, None], []) is None  # stopped: it holds the floor
    assert compute_prune_floor([], [50]) is None  # no node: nothing to say
    assert compute_prune_floor([120], None) is None  # a snapshot did not read


def test_snapshots_complete_and_being_saved_count_and_a_dead_hold_expires(tmp_path: Path) -> None:
    assert read_snapshot_heights(tmp_path) == []
    (tmp_path / "snapshots" / "a").mkdir(parents=True)
    (tmp_path / "snapshots" / "a" / "snapshot.json").write_text(json.dumps({"height": 40}))
    (tmp_path / "snapshots" / "no-file-yet").mkdir()
    hold_floor(tmp_path, "b", 70)
    assert sorted(read_snapshot_heights(tmp_path) or []) == [40, 70]
    release_floor(tmp_path, "b")
    assert read_snapshot_heights(tmp_path) == [40]

    hold_floor(tmp_path, "dead", 10)
    old = time.time() - HOLD_SECONDS - 1
    os.utime(tmp_path / "snapshots" / ".hold-dead", (old, old))
    assert read_snapshot_heights(tmp_path) == [40]
    (tmp_path / "snapshots" / "a" / "snapshot.json").write_text("{torn")
    assert read_snapshot_heights(tmp_path) is None
