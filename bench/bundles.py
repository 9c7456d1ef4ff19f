"""Bundle benchmark: decision latency and committed bundles per second on a real
devnet (sequencer, alpha and beta as OS processes on 127.0.0.1, default block
interval).

    .venv/bin/python bench/bundles.py --json
    .venv/bin/python bench/bundles.py --count 3000 --window 128

Every bundle is an option open (the product's flow): a cash-secured put on
beta collateralized by a lien on alpha, signed by writer and holder, signed
before the clock starts. Bundles are submitted with `--window` in flight; a
follower on the sequencer's block stream timestamps each decision as it is
delivered. Figures:

  decision_latency_ms   submitted -> the block carrying its decision is delivered
  decision_blocks       decision height - inclusion height (p50, p99, max): also how
                        many blocks the collateral stays in escrow before the decision
  committed_per_s       committed bundles / (last decision - first submission)

Two phases on one devnet: throughput (--count bundles, --window in flight) and
latency at a fixed offered rate (--rate bundles/s for 5 s, open loop): the
decision-latency target is read at that rate, not at saturation, where queueing
in front of the nodes dominates.

Everything this script starts is stopped by pid in a finally block."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/sequencer.py would shadow the `sequencer` package: keep this folder off sys.path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from devnet import network  # noqa: E402
from xrollup import codec  # noqa: E402
from xrollup.client import Client, build_open_option  # noqa: E402
from xrollup.genesis import dev_genesis  # noqa: E402
from xrollup.keys import derive_dev_account  # noqa: E402
from xrollup.model import Bundle, Decision, OptionKind  # noqa: E402
from xrollup.v1 import types_pb2 as pb  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def presign(count: int, head: int, nonce_base: int = 0) -> list[pb.SignedBundle]:
    out = []
    for i in range(count):
        pair = i % 5
        writer, holder = derive_dev_account(2 * pair), derive_dev_account(2 * pair + 1)
        out.append(
            build_open_option(
                writer,
                holder,
                OptionKind.PUT,
                strike=2_000 * 10**6,
                size=10**6,  # 0.001 ETH: 2 USDC of collateral
                option_expiry_height=head + 50_000,
                premium=10_000,
                expiry_height=head + 3_000,
                nonce=nonce_base + i,
            )
        )
    return out


async def measure(
    sequencer: str, count: int, window: int, rate: float | None = None, nonce_base: int = 0
) -> dict[str, Any]:
    """Submit `count` open bundles, `window` in flight, or paced at `rate` per
    second (open loop) when given; follow the log until every one is decided."""
    async with Client(sequencer) as c:
        head = (await c.status()).height
        t = time.perf_counter()
        bundles = presign(count, head, nonce_base)
        sign_s = time.perf_counter() - t
        ids = {codec.decode_bundle(b).id for b in bundles}
        included: dict[bytes, int] = {}
        decided: dict[bytes, tuple[int, bool, float]] = {}
        submitted_at: dict[bytes, float] = {}
        done = asyncio.Event()

        async def follow() -> None:
            async for block in c.follow(head + 1):
                now = time.perf_counter()
                for e in codec.decode_block(block).entries:
                    if isinstance(e, Bundle) and e.id in ids:
                        included[e.id] = block.header.height
                    elif isinstance(e, Decision) and e.bundle_id in ids:
                        decided[e.bundle_id] = (block.header.height, e.commit, now)
                if len(decided) == len(ids):
                    done.set()
                    return

        follower = asyncio.create_task(follow())
        sem = asyncio.Semaphore(window)
        refused = 0

        async def submit(b: pb.SignedBundle) -> None:
            nonlocal refused
            async with sem:
                bid = codec.decode_bundle(b).id
                submitted_at[bid] = time.perf_counter()
                try:
                    await c.submit_bundle(b)
                except Exception:
                    refused += 1
                    ids.discard(bid)

        start = time.perf_counter()
        if rate:
            tasks = []
            for i, b in enumerate(bundles):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(submit(b)))
            await asyncio.gather(*tasks)
        else:
            await asyncio.gather(*(submit(b) for b in bundles))
        submit_s = time.perf_counter() - start
        try:
            await asyncio.wait_for(done.wait(), timeout=60)
        finally:
            follower.cancel()
        latencies = [(decided[i][2] - submitted_at[i]) * 1000 for i in decided]
        blocks = [float(decided[i][0] - included[i]) for i in decided if i in included]
        commits = sum(1 for v in decided.values() if v[1])
        last = max(v[2] for v in decided.values())
        return {
            "bundles": count,
            "refused": refused,
            "committed": commits,
            "aborted": len(decided) - commits,
            "committed_per_s": round(commits / (last - start), 1),
            "submitted_per_s": round(count / submit_s, 1),
            "decision_latency_ms": {
                "p50": round(percentile(latencies, 0.50), 1),
                "p99": round(percentile(latencies, 0.99), 1),
                "max": round(max(latencies), 1),
            },
            "decision_blocks": {
                "p50": percentile(blocks, 0.50),
                "p99": percentile(blocks, 0.99),
                "max": max(blocks),
                "mean": round(statistics.fmean(blocks), 2),
            },
            "presign_s": round(sign_s, 2),
        }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=3000, help="bundles to submit")
    ap.add_argument("--window", type=int, default=128, help="submissions in flight")
    ap.add_argument(
        "--rate", type=float, default=500.0, help="bundles/s of the latency phase (open loop)"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    genesis = dev_genesis()
    with tempfile.TemporaryDirectory(prefix="bench-bundles-") as tmp:
        # The devnet without its observer (the explorer), as the figures before it were.
        manifest = network.start_devnet(Path(tmp), explorer=False)
        try:
            seq = manifest.get("sequencer")
            assert seq is not None
            # Throughput: as many as the window allows. Latency: paced at --rate.
            result = asyncio.run(measure(seq.endpoint, args.count, args.window))
            paced = asyncio.run(
                measure(seq.endpoint, int(args.rate * 5), 4096, args.rate, nonce_base=10**9)
            )
            result["at_rate"] = {
                "rate": args.rate,
                "committed_per_s": paced["committed_per_s"],
                "decision_latency_ms": paced["decision_latency_ms"],
                "decision_blocks": paced["decision_blocks"],
            }
        finally:
            network.stop_devnet(Path(tmp))
    result["targets"] = {
        "decision_blocks_p99_le_3_at_rate": {
            "value": result["at_rate"]["decision_blocks"]["p99"],
            "threshold": 3,
            "pass": result["at_rate"]["decision_blocks"]["p99"] <= 3,
        },
        "committed_per_s_ge_500": {
            "value": result["committed_per_s"],
            "threshold": 500,
            "pass": result["committed_per_s"] >= 500,
        },
    }
    result["config"] = {
        "block_interval_ms": genesis.block_interval_ms,
        "window": args.window,
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
