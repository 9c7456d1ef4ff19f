"""`devnet experiment capital --size small` end to end, as users type it
(.venv/bin/devnet in a subprocess): one devnet started and stopped by the run,
the same option trades done atomically (lien on alpha, option on beta) and
bridge-then-trade at D = 0 and 20 blocks (lock on alpha, the relayer's mint on
beta after D blocks, an option against a local lien on beta, burn and unlock to
exit). The report's tables and PNG plots exist; bridging leaves more capital
idle than the atomic trade at D > 0 and takes more submissions at every D;
every bridge option's only lien sat on beta (local collateral: a lien on beta
controlled by beta) and opened and settled; devnet.checker (conservation
included) passed after every run and the bridge's books balanced."""

from __future__ import annotations

from pathlib import Path

import pytest
from experimentsupport import assert_png, run_small


@pytest.mark.timeout(150)
def test_experiment_capital_small(tmp_path: Path, seed: int) -> None:
    doc, folder, markdown = run_small("capital", seed, tmp_path, timeout=140)

    tables = {t["title"].split(":")[0]: t for t in doc["tables"]}
    for name in ("published bridge delays scaled to blocks (1 block = 2 s)", "capital",
                 "time and transactions", "trades", "invariants"):  # fmt: skip
        assert name in tables, list(tables)
        assert f"**{tables[name]['title']}**" in markdown
    assert doc["figures"], doc
    for figure in doc["figures"]:
        png = folder / figure["file"]
        assert_png(png)
        assert f"]({png.name})" in markdown
    assert {f["file"] for f in doc["figures"]} == {"capital-idle.png", "capital-latency.png"}

    s = doc["summary"]
    assert s["trades"] == 2 and s["delays_measured"] == [0, 20]
    assert s["invariants_ok"] is True, s["violations"]
    assert s["books_ok"] is True
    assert s["trades_ok"] is True, s["problems"]
    assert s["local_collateral_settled"] is True
    assert "Every check passed after every run." in markdown

    rows = {r["delay"]: r for r in s["rows"]}
    for delay in (0, 20):
        row = rows[delay]
        assert row["extrapolated"] is False and row["trades_ok"] == 2, row
        assert row["tx_bridge"] > row["tx_atomic"] == 2, row  # open and settle bundles
        assert row["idle_bridge"] > row["idle_atomic"] > 0, row
        assert row["entry_blocks_bridge"] >= delay, row
        assert row["exit_blocks_bridge"] >= delay, row
    # A longer wait leaves more capital idle: the window is in the figure.
    assert rows[20]["idle_bridge"] > rows[0]["idle_bridge"]
    # The published delays not run here are extrapolated and labelled so.
    assert rows[302_400]["extrapolated"] is True
    assert rows[302_400]["idle_bridge"] > rows[20]["idle_bridge"]
    assert "302,400 (extrapolated)" in markdown

    # Per trade: every bridge option's lien sat on beta (local collateral), and it settled.
    trades = tables["trades"]
    col = trades["headers"].index("bridge lien on")
    ok = trades["headers"].index("ok")
    assert [r[col] for r in trades["rows"]] == ["beta", "beta"], trades["rows"]
    assert [r[ok] for r in trades["rows"]] == ["yes", "yes"], trades["rows"]
