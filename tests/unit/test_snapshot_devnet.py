"""devnet/snapshot.py's pure parts: the load journal a snapshot keeps, how far
ahead of the head a snapshot is taken, and which processes a snapshot.json may
name (each becomes a directory of the devnet on restore)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devnet.snapshot import (
    Piece,
    SnapshotFailed,
    SnapshotInfo,
    compute_ahead_blocks,
    save_snapshot_journal,
    validate_pieces,
)


def test_the_journal_keeps_acknowledgements_up_to_the_height(tmp_path: Path) -> None:
    lines = [
        {"id": f"{i:064x}", "kind": "tx", "height": h, "index": 0}
        for i, h in enumerate([3, 9, 10, 11])
    ]
    src = tmp_path / "journal.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"id": "torn')

    save_snapshot_journal(src, tmp_path / "kept.jsonl", 10)

    kept = [json.loads(x)["height"] for x in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert kept == [3, 9, 10]


def test_a_snapshot_is_taken_about_half_a_second_of_blocks_ahead() -> None:
    assert compute_ahead_blocks(20) == 25
    assert compute_ahead_blocks(1000) == 5
    assert compute_ahead_blocks(0) == 500


def _info(*pieces: tuple[str, str, str | None]) -> SnapshotInfo:
    return SnapshotInfo(
        "s",
        Path("/nowhere/s"),
        10,
        b"\x00" * 32,
        "xrollup-devnet-1",
        b"\x00" * 32,
        ("alpha", "beta"),
        0,
        tuple(Piece(n, role, rollup, b"", 1) for n, role, rollup in pieces),
    )


SEQ, ALPHA, BETA = (
    ("sequencer", "sequencer", None),
    ("alpha", "node", "alpha"),
    ("beta", "node", "beta"),
)


def test_a_snapshot_of_the_sequencer_and_every_node_with_or_without_replicas_is_whole() -> None:
    validate_pieces(_info(SEQ, ALPHA, BETA))
    replicas = (("alpha-replica", "node", "alpha"), ("beta-replica", "node", "beta"))
    validate_pieces(_info(SEQ, ALPHA, BETA, *replicas))
    assert _info(SEQ, ALPHA, BETA, *replicas).replicas and not _info(SEQ, ALPHA, BETA).replicas


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ((SEQ, ALPHA, BETA, ("../x", "node", "alpha")), "'../x'"),
        ((SEQ, ALPHA, ("beta", "node", "alpha")), "'beta' (node, alpha)"),
        ((SEQ, ALPHA, BETA, ("genesis.json", "node", "alpha")), "'genesis.json'"),
        ((SEQ, ALPHA), "a node of every rollup"),
        ((SEQ, ALPHA, BETA, BETA), "each once"),
        ((SEQ, ALPHA, BETA, ("alpha-replica", "node", "alpha")), "some replicas"),
    ],
)
def test_a_snapshot_naming_other_processes_is_refused(
    pieces: tuple[tuple[str, str, str | None], ...], message: str
) -> None:
    with pytest.raises(SnapshotFailed, match=re.escape(message)):
        validate_pieces(_info(*pieces))
