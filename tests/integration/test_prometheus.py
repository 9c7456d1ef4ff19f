"""A real Prometheus scrapes a real devnet (sequencer, proxy, alpha, beta as
processes on 127.0.0.1, each serving metrics on a port of its own) with the
configuration devnet.scrape computes from devnet.json:

- every target comes up, labelled with its process name (and rollup for nodes);
- after transfers, a batch, two refused submissions and an option-open bundle, the
  series Prometheus stores say what happened: the head and applied heights, the
  admissions by outcome and status code, the committed bundle on both rollups,
  the block interval histogram, the proxy's connections and bytes;
- each process's /metrics, scraped directly, has every metric the README's
  Metrics table lists for it; a fault set on the proxy shows in its gauge.

Prometheus (the Debian package, /usr/bin/prometheus) runs on a free port of
127.0.0.1 with a temporary storage directory and is stopped by its pid."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from devnet import network
from devnet.launcher import stop_pid
from devnet.manifest import Manifest
from devnet.scrape import compute_scrape_config
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_transfer,
    compute_submission_id,
    wait_for_decision,
)
from xrollup.genesis import DEV_CHAIN_ID
from xrollup.keys import derive_dev_account, derive_oracle_key
from xrollup.model import OptionKind
from xrollup.v1 import types_pb2 as pb

PROMETHEUS = Path("/usr/bin/prometheus")
README = Path(__file__).resolve().parents[2] / "README.md"
PROCESSES = ("sequencer", "node", "proxy")
USDC, ETH = 10**6, 10**9

pytestmark = pytest.mark.skipif(
    not PROMETHEUS.exists(),
    reason="Prometheus is not installed (/usr/bin/prometheus; `make system-deps` installs"
    " the Debian package prometheus)",
)


def readme_metrics() -> dict[str, set[str]]:
    """The metric names the README's Metrics table lists, by process."""
    section = README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`(xrollup_[a-z_<>]+)`", line.split("|")[1]))
    by_process: dict[str, set[str]] = {p: set() for p in PROCESSES}
    for name in names:
        for process in PROCESSES:
            if "<process>" in name:
                by_process[process].add(name.replace("<process>", process))
            elif name.startswith(f"xrollup_{process}_"):
                by_process[process].add(name)
    return by_process


def exposed_names(text: str) -> set[str]:
    """Every metric family (# TYPE lines) and sample name in an exposition."""
    families = set(re.findall(r"(?m)^# TYPE (\S+) ", text))
    samples = set(re.findall(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text))
    return families | samples


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A Prometheus server this test started, and its HTTP API."""

    def __init__(self, base: str, popen: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.popen = popen

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        doc = json.loads(http_get(f"{self.base}/api/v1/{path}{query}"))
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        return [
            (r["metric"], float(r["value"][1])) for r in self.api("query", query=promql)["result"]
        ]

    def wait_query(
        self,
        promql: str,
        ok: Callable[[list[tuple[dict[str, str], float]]], bool],
        timeout: float = 30.0,
    ) -> list[tuple[dict[str, str], float]]:
        """The query's result once `ok` holds (scrapes come every second), printed."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if ok(result) or time.monotonic() > deadline:
                shown = [f"{_labels(m)} = {v:g}" for m, v in result] or ["(no series)"]
                print(f"{promql}\n    " + "\n    ".join(shown))
                return result
            time.sleep(0.5)


def _labels(metric: dict[str, str]) -> str:
    keep = {k: v for k, v in sorted(metric.items()) if k not in ("job", "instance")}
    return "{" + ", ".join(f"{k}={v!r}" for k, v in keep.items()) + "}"


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Start /usr/bin/prometheus with a configuration text on a free port of
    127.0.0.1 and its own storage directory; stopped by pid at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> Prometheus:
        path = tmp_path / "prometheus.yml"
        path.write_text(config)
        for _attempt in range(3):  # the free port may be taken before Prometheus binds it
            port = free_port()
            with open(tmp_path / "prometheus.log", "ab") as log:
                popen = subprocess.Popen(
                    [
                        str(PROMETHEUS),
                        f"--config.file={path}",
                        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            started.append(popen)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while popen.poll() is None and time.monotonic() < deadline:
                try:
                    http_get(f"{base}/-/ready", timeout=1)
                    return Prometheus(base, popen)
                except OSError:
                    time.sleep(0.2)
            stop_pid(popen.pid, grace=5, popen=popen)
        log_text = (tmp_path / "prometheus.log").read_text()[-2000:]
        raise AssertionError(f"Prometheus did not become ready:\n{log_text}")

    yield start
    for popen in started:
        stop_pid(popen.pid, grace=10, popen=popen)


async def _workload(manifest: Manifest) -> dict[str, int]:
    """Transfers, a batch, two refused submissions and an option open that
    commits; what the sequencer should count."""
    seq_ep = manifest.get("sequencer").endpoint  # type: ignore[union-attr]
    nodes = {p.rollup: p.endpoint for p in manifest.processes if p.role == "node"}
    alice, bob = derive_dev_account(0), derive_dev_account(1)
    writer, holder = derive_dev_account(2), derive_dev_account(3)
    async with (
        Client(seq_ep) as seq,
        NodeClient(nodes["alpha"]) as alpha,
        NodeClient(nodes["beta"]) as beta,
    ):
        head = (await seq.status()).height
        expiry = head + 500
        singles = [
            build_transfer(alice, rollup, bob.address, "USDC", 1_000 + i, expiry)
            for i, rollup in enumerate(["alpha", "alpha", "alpha", "beta", "beta"])
        ]
        price = build_price_update(
            derive_oracle_key(), "beta", "ETH", "USDC", 3_000 * USDC, expiry, DEV_CHAIN_ID
        )
        for tx in [*singles, price]:
            await seq.submit_tx(tx)
        for tx, node in zip([*singles, price], [alpha] * 3 + [beta] * 3, strict=True):
            assert (await node.wait_for_receipt(compute_submission_id(tx))).ok

        bad = pb.SignedTx()
        bad.CopyFrom(build_transfer(alice, "alpha", bob.address, "USDC", 7, expiry))
        bad.signatures[0].signature = bytes(64)  # does not verify: UNAUTHENTICATED
        with pytest.raises(aio.AioRpcError) as refused:
            await seq.submit_tx(bad)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        batch = [
            build_transfer(bob, "alpha", alice.address, "USDC", 10 + i, expiry) for i in range(3)
        ]
        items = await seq.submit_batch([*batch, bad])
        assert [i.code for i in items] == [grpc.StatusCode.OK] * 3 + [
            grpc.StatusCode.UNAUTHENTICATED
        ]

        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            2_800 * USDC,
            2 * ETH,
            head + 300,
            50 * USDC,
            expiry,
        )
        ack = await seq.submit_bundle(bundle)
        records = await wait_for_decision({"alpha": alpha, "beta": beta}, ack.id, timeout=30)
        assert all(r.status == r.STATUS_COMMITTED for r in records.values())
        final = (await seq.status()).height
        return {
            "accepted_tx": len(singles) + 1 + len(batch),
            "refused_tx_unauthenticated": 2,
            "bundle_height": ack.height,
            "decision_height": max(r.decision_height for r in records.values()),
            "head": final,
        }


def _one_per_rollup(result: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    by_rollup = {m.get("rollup", ""): v for m, v in result}
    assert len(by_rollup) == len(result), result
    return by_rollup


@pytest.mark.timeout(240)
def test_prometheus_scrapes_every_process_of_a_devnet(
    start_devnet: Callable[..., Manifest],
    start_prometheus: Callable[[str], Prometheus],
) -> None:
    manifest = start_devnet()
    serving = [p for p in manifest.processes if p.metrics]
    assert {p.name for p in serving} == {"sequencer", "proxy", "alpha", "beta"}
    expected = asyncio.run(_workload(manifest))
    print("workload:", expected)

    config = compute_scrape_config(manifest, scrape_interval="1s")
    print(config)
    prom = start_prometheus(config)

    # Every target up, with its labels.
    deadline = time.monotonic() + 60
    while True:
        targets = prom.api("targets")["activeTargets"]
        if len(targets) == len(serving) and all(t["health"] == "up" for t in targets):
            break
        assert time.monotonic() < deadline, f"targets not all up: {targets}"
        time.sleep(0.5)
    seen = {(t["labels"]["job"], t["labels"]["name"], t["labels"].get("rollup")) for t in targets}
    print("targets:", sorted(seen, key=str))
    assert seen == {
        ("xrollup_sequencer", "sequencer", None),
        ("xrollup_proxy", "proxy", None),
        ("xrollup_node", "alpha", "alpha"),
        ("xrollup_node", "beta", "beta"),
    }

    # Heights: the sequencer's head, one applied height per node, by rollup.
    head = prom.wait_query(
        "xrollup_sequencer_head_height", lambda r: bool(r) and r[0][1] >= expected["head"]
    )
    assert len(head) == 1 and head[0][1] >= expected["head"]
    applied = prom.wait_query(
        "xrollup_node_applied_height",
        lambda r: len(r) == 2 and all(v >= expected["decision_height"] for _, v in r),
    )
    heights = _one_per_rollup(applied)
    assert set(heights) == {"alpha", "beta"}
    assert all(v >= expected["decision_height"] for v in heights.values())
    info = prom.wait_query("xrollup_node_info", lambda r: len(r) == 2)
    assert sorted(m["rollup"] for m, _ in info) == ["alpha", "beta"]
    assert all(v == 1 and "exported_rollup" not in m for m, v in info)

    # Admissions by outcome and code.
    accepted_tx = prom.wait_query(
        'sum(xrollup_sequencer_admissions_total{outcome="accepted",kind="tx"})',
        lambda r: bool(r) and r[0][1] == expected["accepted_tx"],
    )
    assert accepted_tx[0][1] == expected["accepted_tx"]
    accepted = prom.query('sum(xrollup_sequencer_admissions_total{outcome="accepted"})')
    print(f'sum(xrollup_sequencer_admissions_total{{outcome="accepted"}}) = {accepted}')
    # transactions, the bundle, and at least one vote from each rollup
    assert accepted[0][1] >= expected["accepted_tx"] + 1 + 2
    refused = prom.wait_query(
        'xrollup_sequencer_admissions_total{outcome="refused"} > 0', lambda r: bool(r)
    )
    assert {(m["kind"], m["code"]): v for m, v in refused} == {
        ("tx", "UNAUTHENTICATED"): expected["refused_tx_unauthenticated"]
    }

    # The committed bundle on both rollups, decided a few blocks after its prepare.
    committed = prom.wait_query(
        'xrollup_node_bundles_total{outcome="committed"}', lambda r: len(r) == 2
    )
    assert _one_per_rollup(committed) == {"alpha": 1, "beta": 1}
    assert {m["reason"] for m, _ in committed} == {"ALL_YES"}
    prepared = prom.wait_query(
        'xrollup_node_bundles_total{outcome="prepared"}', lambda r: len(r) == 2
    )
    assert {(m["rollup"], m["reason"]): v for m, v in prepared} == {
        ("alpha", "NONE"): 1,
        ("beta", "NONE"): 1,
    }
    latency = prom.wait_query("xrollup_node_decision_latency_blocks_count", lambda r: len(r) == 2)
    assert all(v == 1 for _, v in latency)
    escrow = prom.wait_query("xrollup_node_escrow_held_base_units", lambda r: len(r) == 4)
    assert all(v == 0 for _, v in escrow)  # decided: nothing left in escrow
    votes = prom.wait_query("xrollup_node_votes_sent_total", lambda r: len(r) == 2)
    assert all(v >= 1 for _, v in votes)

    # Blocks: sealed every ~20 ms, each acknowledgement's latency observed.
    intervals = prom.wait_query(
        "xrollup_sequencer_block_interval_seconds_count", lambda r: bool(r) and r[0][1] > 50
    )
    assert intervals[0][1] >= expected["head"] - 1
    median = prom.wait_query(
        "histogram_quantile(0.5, rate(xrollup_sequencer_block_interval_seconds_bucket[5s]))",
        lambda r: bool(r) and r[0][1] == r[0][1],  # not NaN: two scrapes in the window
    )
    assert 0.015 <= median[0][1] <= 0.1
    acks = prom.wait_query("xrollup_sequencer_ack_latency_seconds_count", lambda r: bool(r))
    assert acks[0][1] >= expected["accepted_tx"] + 1

    # The proxy: each node's link open, bytes relayed both ways.
    open_ = prom.wait_query("xrollup_proxy_connections_open", lambda r: len(r) == 2)
    assert {m["route"]: v >= 1 for m, v in open_} == {"alpha": True, "beta": True}
    relayed = prom.wait_query("xrollup_proxy_relayed_bytes_total", lambda r: len(r) == 4)
    assert all(v > 0 for _, v in relayed)
    faults = prom.wait_query("sum(xrollup_proxy_faults_in_force)", lambda r: bool(r))
    assert faults[0][1] == 0

    # Each process's own /metrics has every metric the README lists for it.
    listed = readme_metrics()
    assert all(listed[p] for p in PROCESSES), listed
    for rec in serving:
        process = "node" if rec.role == "node" else rec.role
        missing = listed[process] - exposed_names(http_get(rec.metrics))
        print(f"{rec.name} {rec.metrics}: {len(listed[process])} listed metrics present")
        assert not missing, f"{rec.name} lacks {sorted(missing)}"

    # A fault set on the proxy shows in its gauge within its 50 ms poll.
    proxy_url = manifest.get("proxy").metrics  # type: ignore[union-attr]
    line = 'xrollup_proxy_faults_in_force{kind="delay",route="beta"}'
    data_dir = Path(manifest.data_dir)
    network.save_faults(data_dir, {"beta": {"delay_ms": 30}})
    try:
        deadline = time.monotonic() + 5
        while f"{line} 1.0" not in http_get(proxy_url):
            assert time.monotonic() < deadline, "the delay does not show in the proxy's metrics"
            time.sleep(0.05)
    finally:
        network.save_faults(data_dir, {})
