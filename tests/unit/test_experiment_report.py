"""The experiments' frame without a devnet: the report a run writes (report.md's
tables and figure links, report.json with the same tables and summary) and the
command's usage errors (one line, exit 2, nothing run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner

from devnet.cli import main
from devnet.experiments import EXPERIMENTS, Report, load


def test_a_report_writes_its_tables_figures_and_summary(tmp_path: Path) -> None:
    report = Report("demo", 7, "A title", "devnet experiment demo --seed 7").into(tmp_path / "r")
    report.heading("Part")
    report.text("A   paragraph\n split over lines.")
    report.table("t: numbers", ["name", "count", "rate"], [["a|b", 12345, 0.5], ["c", 1, math.nan]])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    report.figure(fig, "line", "a line")
    report.summary["count"] = 12345

    path = report.write()

    md = path.read_text()
    assert md.startswith("# A title\n\n`devnet experiment demo --seed 7` (seed 7)")
    assert "## Part" in md and "A paragraph split over lines." in md
    assert "| a\\|b | 12,345 | 0.5 |" in md and "| c | 1 | n/a |" in md  # escaped, grouped
    assert "![a line](line.png)" in md
    assert (tmp_path / "r" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["summary"] == {"count": 12345} and doc["seed"] == 7
    assert doc["tables"][0]["rows"][1][2] is None  # NaN is null in JSON
    assert doc["figures"] == [{"file": "line.png", "caption": "a line"}]


def test_every_listed_experiment_loads() -> None:
    for name in EXPERIMENTS:
        assert callable(load(name))
    with pytest.raises(KeyError):
        load("nope")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope"], "invalid value for 'NAME': 'nope' is not one of"),
        (["faults", "--seed", "-1"], "invalid value for '--seed'"),
        (["faults", "--size", "huge"], "invalid value for '--size'"),
    ],
)
def test_a_bad_invocation_is_one_line_and_runs_nothing(
    args: list[str], says: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["experiment", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
