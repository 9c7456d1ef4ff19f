"""Rollup names come from genesis (issue 9): a devnet whose genesis names its three
rollups gamma, delta and epsilon (and has its own chain id) runs `devnet demo`,
`devnet load`, `devnet price` and `devnet option open` with no rollup flag, as users
type them (.venv/bin/devnet in a subprocess). Each succeeds; the option lives on the
last rollup (epsilon), its collateral on the first (gamma), prices go to epsilon,
load's transfers reach the middle rollup too, and `devnet check` holds afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from xrollup.genesis import (
    DEV_ACCOUNT_COUNT,
    Allocation,
    Genesis,
    Rollup,
    dev_genesis,
    encode_genesis,
)
from xrollup.keys import derive_dev_account, derive_rollup_vote_key

DEVNET = str(Path(sys.executable).parent / "devnet")
ROLLUPS = ("gamma", "delta", "epsilon")
OPTION_ROLLUP, COLLATERAL_ROLLUP = "epsilon", "gamma"


def compute_named_genesis() -> Genesis:
    """dev_genesis's assets, keys and allocations, over the rollups ROLLUPS (vote keys
    derived by name, as the nodes derive them) and another chain id."""
    dev = dev_genesis()
    rollups = tuple(Rollup(n, derive_rollup_vote_key(n).public_key) for n in ROLLUPS)
    allocations = tuple(
        Allocation(r.name, derive_dev_account(i).address, a.symbol, amount)
        for i in range(DEV_ACCOUNT_COUNT)
        for r in rollups
        for a, amount in zip(dev.assets, (1_000_000 * 10**6, 1_000 * 10**9), strict=True)
    )
    return replace(dev, chain_id="xrollup-names-1", rollups=rollups, allocations=allocations)


class Devnet(Protocol):
    dir: Path

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


class _Runner:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [DEVNET, *args, "--data-dir", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert p.returncode == 0, (
            f"devnet {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        )
        return p


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """genesis.json written before `devnet up` (which keeps an existing one), no
    replicas, no explorer; `devnet down` at the end."""
    data_dir = tmp_path_factory.mktemp("names") / "dn"
    data_dir.mkdir()
    (data_dir / "genesis.json").write_text(encode_genesis(compute_named_genesis()))
    run = _Runner(data_dir)
    try:
        up = as_json(run("up", "--no-explorer", "--json"))
        nodes = {p["rollup"] for p in up["processes"] if p["role"] == "node"}
        assert nodes == set(ROLLUPS)
        yield run
    finally:
        subprocess.run([DEVNET, "down", "--data-dir", str(data_dir)], timeout=60, check=False)


def as_json(p: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(p.stdout)


def balances(devnet: Devnet) -> dict[tuple[int, str, str], int]:
    """(dev index, rollup, asset) -> live balance in base units."""
    accounts = as_json(devnet("accounts", "--json", "--base-units"))
    assert accounts["source"] == "nodes"
    return {
        (a["index"], rollup, asset): amount
        for a in accounts["accounts"]
        for rollup, assets in a["balances"].items()
        for asset, amount in assets.items()
    }


def test_the_demo_runs_on_the_rollups_genesis_names(devnet: Devnet) -> None:
    result = as_json(devnet("demo", "--json", timeout=120))
    steps = "\n".join(result["steps"])

    assert result["ok"], result["failures"]
    assert f"capital on {COLLATERAL_ROLLUP}" in steps
    assert f"price on {OPTION_ROLLUP}" in steps
    assert f"writer@{COLLATERAL_ROLLUP}" in steps and f"holder@{OPTION_ROLLUP}" in steps
    assert f"lien on {COLLATERAL_ROLLUP}: " in steps
    assert f"option open on {OPTION_ROLLUP}" in steps
    assert "alpha" not in steps and "beta" not in steps


def test_load_spreads_over_every_rollup_of_genesis(devnet: Devnet) -> None:
    before = balances(devnet)

    summary = as_json(devnet("load", "--seed", "9", "--count", "200", "--json", timeout=120))
    after = balances(devnet)

    assert summary["submitted"] == summary["acknowledged"] + summary["refused"] == 200
    assert not summary["gave_up"] and not summary["unexpected_refusals"]
    assert {"price", "transfer", "overspend", "bad_signature", "open"} <= set(summary["by_kind"])
    assert summary["committed"] > 0 and not summary["undecided"]
    # only load's transfers touch delta: options and prices live on epsilon and gamma
    assert any(after[k] != before[k] for k in before if k[1] == "delta")


def test_a_price_and_an_option_without_rollup_flags_use_the_last_and_first_rollup(
    devnet: Devnet,
) -> None:
    posted = as_json(devnet("price", "--price", "3000", "--json"))
    opened = as_json(
        devnet(
            *("option", "open", "--writer", "2", "--holder", "3", "--kind", "put"),
            *("--strike", "2800", "--size", "1", "--premium", "10", "--json"),
        )
    )
    shown = as_json(devnet("option", "show", opened["id"], "--json"))
    lien = as_json(devnet("lien", "show", opened["id"], "--json"))

    assert posted["receipt"]["rollup"] == OPTION_ROLLUP
    assert opened["status"] == "committed"
    assert (opened["option_rollup"], opened["collateral_rollups"]) == (
        OPTION_ROLLUP,
        [COLLATERAL_ROLLUP],
    )
    assert set(opened["rollups"]) == {OPTION_ROLLUP, COLLATERAL_ROLLUP}
    assert (shown["status"], shown["collateral_rollups"]) == ("open", [COLLATERAL_ROLLUP])
    assert (lien["status"], lien["controller_rollup"]) == ("locked", OPTION_ROLLUP)


def test_check_holds_after_the_demo_load_and_option(devnet: Devnet) -> None:
    report = as_json(devnet("check", "--json", timeout=120))

    assert report["ok"], report
    assert not report["nodes_skipped"]
