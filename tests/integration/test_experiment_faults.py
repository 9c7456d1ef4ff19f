"""`devnet experiment faults --size small` end to end, as users type it
(.venv/bin/devnet in a subprocess): real devnets started and stopped by the run,
each sweep's table and PNG plot in the report, the summary's figures, and the
invariant checks after every sweep passing. A cut longer than the bundle
deadline must abort the bundles ordered in it; with no fault every bundle commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from experimentsupport import assert_png, run_small

SWEEPS = ("delay", "partition", "kill")


@pytest.mark.timeout(180)
def test_experiment_faults_small(tmp_path: Path, seed: int) -> None:
    doc, folder, markdown = run_small("faults", seed, tmp_path, timeout=170)

    titles = [t["title"] for t in doc["tables"]]
    for sweep in SWEEPS:
        [table] = [t for t in doc["tables"] if t["title"].startswith(f"{sweep}:")]
        assert len(table["rows"]) == 2, table  # two levels at the small size
        assert f"**{table['title']}**" in markdown
        png = folder / f"faults-{sweep}.png"
        assert_png(png)
        assert f"]({png.name})" in markdown
    assert any(t.startswith("invariants:") for t in titles), titles

    s = doc["summary"]
    assert s["seeds"] == [seed, seed + 1]
    assert s["bundles"] == 2 * 3 * 2 * 5  # seeds x sweeps x levels x bundles
    assert s["invariants_ok"] is True, s["bundle_problems"]
    assert s["invariant_checks"] == 2 * 3  # after every sweep on every seed's devnet
    assert "Every check passed on every seed and sweep." in markdown
    for sweep in SWEEPS:
        levels = s[sweep]["levels"]
        zero, top = levels[0], levels[-1]
        assert zero["level"] == 0
        for key in ("abort_rate", "latency_blocks_mean", "latency_ms_mean", "latency_blocks_p95"):
            assert isinstance(top[key], float | int), (sweep, key, top)
        assert zero["abort_rate"] == 0, zero  # no fault, no conflict: every bundle commits
        assert zero["undecided"] == 0 and top["undecided"] == 0
        assert s[f"{sweep}_top_abort_rate"] == top["abort_rate"]
    # A 60-block cut is longer than the 50-block deadline: every bundle ordered in
    # its first blocks misses the cut node's vote and aborts at its deadline.
    cut = s["partition"]["levels"][-1]
    assert cut["level"] == 60 and cut["abort_rate"] == 1.0, cut
    assert cut["abort_codes"] == {"DEADLINE": 10}, cut
    assert cut["latency_blocks_mean"] == s["deadline_blocks"] == 50
