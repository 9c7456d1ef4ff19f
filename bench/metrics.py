"""Cost of Prometheus metrics (issue 9): the sequencer's acked/s and a node's
catch-up rate with metrics off and on, alternately, in one run.

    .venv/bin/python bench/metrics.py                   # a table, then a JSON line
    .venv/bin/python bench/metrics.py --json            # one JSON object only
    .venv/bin/python bench/metrics.py --rounds 1 --duration 4 --transfers 20000

Each round runs both variants, in alternating order (off, on; then on, off; ...),
each with fresh processes and data directories:

  sequencer   a real `python -m sequencer` (20 ms blocks) under bench/sequencer.py's
              load shapes: clients_8 (8 pipelining clients in 2 processes, window 8)
              and batched (SubmitBatch of 500 from 4 callers); acked/s of each.
  catch-up    a fresh alpha node, pinned to one core (taskset), replays a chain of
              `--transfers` signed transfers (built once at the start, bench/node.py's
              fill) from height 0; transfers/s from its start to the head.

"off" starts the process without --metrics-listen; "on" with --metrics-listen
127.0.0.1:0 while a thread of this script GETs its /metrics every second (as a
Prometheus would scrape it). The figure per variant is the median over the rounds;
on/off is its ratio. /proc/loadavg is recorded before and after: other work on the
machine moves every figure. Every process started is stopped by its pid."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from devnet.launcher import (  # noqa: E402
    METRICS_ANY_PORT,
    Launched,
    node_argv,
    sequencer_argv,
    start_process,
    stop_pid,
)


def _load(name: str, file: str) -> Any:
    """A bench script under another name (bench/sequencer.py would shadow the package)."""
    spec = importlib.util.spec_from_file_location(name, _HERE / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


nb = _load("bench_node", "node.py")
sb = nb.sb  # bench/sequencer.py as bench/node.py loaded it (one module: its classes pickle)

OFF, ON = "off", "on"
FIGURES: list[tuple[str, str]] = [
    ("clients_8_acked_per_s", "sequencer clients_8 acked/s"),
    ("batched_acked_per_s", "sequencer batched acked/s"),
    ("catchup_transfers_per_s", "node catch-up transfers/s (one core)"),
]
FOR_THE_RECORD: list[tuple[str, str]] = [
    ("clients_8_p99_ms", "clients_8 p99 ms"),
    ("catchup_node_cpu_s", "catch-up node CPU s"),
]


class Scraper:
    """GETs a metrics URL every `period` seconds in a thread, as Prometheus would."""

    def __init__(self, url: str | None, period: float = 1.0) -> None:
        self.url = url
        self.period = period
        self.scrapes = 0
        self.failures = 0
        self.seconds: list[float] = []
        self.last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        assert self.url is not None
        while True:  # one scrape at once, then one every period
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    self.last = r.read().decode()
                self.scrapes += 1
                self.seconds.append(time.perf_counter() - t)
            except OSError:
                self.failures += 1
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> Scraper:
        if self.url:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.url:
            self._thread.join(10)

    def summary(self) -> dict[str, Any]:
        return {
            "scrapes": self.scrapes,
            "scrape_failures": self.failures,
            "scrape_ms_p50": round(1000 * statistics.median(self.seconds), 2)
            if self.seconds
            else None,
        }


def _metrics_url(p: Launched) -> str | None:
    url = p.info.get("metrics")
    return str(url) if url else None


def run_sequencer(tmp: Path, variant: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """clients_8 then batched against a fresh sequencer, metrics off or on."""
    data, ready, log = tmp / "sequencer", tmp / "sequencer.ready", tmp / "sequencer.log"
    metrics = METRICS_ANY_PORT if variant == ON else None
    argv = sequencer_argv("127.0.0.1:0", data, ready, None, sb.BLOCK_INTERVAL_MS, metrics)
    seq = start_process("sequencer", "sequencer", None, argv, data, log, ready, detach=False)
    url = _metrics_url(seq)
    assert (url is not None) == (variant == ON), seq.info
    nonce_base = seed << 30
    out: dict[str, Any] = {}
    try:
        ep, span = seq.endpoint, args.warmup + args.duration
        with Scraper(url) as scraper:
            expiry = sb.head_height(ep) + sb.EXPIRY_BLOCKS
            per_client = int(span * sb.PER_CLIENT_CAP_PER_S)
            clients = [
                sb.ClientSpec(c, nonce_base + c * per_client, per_client, sb.WINDOW)
                for c in range(sb.CLIENTS)
            ]
            specs = [
                sb.WorkerSpec("tx", ep, cs, expiry, args.warmup, args.duration)
                for cs in sb.split(clients, sb.CLIENT_PROCS)
            ]
            c8 = sb.run_phase("clients_8", specs, seq.pid)
            expiry = sb.head_height(ep) + sb.EXPIRY_BLOCKS
            per_caller = int(span * sb.BATCH_CAP_PER_S / sb.BATCH_CALLERS)
            per_caller = per_caller // sb.BATCH_SIZE * sb.BATCH_SIZE
            base = nonce_base + (1 << 28)
            callers = [
                sb.ClientSpec(c % 10, base + c * per_caller, per_caller, 1)
                for c in range(sb.BATCH_CALLERS)
            ]
            specs = [
                sb.WorkerSpec("batch", ep, cs, expiry, args.warmup, args.duration, sb.BATCH_SIZE)
                for cs in sb.split(callers, sb.BATCH_PROCS)
            ]
            batched = sb.run_phase("batched", specs, seq.pid)
        if url is not None:
            # The last scrape saw the load: acknowledgements counted.
            assert "xrollup_sequencer_ack_latency_seconds_count" in scraper.last
        out = {
            "clients_8_acked_per_s": c8["acked_per_s"],
            "clients_8_p99_ms": c8["p99_ms"],
            "clients_8_other_cores_used": c8.get("other_cores_used"),
            "batched_acked_per_s": batched["acked_per_s"],
            "batched_other_cores_used": batched.get("other_cores_used"),
            "sequencer_scrapes": scraper.summary(),
        }
    finally:
        stop_pid(seq.pid, grace=10, popen=seq.popen)
    return out


def run_catchup(tmp: Path, chain: Path, head: int, variant: str, transfers: int) -> dict[str, Any]:
    """A fresh node (one core) replays the pre-built chain, metrics off or on."""
    ready, log = tmp / "chain.ready", tmp / "chain.log"
    argv = sequencer_argv("127.0.0.1:0", chain, ready, None, sb.BLOCK_INTERVAL_MS, None)
    seq = start_process("sequencer", "sequencer", None, argv, chain, log, ready, detach=False)
    node = None
    try:
        data, nready, nlog = tmp / "alpha", tmp / "alpha.ready", tmp / "alpha.log"
        metrics = METRICS_ANY_PORT if variant == ON else None
        argv = node_argv("alpha", seq.endpoint, "127.0.0.1:0", data, nready, None, metrics)
        if shutil.which("taskset"):
            argv = ["taskset", "-c", "1", *argv]
        started = time.perf_counter()
        node = start_process("alpha", "node", "alpha", argv, data, nlog, nready, detach=False)
        url = _metrics_url(node)
        assert (url is not None) == (variant == ON), node.info
        with Scraper(url) as scraper:
            done = asyncio.run(nb.wait_applied(node.endpoint, head, timeout=600))
        seconds = done - started
        if url is not None:
            assert "xrollup_node_apply_seconds_count" in scraper.last
        return {
            "catchup_transfers_per_s": round(transfers / seconds, 1),
            "catchup_blocks_per_s": round(head / seconds, 1),
            "catchup_seconds": round(seconds, 2),
            "catchup_node_cpu_s": round(nb._cpu_seconds(node.pid), 2),
            "node_scrapes": scraper.summary(),
        }
    finally:
        if node is not None:
            stop_pid(node.pid, grace=10, popen=node.popen)
        stop_pid(seq.pid, grace=10, popen=seq.popen)


def build_chain(tmp: Path, transfers: int) -> tuple[Path, int]:
    """A sequencer data directory holding `transfers` signed transfers on alpha."""
    chain = tmp / "chain"
    ready, log = tmp / "chain.ready", tmp / "chain.log"
    argv = sequencer_argv("127.0.0.1:0", chain, ready, None, sb.BLOCK_INTERVAL_MS, None)
    seq = start_process("sequencer", "sequencer", None, argv, chain, log, ready, detach=False)
    try:
        expiry = sb.head_height(seq.endpoint) + 90_000
        t = time.perf_counter()
        txs = nb.sign_many(transfers, expiry)
        sb.log(f"signed {len(txs)} transfers in {time.perf_counter() - t:.1f} s")
        head = asyncio.run(nb.fill(seq.endpoint, txs))
        sb.log(f"chain filled to height {head}")
    finally:
        stop_pid(seq.pid, grace=10, popen=seq.popen)
    return chain, head


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp_name:
        tmp = Path(tmp_name)
        chain, head = build_chain(tmp, args.transfers)
        for r in range(args.rounds):
            order = (OFF, ON) if r % 2 == 0 else (ON, OFF)
            for variant in order:
                run_dir = tmp / f"r{r}-{variant}"
                run_dir.mkdir()
                sb.log(f"round {r + 1}/{args.rounds}, metrics {variant}: sequencer")
                row: dict[str, Any] = {"round": r + 1, "variant": variant}
                row.update(run_sequencer(run_dir, variant, args, seed=2 * r + (variant == ON)))
                sb.log(f"round {r + 1}/{args.rounds}, metrics {variant}: catch-up")
                row.update(run_catchup(run_dir, chain, head, variant, args.transfers))
                sb.log(json.dumps(row))
                rounds.append(row)
                shutil.rmtree(run_dir, ignore_errors=True)
    summary: dict[str, Any] = {}
    for key, _label in FIGURES + FOR_THE_RECORD:
        off = statistics.median(x[key] for x in rounds if x["variant"] == OFF)
        on = statistics.median(x[key] for x in rounds if x["variant"] == ON)
        summary[key] = {"off": off, "on": on, "on_over_off": round(on / off, 3) if off else None}
    return {
        "summary": summary,
        "rounds": rounds,
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "transfers": args.transfers,
            "chain_height": head,
            "block_interval_ms": sb.BLOCK_INTERVAL_MS,
            "scrape_period_s": 1.0,
            "loadavg_before": load_before,
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
            "max_other_cores_used": max(
                (x[k] or 0.0)
                for x in rounds
                for k in ("clients_8_other_cores_used", "batched_other_cores_used")
            ),
            "cpus": os.cpu_count(),
            "commit": sb._git_head(),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    rows = [("figure (median)", "off", "on", "on/off")]
    for key, label in FIGURES + FOR_THE_RECORD:
        s = report["summary"][key]
        rows.append((label, f"{s['off']:,.1f}", f"{s['on']:,.1f}", f"{s['on_over_off']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print("rounds:")
    for x in report["rounds"]:
        print(
            f"  {x['round']} {x['variant']:>3}: clients_8 {x['clients_8_acked_per_s']:,.1f}/s"
            f" batched {x['batched_acked_per_s']:,.1f}/s"
            f" catch-up {x['catchup_transfers_per_s']:,.1f}/s"
            f" (scrapes: sequencer {x['sequencer_scrapes']['scrapes']},"
            f" node {x['node_scrapes']['scrapes']})"
        )
    print("config: " + json.dumps(report["config"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per load phase")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--transfers", type=int, default=50_000, help="transfers in the catch-up chain")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
