"""`devnet experiment contagion --size small` end to end, as users type it
(.venv/bin/devnet in a subprocess): a real devnet of alpha, beta and gamma started
and stopped by the run, gamma's node killed mid-life and kept down, then brought
back. The report must name its tables and PNG figures, and its summary must show
the contagion (options that cannot settle, collateral on alpha held by a halt on
gamma), the exit rule releasing it at expiry + grace, and nothing lost: supply per
asset equal to genesis on every rollup, every invariant check and every account's
balance against the run's ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from experimentsupport import assert_png, run_small

TABLES = ("options:", "outcomes:", "frozen:", "exit:", "conservation:", "invariants:")
FIGURES = ("contagion-frozen.png", "contagion-outcomes.png")


@pytest.mark.timeout(180)
def test_experiment_contagion_small(tmp_path: Path, seed: int) -> None:
    doc, folder, markdown = run_small("contagion", seed, tmp_path, timeout=170)

    titles = [t["title"] for t in doc["tables"]]
    for prefix in TABLES:
        [table] = [t for t in doc["tables"] if t["title"].startswith(prefix)]
        assert table["rows"], table
        assert f"**{table['title']}**" in markdown
    assert [f["file"] for f in doc["figures"]] == list(FIGURES), titles
    for name in FIGURES:
        assert_png(folder / name)
        assert f"]({name})" in markdown

    s = doc["summary"]
    # The contagion: options that cannot settle while gamma is down, alpha's
    # collateral among what they hold.
    assert s["unsettleable"] > 0 and s["unsettleable_split"] > 0, s
    assert s["frozen_value_alpha_usdc"] > 0, s
    assert s["frozen"]["alpha"] and all(v > 0 for v in s["frozen"]["alpha"].values()), s
    assert s["settled_during_halt"] > 0, s  # alpha alone keeps settling
    # Every settle with a leg on gamma aborts at its deadline: gamma never votes.
    assert s["abort_codes"] == {"DEADLINE": s["settle_attempts"] - s["settled"]}, s
    # The exit: every lien of an unsettleable option came back to its writer.
    assert s["released_by_exit_liens"] > 0 and s["released_by_exit_usdc"] > 0, s
    assert s["released_by_exit"]["alpha"] == s["frozen"]["alpha"], s
    assert s["early_reclaim_refused"] is True, s
    # On alpha, at expiry + grace (plus the few blocks the writer takes to send it);
    # on gamma only once its node is back.
    assert s["grace_blocks"] <= s["frozen_blocks_alpha_max"] <= s["grace_blocks"] + 20, s
    [exits] = [t for t in doc["tables"] if t["title"].startswith("exit:")]
    head = exits["headers"]
    for row in exits["rows"]:
        r = dict(zip(head, row, strict=True))
        assert r["status"] == "RECLAIMED", r
        assert 0 <= r["ordered - reclaimable"] <= 20, r
        if r["rollup"] == "gamma":
            assert r["usable from"] == s["gamma_back_height"] > r["reclaimable from"], r
        else:
            assert r["usable from"] == r["released (record)"] == r["reclaim ordered"], r
    # Nothing is lost.
    assert s["conservation_passed"] is True, s
    assert s["invariants_passed"] is True, s
    assert s["ledger_passed"] is True, s
    assert s["record_problems"] == [], s
    assert "held = genesis" in markdown and "| NO |" not in markdown
