"""How `devnet` shows things: the consoles, JSON, records as two-column tables,
receipts and bundle outcomes, and the wording of a node's refusal and of a
link's faults (one rendering each, shared by status, faults and watch)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from devnet.status import health_word, node_note
from xrollup.v1 import node_pb2 as npb

# Outside a terminal (pipes, CI logs) rich would wrap at 80 columns; tables need more.
console = Console() if sys.stdout.isatty() else Console(width=200)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def print_record(title: str, d: dict[str, Any]) -> None:
    table = Table("field", "value", title=title, show_header=False)
    for k, v in d.items():
        table.add_row(k, "-" if v is None else str(v))
    console.print(table)


def receipt_json(r: Any, rollup: str) -> dict[str, Any]:
    return {
        "rollup": rollup,
        "status": "ok" if r.ok else "failed",
        "reason": r.reason or None,
        "height": r.height,
        "index": r.index,
    }


def bundle_json(records: dict[str, npb.BundleRecord]) -> dict[str, Any]:
    """A bundle's outcome from each rollup's record: "status" overall (pending
    until every rollup agrees) and per rollup its vote, reason, heights and legs."""
    statuses = {
        r: npb.BundleRecord.Status.Name(x.status).removeprefix("STATUS_").lower()
        for r, x in records.items()
    }
    overall = "unknown"
    if statuses:
        values = set(statuses.values())
        overall = values.pop() if len(values) == 1 else "pending"
    return {
        "status": overall,
        "rollups": {
            r: {
                "status": statuses[r],
                "vote": "yes" if x.vote else "no",
                "reason": x.reason or None,
                "prepare_height": x.prepare_height,
                "decision_height": x.decision_height or None,
                "legs": [
                    {"index": leg.index, "ok": leg.ok, "reason": leg.reason or None}
                    for leg in x.legs
                ],
            }
            for r, x in records.items()
        },
    }


HEALTH_COLORS = {"SERVING": "green", "paused": "yellow", "not serving": "yellow", "down": "red"}


def styled_health(r: dict[str, Any]) -> str:
    word = health_word(r)
    return f"[{HEALTH_COLORS[word]}]{word}[/{HEALTH_COLORS[word]}]"


def styled_node_note(info: dict[str, Any]) -> str:
    """node_note in red (refusal, evidence) or yellow (stream), for tables."""
    note = node_note(info)
    color = "red" if info.get("refusal") or info.get("equivocation") else "yellow"
    if "ha_role" in info or "etcd_leader" in info:  # a role, not a complaint
        color = "green" if info.get("ha_role") == "leader" or info.get("etcd_leader") else "dim"
    return f"[{color}]{note}[/{color}]" if note else ""
