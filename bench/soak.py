"""Soak: a long batched load through a 4-rollup devnet, with retention on and off.

    .venv/bin/python bench/soak.py --json                  # 1,000,000 transactions, both runs
    .venv/bin/python bench/soak.py --count 100000          # a shorter soak

Per run (retention on: `--retain` blocks, 1,000 by default, for the sequencer's
blocks, the nodes' roots, headers and receipts and finished records in state; then
off: everything kept; the same pre-signed transactions each time):

  - a fresh devnet of 4 rollups (alpha, beta, gamma, delta; `devnet up` as users
    start it: sequencer, proxy, one node per rollup, the explorer) plus a second
    alpha node on the whole stream (--full-stream) beside alpha's filtered one;
  - `--count` valid transfers, a quarter per rollup, through SubmitBatch (1,000 per
    call, 4 callers), then every node catches up to the head;
  - RSS of every process sampled when 10 %, 50 % and 100 % of the transactions are
    acknowledged (growth 10->100 % and, after warm-up, 50->100 %);
  - disk per process at the end (its data directory), and per million transactions;
  - node CPU per block: CPU seconds of alpha's filtered node and of the full-stream
    one over the blocks they applied, from /proc (the same blocks, the same rollup).

Transactions are signed before the devnets start (spawned processes, both cores):
signing is the client's cost. Everything runs on 127.0.0.1; every process started
is stopped by its pid (devnet down; the extra node by its pid) in finally blocks."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import nacl.bindings  # noqa: E402
import nacl.signing  # noqa: E402

from devnet import launcher, network  # noqa: E402
from devnet.manifest import Manifest  # noqa: E402
from xrollup.client import Client, NodeClient  # noqa: E402
from xrollup.genesis import DEV_CHAIN_ID, dev_genesis, encode_genesis  # noqa: E402
from xrollup.keys import derive_dev_account  # noqa: E402
from xrollup.v1 import types_pb2 as pb  # noqa: E402

ROLLUPS = ("alpha", "beta", "gamma", "delta")
BATCH = 1_000
CALLERS = 4
EXPIRY = 90_000  # blocks: a million transfers take well under this at 20 ms blocks
MARKS = (0.10, 0.50, 1.00)


def log(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- signing


def _sign(job: tuple[str, int, int, int]) -> list[bytes]:
    """`count` transfers of 1 base unit of USDC on `rollup` from dev account
    `account` to the next, nonces from `nonce_base`: each valid and unique."""
    rollup, account, nonce_base, count = job
    key = derive_dev_account(account)
    sk = nacl.signing.SigningKey(key.seed)._signing_key
    body = pb.TxBody(
        chain_id=DEV_CHAIN_ID,
        rollup=rollup,
        sender=key.address,
        expiry_height=EXPIRY,
        action=pb.Action(
            transfer=pb.Transfer(
                to=derive_dev_account((account + 1) % 10).address, asset="USDC", amount=1
            )
        ),
    )
    out = []
    for i in range(count):
        body.nonce = nonce_base + i
        raw = body.SerializeToString()
        sig = nacl.bindings.crypto_sign(raw, sk)[:64]
        tx = pb.SignedTx(
            body=raw, signatures=[pb.Signature(public_key=key.public_key, signature=sig)]
        )
        out.append(tx.SerializeToString())
    return out


def sign_all(count: int) -> list[bytes]:
    """`count` transfers, a quarter per rollup, interleaved so every batch spans all
    four rollups; ten accounts per rollup."""
    per_job = -(-count // (len(ROLLUPS) * 10))
    jobs = [(r, a, 1_000_000 + a * per_job, per_job) for r in ROLLUPS for a in range(10)]
    with mp.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
        chunks = pool.map(_sign, jobs)
    out: list[bytes] = []
    for i in range(per_job):
        out.extend(chunk[i] for chunk in chunks)
    return out[:count]


# ---------------------------------------------------------------- measuring


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def submit_all(
    endpoint: str, txs: list[bytes], on_progress: Callable[[int], None]
) -> tuple[int, float]:
    """Submit every transaction in batches; returns (acknowledged, seconds)."""
    queue = list(range(0, len(txs), BATCH))
    queue.reverse()
    acked = 0
    start = time.perf_counter()
    async with Client(endpoint) as c:

        async def caller() -> None:
            nonlocal acked
            while queue:
                i = queue.pop()
                part = [pb.SignedTx.FromString(b) for b in txs[i : i + BATCH]]
                items = await c.submit_batch(part, timeout=300)
                bad = [x for x in items if not x.ok]
                if bad:
                    raise RuntimeError(f"refused: {bad[0].code.name} {bad[0].message}")
                acked += len(items)
                on_progress(acked)

        await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return acked, time.perf_counter() - start


# ---------------------------------------------------------------- one run


def start_devnet(d: Path, retain: int) -> Manifest:
    """The 4-rollup devnet keeping `retain` blocks of history (sequencer blocks,
    node roots, headers and receipts, finished records in state); 0 keeps all."""
    d.mkdir(parents=True)
    genesis = dev_genesis(rollups=ROLLUPS)
    genesis = replace(genesis, limits=replace(genesis.limits, record_retention_blocks=retain))
    (d / "genesis.json").write_text(encode_genesis(genesis))
    return network.start_devnet(d, retain_blocks=retain)


def run_once(tmp: Path, txs: list[bytes], retain: int) -> dict[str, Any]:
    label = f"on ({retain} blocks)" if retain else "off"
    d = tmp / f"retention-{retain}"
    log(f"retention {label}: starting a {len(ROLLUPS)}-rollup devnet in {d}")
    manifest = start_devnet(d, retain)
    full = None
    try:
        seq = manifest.get("sequencer")
        alpha = manifest.get("alpha")
        assert seq is not None and alpha is not None
        full_dir = d / "alpha-full"
        argv = launcher.node_argv(
            "alpha",
            seq.endpoint,
            "127.0.0.1:0",
            full_dir,
            d / "alpha-full.ready",
            d / "genesis.json",
            retain_blocks=retain,
        )
        full = launcher.start_process(
            "alpha-full",
            "node",
            "alpha",
            [*argv, "--full-stream"],
            full_dir,
            d / "logs" / "alpha-full.log",
            d / "alpha-full.ready",
            detach=False,
        )
        # What each process writes: its data directory, or (the proxy and the
        # explorer keep none of their own) its log.
        procs = {
            p.name: (p.pid, Path(p.data_dir) if Path(p.data_dir) != d.resolve() else Path(p.log))
            for p in manifest.processes
        }
        procs["alpha-full"] = (full.pid, full_dir)
        cpu0 = {n: cpu_seconds(procs[n][0]) for n in ("alpha", "alpha-full")}
        rss: dict[str, dict[str, int]] = {}
        marks = [int(m * len(txs)) for m in MARKS]

        def on_progress(acked: int) -> None:
            while marks and acked >= marks[0]:
                mark = f"{round(100 * marks.pop(0) / len(txs))}%"
                rss[mark] = {n: rss_bytes(pid) for n, (pid, _) in procs.items()}
                log(
                    f"  {mark} acknowledged: RSS MiB "
                    + ", ".join(f"{n} {v / 2**20:.0f}" for n, v in rss[mark].items())
                )

        acked, seconds = asyncio.run(submit_all(seq.endpoint, txs, on_progress))
        head, caught_up = asyncio.run(wait_all(seq.endpoint, manifest, full.endpoint))
        log(
            f"  {acked:,} acknowledged in {seconds:.1f} s;"
            f" every node at head {head} after {caught_up:.1f} s more"
        )
        cpu = {n: cpu_seconds(procs[n][0]) - cpu0[n] for n in cpu0}
        disk = {n: disk_bytes(path) for n, (_, path) in procs.items()}
        return {
            "retain_blocks": retain,
            "transactions": acked,
            "seconds": round(seconds, 1),
            "acked_per_s": round(acked / seconds),
            "head": head,
            "catch_up_s": round(caught_up, 1),
            "rss_mib": {m: {n: round(v / 2**20, 1) for n, v in r.items()} for m, r in rss.items()},
            "rss_growth_10_to_100": {
                n: round(rss["100%"][n] / rss["10%"][n], 2) for n in rss["100%"] if rss["10%"][n]
            },
            # After warm-up: the bounded caches (recent blocks, filtered blocks, the
            # explorer's index, LevelDB's) fill during the first half.
            "rss_growth_50_to_100": {
                n: round(rss["100%"][n] / rss["50%"][n], 2) for n in rss["100%"] if rss["50%"][n]
            },
            "disk_mib": {n: round(v / 2**20, 1) for n, v in disk.items()},
            "disk_mib_per_million": {
                n: round(v / 2**20 * 1_000_000 / max(1, acked), 1) for n, v in disk.items()
            },
            "node_cpu_ms_per_block": {
                "filtered (alpha)": round(1000 * cpu["alpha"] / head, 3),
                "full stream (alpha-full)": round(1000 * cpu["alpha-full"] / head, 3),
            },
        }
    finally:
        if full is not None:
            launcher.stop_pid(full.pid, grace=5.0, popen=full.popen)
        network.stop_devnet(d, grace=10.0)


async def wait_all(sequencer: str, manifest: Manifest, extra: str) -> tuple[int, float]:
    start = time.perf_counter()
    async with Client(sequencer) as c:
        head = int((await c.status()).height)
    nodes = [p.endpoint for p in manifest.processes if p.role == "node"] + [extra]
    for ep in nodes:
        async with NodeClient(ep) as n:
            await n.wait_for_height(head, timeout=900, poll=0.05)
    return head, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=1_000_000, help="transactions per run")
    ap.add_argument("--runs", choices=("both", "on", "off"), default="both", help="retention runs")
    ap.add_argument(
        "--retain",
        type=int,
        default=1_000,
        help="blocks of history kept in the 'on' run (the default window, 10,000, is"
        " longer than a million transfers take at 20 ms blocks)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    load_at_start = os.getloadavg()[0]
    log(f"signing {args.count:,} transfers over {', '.join(ROLLUPS)}")
    t = time.perf_counter()
    txs = sign_all(args.count)
    log(f"signed in {time.perf_counter() - t:.1f} s")
    runs = {"both": (args.retain, 0), "on": (args.retain,), "off": (0,)}[args.runs]
    with tempfile.TemporaryDirectory(prefix="xrollup-soak-") as tmp:
        results = [run_once(Path(tmp), txs, r) for r in runs]
    report = {
        "count": args.count,
        "rollups": list(ROLLUPS),
        "load_average_at_start": load_at_start,
        "runs": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in results:
            print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
