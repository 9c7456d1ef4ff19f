"""Start-up time (issue 10): `devnet up` to every process healthy against Hardhat's
`hardhat node` to answering JSON-RPC, alternately, in one run on this machine.

    .venv/bin/python bench/startup.py                   # a table, then a JSON line
    .venv/bin/python bench/startup.py --json            # one JSON object only
    .venv/bin/python bench/startup.py --rounds 3 --hardhat-dir /tmp/hh   # reuse an install

Hardhat is installed with npm into a temporary folder (`npm init -y`, `npm install
hardhat@2`, a config file of one empty network), removed at the end unless
--hardhat-dir names a folder to keep and reuse. Hardhat 2, because Hardhat 3 refuses
to run on Node.js older than 22.13 (this machine has Node.js 20); --hardhat-spec
picks another.

Each round times both, in alternating order (devnet, hardhat; then hardhat, devnet):

  devnet up     `.venv/bin/devnet up --data-dir <fresh temporary directory>`, from the
                command's start to its exit; the command returns only when every
                process is healthy, which the script then checks at once (the
                sequencer and every node answer SERVING on grpc.health.v1, every proxy
                route accepts a connection, the explorer answers its home page). Then
                `devnet down`, and every pid of devnet.json must be gone.
  hardhat node  `node_modules/.bin/hardhat node --hostname 127.0.0.1 --port <free>` (what
                `npx hardhat node` runs, without npx's own start), from its start to its
                first answer to eth_chainId, polled every 10 ms. Stopped by its process
                group (SIGTERM, then SIGKILL).
  npx           (--npx) the same through `npx hardhat node`, for the record.

One uncounted round of each comes first (file caches). The figure of each is the
median of the rounds; devnet/hardhat is their ratio (the target is <= 1).
/proc/loadavg is recorded before and after: other work on the machine moves every
figure. Only npm install uses the network; everything else is loopback."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from devnet.launcher import check_health, is_alive  # noqa: E402
from devnet.manifest import load_manifest  # noqa: E402
from devnet.network import parse_routes  # noqa: E402

DEVNET = Path(sys.executable).parent / "devnet"
CHAIN_ID = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
HARDHAT_CONFIG = "module.exports = { networks: { hardhat: {} } };\n"
DEVNET_UP, HARDHAT, NPX = "devnet_up", "hardhat_node", "npx_hardhat_node"


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- hardhat


def install_hardhat(folder: Path, spec: str, quiet: bool) -> None:
    """npm init and npm install `spec` into `folder`, and a config with one network."""
    if not (folder / "node_modules" / ".bin" / "hardhat").exists():
        folder.mkdir(parents=True, exist_ok=True)
        out = subprocess.DEVNULL if quiet else None
        subprocess.run(["npm", "init", "-y"], cwd=folder, check=True, stdout=out)
        npm = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", spec]
        subprocess.run(npm, cwd=folder, check=True, stdout=out)
    (folder / "hardhat.config.js").write_text(HARDHAT_CONFIG)


def hardhat_version(folder: Path) -> str:
    package = folder / "node_modules" / "hardhat" / "package.json"
    return str(json.loads(package.read_text())["version"])


def answers_chain_id(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        json.dumps(CHAIN_ID).encode(),
        {"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1.0) as r:
            return "result" in json.loads(r.read())
    except (OSError, ValueError):
        return False


def time_hardhat(folder: Path, npx: bool, timeout: float = 60.0) -> float:
    """Seconds from starting `hardhat node` to its first eth_chainId answer."""
    port = free_port()
    command = ["npx", "hardhat"] if npx else [str(folder / "node_modules" / ".bin" / "hardhat")]
    argv = [*command, "node", "--hostname", "127.0.0.1", "--port", str(port)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: npx's children stop with it
    )
    try:
        while not answers_chain_id(port):
            if proc.poll() is not None:
                raise RuntimeError(f"hardhat node exited with code {proc.returncode}")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"hardhat node did not answer within {timeout}s")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group we started, SIGKILL it after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still alive


# ---------------------------------------------------------------- devnet


def check_all_healthy(data_dir: Path) -> list[str]:
    """Every process of devnet.json, checked once: what is not healthy (empty: all are)."""
    manifest = load_manifest(data_dir)
    if manifest is None:
        return ["no devnet.json"]
    bad = []
    for p in manifest.processes:
        if p.role in ("sequencer", "node"):
            ok = check_health(p.endpoint, timeout=1.0)
        elif p.role == "proxy":
            ok = all(_accepts(listen) for _, listen in parse_routes(p.argv))
        else:
            ok = _http_ok(f"http://{p.endpoint}/")
        if not ok:
            bad.append(p.name)
    return bad


def _accepts(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def time_devnet_up(scratch: Path) -> tuple[float, list[str]]:
    """Seconds of `devnet up` on a fresh directory; the processes it started."""
    data_dir = Path(tempfile.mkdtemp(prefix="devnet-", dir=scratch))
    up = [str(DEVNET), "up", "--data-dir", str(data_dir)]
    try:
        start = time.perf_counter()
        done = subprocess.run(up, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"devnet up failed ({done.returncode}): {done.stdout}{done.stderr}")
        bad = check_all_healthy(data_dir)
        if bad:
            raise RuntimeError(f"devnet up returned before these were healthy: {bad}")
        manifest = load_manifest(data_dir)
        assert manifest is not None
        return elapsed, [p.name for p in manifest.processes]
    finally:
        down(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def down(data_dir: Path) -> None:
    """`devnet down`, then every pid of devnet.json must be gone."""
    manifest = load_manifest(data_dir)
    subprocess.run(
        [str(DEVNET), "down", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    if manifest is not None:
        left = [p.name for p in manifest.processes if p.pid > 0 and is_alive(p.pid, p.argv)]
        if left:
            raise RuntimeError(f"devnet down left {left} running")


# ---------------------------------------------------------------- the run


def summary(runs: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(runs), 3),
        "min_s": round(min(runs), 3),
        "max_s": round(max(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
    }


def run(rounds: int, folder: Path, scratch: Path, npx: bool, log: Any) -> dict[str, Any]:
    times: dict[str, list[float]] = {DEVNET_UP: [], HARDHAT: []}
    if npx:
        times[NPX] = []
    processes: list[str] = []
    log("warm-up (not counted): one devnet up, one hardhat node")
    time_devnet_up(scratch)
    time_hardhat(folder, npx=False)
    load_before = loadavg()
    for i in range(rounds):
        order = [DEVNET_UP, HARDHAT] if i % 2 == 0 else [HARDHAT, DEVNET_UP]
        for what in order + ([NPX] if npx else []):
            if what == DEVNET_UP:
                t, processes = time_devnet_up(scratch)
            else:
                t = time_hardhat(folder, npx=what == NPX)
            times[what].append(t)
            log(f"round {i + 1}/{rounds}  {what:<17} {t:.3f} s")
    out: dict[str, Any] = {name: summary(runs) for name, runs in times.items()}
    ratio = out[DEVNET_UP]["median_s"] / out[HARDHAT]["median_s"]
    out.update(
        rounds=rounds,
        devnet_over_hardhat=round(ratio, 3),
        met=ratio <= 1.0,
        devnet_processes=processes,
        hardhat_version=hardhat_version(folder),
        node_version=subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        python=sys.version.split()[0],
        # PYTHONDONTWRITEBYTECODE=1 leaves modules without a bytecode cache compiled
        # at every start.
        python_writes_bytecode=not sys.flags.dont_write_bytecode,
        cpus=os.cpu_count(),
        loadavg_before=load_before,
        loadavg_after=loadavg(),
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="runs of each (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument(
        "--hardhat-dir",
        type=Path,
        default=None,
        help="install Hardhat here and keep it (reused when it is there already)",
    )
    p.add_argument("--hardhat-spec", default="hardhat@2", help="what npm installs")
    p.add_argument("--npx", action="store_true", help="also time `npx hardhat node`")
    args = p.parse_args()

    def log(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = args.hardhat_dir.resolve() if args.hardhat_dir else Path(tmp) / "hardhat"
        log(f"installing {args.hardhat_spec} with npm into {folder}")
        install_hardhat(folder, args.hardhat_spec, quiet=args.json)
        scratch = Path(tmp) / "devnets"
        scratch.mkdir()
        result = run(args.rounds, folder, scratch, args.npx, log)
    if not args.json:
        print()
        for name in (DEVNET_UP, HARDHAT, NPX):
            if name in result:
                r = result[name]
                print(f"{name:<17} median {r['median_s']:.3f} s  runs {r['runs_s']}")
        verdict = "met" if result["met"] else "missed"
        print(f"devnet up / hardhat node = {result['devnet_over_hardhat']} ({verdict})")
        print(f"load {result['loadavg_before']} -> {result['loadavg_after']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
