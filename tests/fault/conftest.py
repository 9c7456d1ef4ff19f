"""Collects every fault run's record (fault, seed, violations, recovery time)
and, at the end of the session, prints the summary table and writes it to
.devnet-faults/report.json (the full suite) or report-fast.json (the subset in
`make test`), so the README can quote it."""

from __future__ import annotations

import pytest
from faultsupport import RunRecord, format_table, summarize, write_report

RECORDS = pytest.StashKey[list[RunRecord]]()
REPORT_DIR = ".devnet-faults"


@pytest.fixture(scope="session")
def fault_records(request: pytest.FixtureRequest) -> list[RunRecord]:
    return request.config.stash.setdefault(RECORDS, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    records = config.stash.get(RECORDS, [])
    if not records:
        return
    rows = summarize(records)
    terminalreporter.write_sep("=", "fault suite: invariant violations and recovery times")
    for line in format_table(rows):
        terminalreporter.write_line(line)
    name = "report.json" if any(r.suite == "full" for r in records) else "report-fast.json"
    path = config.rootpath / REPORT_DIR / name
    write_report(path, records)
    terminalreporter.write_line(f"written to {path}")
