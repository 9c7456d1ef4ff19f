"""Cost of signed headers (issue 8): the same benchmarks on the base commit (before
signed headers, default ab2bb89) and on this working tree, in one run.

    .venv/bin/python bench/headers.py                   # a table, then a JSON line
    .venv/bin/python bench/headers.py --json            # one JSON object only
    .venv/bin/python bench/headers.py --rounds 1 --duration 4 --transfers 30000

The base commit is checked out with `git worktree add --detach` in a temporary
directory (removed at the end, also on error). Then, alternately base, head, base,
head ... for `--rounds` rounds, each tree runs its OWN bench scripts and code:

    python bench/sequencer.py --json --phases clients_8,batched --duration D
    python bench/node.py --json --transfers N --duration D

with cwd = that tree and PYTHONPATH = that tree, using the same interpreter (this
venv). PYTHONPATH comes before the venv's editable install of /work/main, and every
process the benches start inherits both; a check before the runs prints where each
tree imports sequencer, rollup_node, xrollup and devnet from and stops if any module
comes from the other tree.

Metrics (the median over the rounds per tree):
  clients_8 acked/s        bench/sequencer.py clients_8.acked_per_s
  batched acked/s          bench/sequencer.py batched.acked_per_s
  catch-up transfers/s     bench/node.py catchup.transfers_per_s (node on one core)
and, for the record (not judged): catch-up transfers per node CPU-second and the
steady lag p99. A metric is within budget when head / base >= 0.90 (signing and
verifying headers cost at most 10%). Other processes on the machine move every
figure: /proc/loadavg is recorded before and after, and each sequencer phase says how
many cores the rest of the machine used (other_cores_used)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "ab2bb89"
BUDGET = 0.90  # head / base must stay at or above this
MODULES = ("sequencer", "rollup_node", "xrollup", "devnet")

# (key, label, judged, getter on {"sequencer": report, "node": report})
METRICS: list[tuple[str, str, bool, Any]] = [
    (
        "clients_8_acked_per_s",
        "clients_8 acked/s",
        True,
        lambda r: r["sequencer"]["clients_8"]["acked_per_s"],
    ),
    (
        "batched_acked_per_s",
        "batched acked/s",
        True,
        lambda r: r["sequencer"]["batched"]["acked_per_s"],
    ),
    (
        "catchup_transfers_per_s",
        "catch-up transfers/s",
        True,
        lambda r: r["node"]["catchup"]["transfers_per_s"],
    ),
    (
        "catchup_transfers_per_cpu_s",
        "catch-up transfers/CPU-s",
        False,
        lambda r: round(
            r["node"]["catchup"]["transfers"] / r["node"]["catchup"]["node_cpu_seconds"], 1
        ),
    ),
    (
        "steady_lag_blocks_p99",
        "steady lag p99 (blocks)",
        False,
        lambda r: r["node"]["steady_lag"]["lag_blocks_p99"],
    ),
]


def log(msg: str) -> None:
    print(f"[headers] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def tree_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(tree: Path) -> dict[str, str]:
    """Where `tree` imports each package from; exits if any comes from elsewhere."""
    code = (
        "import importlib, json; "
        f"print(json.dumps({{m: importlib.import_module(m).__file__ for m in {list(MODULES)!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=tree_env(tree),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    files: dict[str, str] = json.loads(out)
    for mod, file in files.items():
        if not Path(file).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"{tree}: {mod} imports from {file}, not from this tree")
    return files


def run_bench(tree: Path, argv: list[str], label: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, *argv]
    log(f"{label}: {' '.join(argv)} (cwd {tree})")
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=tree, env=tree_env(tree), capture_output=True, text=True, timeout=timeout
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        raise RuntimeError(f"{label} failed with code {proc.returncode}:\n{tail}")
    log(f"{label}: done in {took:.0f} s")
    report: dict[str, Any] = json.loads(proc.stdout)
    report["_wall_s"] = round(took, 1)
    return report


def one_round(tree: Path, args: argparse.Namespace, label: str) -> dict[str, Any]:
    d = f"{args.duration:g}"
    seq = run_bench(
        tree,
        ["bench/sequencer.py", "--json", "--phases", "clients_8,batched", "--duration", d],
        f"{label} sequencer",
        args.timeout,
    )
    node = run_bench(
        tree,
        ["bench/node.py", "--json", "--transfers", str(args.transfers), "--duration", d],
        f"{label} node",
        args.timeout,
    )
    run = {"sequencer": seq, "node": node, "loadavg_after": loadavg()}
    run["metrics"] = {key: get(run) for key, _, _, get in METRICS}
    run["other_cores_used"] = {
        p: seq[p].get("other_cores_used") for p in ("clients_8", "batched") if p in seq
    }
    log(f"{label}: {run['metrics']} other cores {run['other_cores_used']}")
    return run


def summarize(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, label, judged, _ in METRICS:
        base = statistics.median(r["metrics"][key] for r in runs["base"])
        head = statistics.median(r["metrics"][key] for r in runs["head"])
        ratio = round(head / base, 3) if base else None
        rows.append(
            {
                "metric": key,
                "label": label,
                "base": base,
                "head": head,
                "ratio": ratio,
                "base_runs": [r["metrics"][key] for r in runs["base"]],
                "head_runs": [r["metrics"][key] for r in runs["head"]],
                "judged": judged,
                "within_10pct": (ratio is not None and ratio >= BUDGET) if judged else None,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'metric':<26} {'base':>12} {'head':>12} {'head/base':>10}  within 10%"
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = "-" if r["within_10pct"] is None else ("yes" if r["within_10pct"] else "NO")
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"{r['label']:<26} {r['base']:>12,.1f} {r['head']:>12,.1f} {ratio:>10}  {ok}")
    for r in rows:
        print(f"  {r['label']}: base runs {r['base_runs']}, head runs {r['head_runs']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", default=DEFAULT_BASE, help="git ref before signed headers")
    p.add_argument("--rounds", type=int, default=2, help="base/head pairs, alternated")
    p.add_argument("--duration", type=float, default=4.0, help="--duration of both benches")
    p.add_argument("--transfers", type=int, default=30_000, help="bench/node.py --transfers")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per bench run")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args(argv)

    started = time.monotonic()
    load_before = loadavg()
    base_commit = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    head_commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-headers-"))
    base_tree = tmp / "base"
    log(f"loadavg before: {load_before}")
    log(f"worktree of {args.base} ({base_commit[:12]}) at {base_tree}")
    git("worktree", "add", "--detach", str(base_tree), base_commit)
    try:
        trees = {"base": base_tree, "head": ROOT}
        imports = {name: check_imports(tree) for name, tree in trees.items()}
        for name, files in imports.items():
            log(f"{name} imports: {files}")
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        for i in range(args.rounds):
            for name in ("base", "head"):
                runs[name].append(one_round(trees[name], args, f"round {i + 1} {name}"))
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(base_tree)],
            cwd=ROOT,
            capture_output=True,
        )
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed worktree {base_tree}")

    rows = summarize(runs)
    load_after = loadavg()
    report = {
        "rows": rows,
        "budget_ratio": BUDGET,
        "all_within_10pct": all(r["within_10pct"] for r in rows if r["judged"]),
        "config": {
            "base": args.base,
            "base_commit": base_commit[:12],
            "head_commit": head_commit[:12],
            "head_tree_dirty": dirty,
            "rounds": args.rounds,
            "order": "base, head alternated per round",
            "duration_s": args.duration,
            "transfers": args.transfers,
            "python": sys.executable,
            "cpu_count": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "imports": imports,
            "wall_s": round(time.monotonic() - started, 1),
        },
        "runs": {
            name: [
                {
                    "metrics": r["metrics"],
                    "other_cores_used": r["other_cores_used"],
                    "loadavg_after": r["loadavg_after"],
                    "sequencer_wall_s": r["sequencer"]["_wall_s"],
                    "node_wall_s": r["node"]["_wall_s"],
                }
                for r in rs
            ]
            for name, rs in runs.items()
        },
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"signed headers cost: base {args.base} ({base_commit[:12]}) vs head "
        f"{head_commit[:12]}{' + uncommitted changes' if dirty else ''}; "
        f"{args.rounds} round(s), duration {args.duration:g} s, {args.transfers} transfers"
    )
    print(f"loadavg before: {load_before}")
    print(f"loadavg after:  {load_after}")
    print_table(rows)
    for name, rs in report["runs"].items():
        for i, r in enumerate(rs):
            print(f"  {name} round {i + 1}: other cores used {r['other_cores_used']}")
    verdict = "yes" if report["all_within_10pct"] else "NO"
    print(f"all judged metrics within 10%: {verdict}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
