"""The `devnet` command as users type it (.venv/bin/devnet in a subprocess, a
devnet directory under tmp_path): up, a second up, status, transfer, accounts,
receipt, logs, blocks; a killed process stays visible as down; down stops every
process and down --wipe removes the directory. Every test ends with `devnet down`."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet.launcher import is_alive

DEVNET = str(Path(sys.executable).parent / "devnet")
PER_ACCOUNT = 1_000_000  # dev genesis USDC per account and rollup (amounts are in USDC)
PROCESSES = {  # name -> (role, rollup)
    "sequencer": ("sequencer", None),
    "alpha": ("node", "alpha"),
    "beta": ("node", "beta"),
    "alpha-replica": ("node", "alpha"),
    "beta-replica": ("node", "beta"),
}

Devnet = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    """Run `devnet ARGS --data-dir DIR`; `devnet up --replicas` first, `devnet down` last."""
    data_dir = tmp_path / "dn"

    def run(
        *args: str, expect: int | None = 0, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [DEVNET, *args, "--data-dir", str(data_dir)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if expect is not None:
            assert p.returncode == expect, (
                f"devnet {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p

    try:
        up = run("up", "--replicas", "--json")
        assert json.loads(up.stdout)["already_running"] is False
        yield run
    finally:
        run("down", expect=None)


def as_json(p: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(p.stdout)


def status_rows(devnet: Devnet) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in as_json(devnet("status", "--json"))["processes"]}


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive after {timeout}s"
        time.sleep(0.02)


def test_up_then_a_second_up_says_already_running_and_status_lists_every_process(
    devnet: Devnet,
) -> None:
    before = status_rows(devnet)

    again = devnet("up", "--replicas")
    again_json = as_json(devnet("up", "--replicas", "--json"))

    assert "already running" in again.stdout
    assert again_json["already_running"] is True
    rows = status_rows(devnet)
    assert {n: r["pid"] for n, r in rows.items()} == {n: r["pid"] for n, r in before.items()}
    assert PROCESSES.keys() <= rows.keys()
    for name, (role, rollup) in PROCESSES.items():
        r = rows[name]
        assert (r["name"], r["role"], r["rollup"]) == (name, role, rollup)
        assert isinstance(r["pid"], int) and is_alive(r["pid"])
        assert r["endpoint"].startswith("127.0.0.1:")
        assert r["healthy"] is True
        assert isinstance(r["height"], int) and r["height"] >= 0
        if role == "sequencer":
            assert r["state_root"] is None
        else:
            assert len(bytes.fromhex(r["state_root"])) == 32
        # Every process but the explorer serves Prometheus metrics on its own port.
        assert r["metrics"].startswith("http://127.0.0.1:") and r["metrics"].endswith("/metrics")
    assert rows["proxy"]["metrics"].startswith("http://127.0.0.1:")
    doc = as_json(devnet("status", "--json"))
    assert doc["explorer"] == f"http://{rows['explorer']['endpoint']}/"
    text = devnet("status").stdout
    assert rows["sequencer"]["metrics"] in text and f"explorer: {doc['explorer']}" in text
    # devnet metrics: the same URLs, and a Prometheus config naming each as a target.
    urls = as_json(devnet("metrics", "--json"))
    assert urls == {n: r["metrics"] for n, r in rows.items() if n != "explorer"}
    config = devnet("metrics", "--prometheus-config", "--scrape-interval", "1s").stdout
    assert '"xrollup_sequencer"' in config and '"xrollup_node"' in config
    assert all(u.split("/")[2] in config for u in urls.values())
    bad = devnet("metrics", "--prometheus-config", "--scrape-interval", "soon", expect=2)
    assert bad.stderr.count("\n") == 1 and "Prometheus duration" in bad.stderr


def test_transfer_receipt_accounts_blocks_and_logs(devnet: Devnet) -> None:
    amount = 5
    sent = as_json(
        devnet(
            *("transfer", "--rollup", "alpha", "--from", "0", "--to", "1"),
            *("--asset", "USDC", "--amount", str(amount), "--wait", "--json"),
        )
    )
    receipt = sent["receipt"]
    assert (receipt["status"], receipt["rollup"], receipt["reason"]) == ("ok", "alpha", None)
    assert receipt["height"] == sent["ordered_height"]

    overspend = devnet(
        *("transfer", "--rollup", "alpha", "--from", "2", "--to", "3"),
        *("--asset", "USDC", "--amount", str(10 * PER_ACCOUNT), "--wait", "--json"),
        expect=1,
    )
    failed = as_json(overspend)["receipt"]
    assert failed["status"] == "failed" and "insufficient USDC" in failed["reason"]

    accounts = as_json(devnet("accounts", "--json"))
    assert accounts["source"] == "nodes"
    by_index = {a["index"]: a["balances"] for a in accounts["accounts"]}
    assert by_index[0]["alpha"]["USDC"] == str(PER_ACCOUNT - amount)
    assert by_index[1]["alpha"]["USDC"] == str(PER_ACCOUNT + amount)
    assert by_index[2]["alpha"]["USDC"] == str(PER_ACCOUNT)  # the overspend moved nothing
    assert by_index[0]["beta"]["USDC"] == by_index[1]["beta"]["USDC"] == str(PER_ACCOUNT)

    found = as_json(devnet("receipt", sent["id"], "--json"))
    assert found["id"] == sent["id"]
    assert [(r["rollup"], r["status"]) for r in found["receipts"]] == [("alpha", "ok")]

    lines = devnet("blocks", "--from", str(sent["ordered_height"]), "--json").stdout.splitlines()
    blocks = [json.loads(line) for line in lines]
    assert blocks[0]["height"] == sent["ordered_height"]
    assert blocks[0]["entries"] >= 1 and blocks[0]["kinds"].get("tx", 0) >= 1
    for prev, block in itertools.pairwise(blocks):
        assert block["height"] == prev["height"] + 1
        assert block["parent_hash"] == prev["hash"]

    log = devnet("logs", "alpha").stdout
    assert log.strip() and "rollup alpha serving on 127.0.0.1:" in log


def test_a_killed_process_shows_as_down_not_hidden(devnet: Devnet) -> None:
    rows = status_rows(devnet)
    beta_pid = rows["beta"]["pid"]

    os.kill(beta_pid, signal.SIGKILL)
    wait_gone(beta_pid)

    after = status_rows(devnet)
    beta = after["beta"]
    assert (beta["running"], beta["healthy"], beta["pid"], beta["height"]) == (
        False,
        False,
        None,
        None,
    )
    assert beta["endpoint"] == rows["beta"]["endpoint"]
    assert all(after[n]["healthy"] for n in PROCESSES if n != "beta")
    table = [[c.strip() for c in line.split("│")] for line in devnet("status").stdout.splitlines()]
    (beta_row,) = [cells for cells in table if len(cells) > 2 and cells[1] == "beta"]
    assert "down" in beta_row


def test_down_stops_every_process_and_wipe_removes_the_directory(
    devnet: Devnet, tmp_path: Path
) -> None:
    pids = {n: r["pid"] for n, r in status_rows(devnet).items()}
    assert all(isinstance(p, int) for p in pids.values())

    stopped = as_json(devnet("down", "--json"))

    assert set(stopped["stopped"]) == set(pids)
    for pid in pids.values():
        wait_gone(pid, timeout=2.0)
    after = as_json(devnet("status", "--json"))
    assert after["running"] is False
    assert all(r["pid"] is None and not r["healthy"] for r in after["processes"])

    wiped = as_json(devnet("down", "--wipe", "--json"))

    assert wiped == {"stopped": [], "wiped": True}
    assert not (tmp_path / "dn").exists()
