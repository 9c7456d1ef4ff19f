"""Observe commands: what the running devnet is doing. `devnet watch` (a live
view: the sequencer's head and rates, each node's height, lag and refusals, the
faults in force; compute_watch_snapshot is its pure core) and `devnet bundle
status` (each rollup's record of a bundle); `devnet bundle trace` (a bundle's
timeline, devnet/lifecycle.py) is to join the `bundle` group here."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from grpc import aio
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from devnet import faults, lifecycle, network
from devnet.cli.common import (
    DATA_DIR_OPTION,
    JSON_OPTION,
    fail,
    handle_errors,
    parse_id,
    read_genesis,
    read_manifest,
    resolve_node,
    resolve_sequencer,
    run,
)
from devnet.cli.render import (
    HEALTH_COLORS,
    bundle_json,
    console,
    emit_json,
)
from devnet.scrape import compute_scrape_config
from devnet.status import collect_status, health_word, link_text, node_note
from xrollup.client import Client, NodeClient
from xrollup.v1 import node_pb2 as npb

# ---------------------------------------------------------------- watch

# Rates are over the blocks read in the last WINDOW_MS of sequencer time; a refresh
# reads at most MAX_READ new blocks (GetBlock sends whole blocks), the newest ones.
WINDOW_MS = 5_000
MAX_READ = 25


@dataclass(frozen=True)
class BlockSample:
    """What watch keeps of a block: its header's height, time and entry count."""

    height: int
    timestamp_ms: int
    entries: int


@dataclass(frozen=True)
class WatchSnapshot:
    """One refresh of `devnet watch`."""

    head: int | None  # the sequencer's height; None when it does not answer
    blocks_per_s: float | None  # over `window_blocks` blocks; None below two
    entries_per_s: float | None
    window_blocks: int
    processes: tuple[dict[str, Any], ...]  # name, role, rollup, health, height, lag, note
    faults: tuple[tuple[str, str], ...]  # (process, what is in force on it)

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "blocks_per_s": self.blocks_per_s,
            "entries_per_s": self.entries_per_s,
            "window_blocks": self.window_blocks,
            "processes": list(self.processes),
            "faults": [{"name": n, "what": w} for n, w in self.faults],
        }


def compute_window(
    window: Sequence[BlockSample], new: Sequence[BlockSample], span_ms: int = WINDOW_MS
) -> tuple[BlockSample, ...]:
    """The blocks rates are computed over: `window` extended by `new` (ascending
    heights) while heights stay consecutive (a gap or a lower height starts over
    from the new blocks), then only the last `span_ms` of sequencer time."""
    kept = list(window)
    for s in new:
        if kept and s.height != kept[-1].height + 1:
            kept = []
        kept.append(s)
    if kept:
        kept = [s for s in kept if s.timestamp_ms >= kept[-1].timestamp_ms - span_ms]
    return tuple(kept)


def compute_rates(window: Sequence[BlockSample]) -> tuple[float | None, float | None]:
    """(blocks/s, entries/s) over consecutive blocks: the blocks after the first,
    and their entries, over the sequencer time from the first to the last."""
    if len(window) < 2:
        return None, None
    seconds = (window[-1].timestamp_ms - window[0].timestamp_ms) / 1000
    if seconds <= 0:
        return None, None
    entries = sum(s.entries for s in window[1:])
    return round((len(window) - 1) / seconds, 1), round(entries / seconds, 1)


def compute_watch_snapshot(
    status_rows: Sequence[dict[str, Any]],
    fault_rows: Sequence[dict[str, Any]],
    window: Sequence[BlockSample],
) -> WatchSnapshot:
    """A refresh from what `devnet status` (collect_status rows) and `devnet
    faults` (devnet.faults.list_faults rows) read and the recent blocks: each
    process's health and height, a node's lag behind the head and why it stops or
    refuses (node_note, or that it is not connected), and what is in force on
    each process (down, paused, its link's partition, delay, byzantine mode)."""
    head = next((r["height"] for r in status_rows if r["role"] == "sequencer"), None)
    processes = []
    for r in status_rows:
        lag = None
        if r["role"] == "node" and head is not None and r["height"] is not None:
            lag = max(0, head - r["height"])
        note = node_note(r)
        if not note and r.get("connected") is False:
            note = "not connected to the sequencer"
        processes.append(
            {
                "name": r["name"],
                "role": r["role"],
                "rollup": r["rollup"],
                "health": health_word(r),
                "height": r["height"],
                "lag": lag,
                "note": note or None,
            }
        )
    in_force = []
    for f in fault_rows:
        parts = [] if f["state"] == "running" else [{"dead": "down"}.get(f["state"], f["state"])]
        if (link := link_text(f)) != "-":
            parts.append(link)
        if parts:
            in_force.append((f["name"], ", ".join(parts)))
    blocks_per_s, entries_per_s = compute_rates(window)
    return WatchSnapshot(
        head, blocks_per_s, entries_per_s, len(window), tuple(processes), tuple(in_force)
    )


async def read_blocks(endpoint: str, first: int, last: int) -> list[BlockSample]:
    """Heights first..last from the sequencer, as samples (nothing if it fails)."""
    async with Client(endpoint) as c:
        try:
            blocks = [await c.get_block(h, timeout=2.0) for h in range(first, last + 1)]
        except aio.AioRpcError:
            return []
    return [
        BlockSample(b.header.height, b.header.timestamp_ms, b.header.entry_count) for b in blocks
    ]


def read_snapshot(
    data_dir: Path, window: tuple[BlockSample, ...]
) -> tuple[WatchSnapshot, tuple[BlockSample, ...]]:
    """One refresh: what status and faults read, plus the blocks since `window`'s
    last (at most MAX_READ, the newest); the new window."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        fail(f"no devnet in {data_dir} (run `devnet up`)")
    rows = collect_status(manifest)
    fault_rows = [f.to_json() for f in faults.list_faults(data_dir)]
    seq = next((r for r in rows if r["role"] == "sequencer"), None)
    if seq is not None and seq["height"] is not None:
        head = seq["height"]
        after = window[-1].height if window and window[-1].height <= head else 0
        first = max(after + 1, head - MAX_READ + 1, 1)
        if first <= head:
            window = compute_window(window, run(read_blocks(seq["endpoint"], first, head)))
    return compute_watch_snapshot(rows, fault_rows, window), window


def render_watch(snap: WatchSnapshot, interval: float) -> RenderableType:
    def rate(x: float | None, what: str) -> str:
        return f"{x:,.1f} {what}/s" if x is not None else f"- {what}/s"

    head = "sequencer down" if snap.head is None else f"head {snap.head:,}"
    title = Text.assemble(
        ("devnet watch", "bold"),
        f"  {head}  {rate(snap.blocks_per_s, 'blocks')}  {rate(snap.entries_per_s, 'entries')}",
        (f"  (last {snap.window_blocks} blocks; every {interval:g} s, Ctrl-C stops)", "dim"),
    )
    table = Table("name", "role", "rollup", "health", "height", "lag", "note")
    for p in snap.processes:
        color = HEALTH_COLORS[p["health"]]
        table.add_row(
            p["name"],
            p["role"],
            p["rollup"] or "-",
            f"[{color}]{p['health']}[/{color}]",
            "-" if p["height"] is None else f"{p['height']:,}",
            "-" if p["lag"] is None else str(p["lag"]),
            f"[yellow]{p['note']}[/yellow]" if p["note"] else "",
        )
    if snap.faults:
        in_force = "faults in force: " + "; ".join(f"{n}: {w}" for n, w in snap.faults)
    else:
        in_force = "no faults in force"
    return Group(title, table, Text(in_force, style="red" if snap.faults else "green"))


@click.command()
@DATA_DIR_OPTION
@click.option(
    "--interval",
    type=click.FloatRange(0.1),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--count",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Stop after this many refreshes (0: until Ctrl-C).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per refresh, per line.")
@handle_errors
def watch(data_dir: Path, interval: float, count: int, as_json: bool) -> None:
    """A live view of the devnet, refreshed in place: the sequencer's head, blocks/s
    and entries/s (from the last blocks' headers), each process's health, each
    node's applied height, lag behind the head and refusal, and the faults in force.

    --json prints one snapshot per line: head, blocks_per_s, entries_per_s,
    window_blocks, processes [{name, role, rollup, health, height, lag, note}],
    faults [{name, what}]. Ctrl-C exits with code 0."""
    data_dir = data_dir.resolve()

    def refresh(show: Callable[[WatchSnapshot], None]) -> None:
        window: tuple[BlockSample, ...] = ()
        for done in itertools.count(1):
            started = time.monotonic()
            snap, window = read_snapshot(data_dir, window)
            show(snap)
            if done == count:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    with contextlib.suppress(KeyboardInterrupt):
        if as_json:
            refresh(lambda snap: click.echo(json.dumps(snap.to_json()), nl=True))
        else:
            with Live(console=console, auto_refresh=False) as live:
                refresh(lambda snap: live.update(render_watch(snap, interval), refresh=True))
            if not console.is_terminal:  # a terminal's Live ends its last line itself
                console.line()


@click.group()
def bundle() -> None:
    """Cross-rollup bundles: each rollup's record of one."""


@bundle.command("status")
@click.argument("bundle_id")
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def bundle_status(bundle_id: str, data_dir: Path, as_json: bool) -> None:
    """Pending, committed or aborted, with each rollup's vote, legs and heights."""
    data_dir = data_dir.resolve()
    genesis = read_genesis(data_dir)
    bid = parse_id(bundle_id)
    nodes = {r: ep for r in genesis.rollup_names if (ep := resolve_node(data_dir, r, None))}

    async def go() -> dict[str, npb.BundleRecord]:
        found = {}
        for r, ep in nodes.items():
            async with NodeClient(ep) as n:
                try:
                    found[r] = await n.bundle(bid)
                except aio.AioRpcError as e:
                    if e.code().name != "NOT_FOUND":
                        raise
        return found

    records = run(go())
    if not records:
        fail(f"no rollup knows bundle {bid.hex()} (not ordered yet, or not applied)")
    d = {"id": bid.hex(), **bundle_json(records)}
    if as_json:
        emit_json(d)
        return
    click.echo(f"bundle {d['id']}: {d['status']}")
    for r, rec in d["rollups"].items():
        click.echo(
            f"  {r}: {rec['status']}, voted {rec['vote']} at height {rec['prepare_height']},"
            f" decided at {rec['decision_height'] or '-'}"
            + (f": {rec['reason']}" if rec["reason"] else "")
        )
        for leg in rec["legs"]:
            click.echo(
                f"    leg {leg['index']}: {'ok' if leg['ok'] else 'refused: ' + str(leg['reason'])}"
            )


_STAGE_WORDS = {
    lifecycle.SUBMITTED: "admitted by the sequencer",
    lifecycle.ORDERED: "ordered",
    lifecycle.PREPARED: "prepared, vote ordered",
    lifecycle.DECIDED: "decided",
    lifecycle.FINISHED: "finished on node",
}


def _outcome_text(s: lifecycle.Stage) -> Text:
    if s.name == lifecycle.PREPARED:
        if s.ok is None:
            return Text("")
        return Text("yes", "green") if s.ok else Text(f"no: {s.reason}", "red")
    if s.name in (lifecycle.DECIDED, lifecycle.FINISHED) and s.ok is not None:
        if s.ok:
            return Text("commit", "green")
        return Text("abort" + (f": {s.reason}" if s.reason else ""), "red")
    return Text("")


def render_trace(trace: lifecycle.BundleTrace) -> RenderableType:
    """The timeline as a table: stage, where, height, ms since the previous stage,
    and the vote or decision with its reason."""
    table = Table(
        title=f"bundle {trace.id.hex()}: {trace.state}"
        + (f", {trace.total_ms} ms in all" if trace.total_ms is not None else ""),
        title_justify="left",
    )
    for col in ("stage", "where", "height", "+ms"):
        table.add_column(col, justify="right" if col in ("height", "+ms") else "left")
    table.add_column("outcome", overflow="fold")
    for s in trace.stages:
        table.add_row(
            _STAGE_WORDS.get(s.name, s.name),
            s.rollup or ("sequencer" if s.name != lifecycle.DECIDED else "log"),
            "-" if s.height is None else str(s.height),
            "-" if s.ms_since_previous is None else str(s.ms_since_previous),
            _outcome_text(s),
        )
    return table


def _trace_done(trace: lifecycle.BundleTrace, node_count: int) -> bool:
    finished = sum(1 for s in trace.stages if s.name == lifecycle.FINISHED)
    return trace.state in ("committed", "aborted") and finished >= node_count


@bundle.command("trace")
@click.argument("bundle_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for the bundle to be decided and finished on every node.",
)
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def bundle_trace(bundle_id: str, wait: float, data_dir: Path, as_json: bool) -> None:
    """A bundle's lifecycle: admitted, ordered at height h, prepared on each rollup
    (its vote and why), decided (commit or abort, why, at which height), finished on
    each node; block heights and milliseconds per stage (the explorer's bundle page
    shows the same timeline). Exit 1 when the sequencer never saw the bundle."""
    data_dir = data_dir.resolve()
    bid = parse_id(bundle_id)
    sequencer = resolve_sequencer(data_dir, None)
    manifest = read_manifest(data_dir)
    nodes = {
        p.name: (p.rollup, p.endpoint)
        for p in (manifest.processes if manifest else [])
        if p.role == "node" and p.rollup and network.is_running(p)
    }

    async def go() -> lifecycle.BundleTrace:
        async with Client(sequencer) as seq:
            clients = {n: (r, NodeClient(ep)) for n, (r, ep) in nodes.items()}
            try:
                deadline = time.monotonic() + wait
                while True:
                    trace = await lifecycle.trace_bundle(seq, clients, bid)
                    if _trace_done(trace, len(clients)) or time.monotonic() >= deadline:
                        return trace
                    await asyncio.sleep(0.1)
            finally:
                for _, c in clients.values():
                    await c.close()

    trace = run(go())
    if trace.state == "unknown":
        fail(f"the sequencer has no submission {bid.hex()} (never submitted, or refused)")
    if as_json:
        emit_json(trace.to_json())
        return
    console.print(render_trace(trace))


@click.command()
@click.option(
    "--prometheus-config",
    "as_config",
    is_flag=True,
    help="Print a prometheus.yml that scrapes every process of the devnet.",
)
@click.option(
    "--scrape-interval",
    default="5s",
    show_default=True,
    help="The config's scrape interval (a Prometheus duration: 1s, 500ms, ...).",
)
@DATA_DIR_OPTION
@JSON_OPTION
@handle_errors
def metrics(as_config: bool, scrape_interval: str, data_dir: Path, as_json: bool) -> None:
    """Each process's Prometheus metrics URL, or (--prometheus-config) a
    configuration for a Prometheus server to scrape them all:
    `prometheus --config.file <(devnet metrics --prometheus-config)`."""
    if not re.fullmatch(r"([0-9]+(ms|s|m|h))+", scrape_interval):
        raise click.BadParameter(
            f"{scrape_interval!r} is not a Prometheus duration (say 1s or 500ms)",
            param_hint="--scrape-interval",
        )
    data_dir = data_dir.resolve()
    manifest = read_manifest(data_dir)
    if manifest is None:
        fail(f"no devnet in {data_dir} (run `devnet up`)")
    if as_config:
        click.echo(compute_scrape_config(manifest, scrape_interval), nl=False)
        return
    urls = {p.name: p.metrics or None for p in manifest.processes if p.role != network.EXPLORER}
    if as_json:
        emit_json(urls)
        return
    for name, url in urls.items():
        click.echo(f"{name:<16} {url or '- (serves no metrics)'}")


COMMANDS = (watch, bundle, metrics)
