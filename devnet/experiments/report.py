"""The report every experiment writes: Markdown with tables and figures (PNG made
with matplotlib, headless), plus report.json with the same tables and the
experiment's summary figures for scripts. One place for the format, so the three
experiments' reports read alike and docs/results.md can quote them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")  # no display: plots are files
# matplotlib keeps a font cache; in a fresh CI home it is written once.


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return "n/a" if math.isnan(v) else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
            if isinstance(v, int) and not isinstance(v, bool):
                return f"{v:,}"
            return str(v).replace("|", "\\|")

        head = "| " + " | ".join(self.headers) + " |"
        rule = "|" + "|".join("---" for _ in self.headers) + "|"
        body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join([f"**{self.title}**", "", head, rule, *body])


@dataclass
class Figure:
    file: str  # relative to the report's folder
    caption: str


@dataclass
class Report:
    """An experiment's findings. Add sections in reading order; `write` puts
    report.md, report.json and the figures into one folder."""

    experiment: str
    seed: int
    title: str
    command: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def text(self, paragraph: str) -> None:
        self.blocks.append(("text", " ".join(paragraph.split())))

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
        t = Table(title, list(headers), [list(r) for r in rows])
        self.blocks.append(("table", t))
        return t

    def figure(self, fig: Any, name: str, caption: str) -> Figure:
        """Save a matplotlib figure as NAME.png in the report's folder (set by
        `into`) and close it."""
        import matplotlib.pyplot as plt

        assert self.folder is not None, "call Report.into(folder) before adding figures"
        self.folder.mkdir(parents=True, exist_ok=True)
        file = f"{name}.png"
        fig.savefig(self.folder / file, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        f = Figure(file, caption)
        self.blocks.append(("figure", f))
        return f

    def into(self, folder: Path) -> Report:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def tables(self) -> list[Table]:
        return [b for kind, b in self.blocks if kind == "table"]

    @property
    def figures(self) -> list[Figure]:
        return [b for kind, b in self.blocks if kind == "figure"]

    def markdown(self) -> str:
        out = [f"# {self.title}", "", f"`{self.command}` (seed {self.seed})", ""]
        for kind, b in self.blocks:
            if kind == "heading":
                out += [f"## {b}", ""]
            elif kind == "text":
                out += [b, ""]
            elif kind == "table":
                out += [b.markdown(), ""]
            else:
                out += [f"![{b.caption}]({b.file})", "", f"*{b.caption}*", ""]
        return "\n".join(out)

    def as_json(self) -> dict[str, Any]:
        """The report for scripts (report.json, --json): NaN as null."""
        doc: dict[str, Any] = _without_nan(
            {
                "experiment": self.experiment,
                "seed": self.seed,
                "title": self.title,
                "command": self.command,
                "folder": str(self.folder) if self.folder else None,
                "report": str(self.folder / "report.md") if self.folder else None,
                "summary": self.summary,
                "tables": [
                    {"title": t.title, "headers": t.headers, "rows": t.rows} for t in self.tables
                ],
                "figures": [{"file": f.file, "caption": f.caption} for f in self.figures],
            }
        )
        return doc

    def write(self) -> Path:
        """Write report.md and report.json; the path of report.md."""
        assert self.folder is not None
        (self.folder / "report.md").write_text(self.markdown())
        (self.folder / "report.json").write_text(
            json.dumps(self.as_json(), indent=2, default=_json_default, allow_nan=False) + "\n"
        )
        return self.folder / "report.md"


def _without_nan(v: Any) -> Any:
    """NaN (a mean of nothing) as null: JSON has no NaN, and strict readers refuse it."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _without_nan(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_without_nan(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    return str(v)
