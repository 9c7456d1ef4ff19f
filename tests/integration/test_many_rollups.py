"""Devnets of any shape (issue 10), as users type them (.venv/bin/devnet in a
subprocess). `devnet up --rollups 4` runs alpha, beta, gamma and delta; a bundle
across three of them commits on each (an option on delta, its collateral on alpha,
a fee on gamma), one across three whose leg on beta overspends aborts on each and
moves nothing, one across all four commits; each decision in the log follows every
involved rollup's logged vote; the explorer's bundle page lists the three rollups,
and `devnet check` holds. The same directory refuses `up` with another genesis.
`devnet up --genesis FILE` with rollups of its own names, a new asset (WBTC, 8
decimals) and its own limits: a decimal WBTC transfer moves the exact base units,
`devnet accounts` shows WBTC, and the file's max_legs is the one in force."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from explorersupport import get
from grpc import aio

from xrollup import codec
from xrollup.client import Client, NodeClient, build_bundle, wait_for_decision
from xrollup.genesis import (
    DEV_ACCOUNT_COUNT,
    Allocation,
    Asset,
    Genesis,
    Rollup,
    compute_rollup_names,
    dev_genesis,
    encode_genesis,
    load_genesis,
)
from xrollup.keys import Keypair, derive_dev_account, derive_rollup_vote_key
from xrollup.model import (
    Decision,
    Leg,
    LockCollateral,
    OpenOption,
    OptionKind,
    ReasonCode,
    Transfer,
    Vote,
)
from xrollup.numeric import Amount, Height
from xrollup.options import compute_collateral
from xrollup.v1 import node_pb2 as npb

DEVNET = str(Path(sys.executable).parent / "devnet")
ROLLUPS = ("alpha", "beta", "gamma", "delta")
USDC, ETH = 10**6, 10**9
WRITER, HOLDER, CAROL, DAVE = (derive_dev_account(i) for i in (2, 3, 4, 5))
COMMITTED = npb.BundleRecord.STATUS_COMMITTED
ABORTED = npb.BundleRecord.STATUS_ABORTED


class Runner:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir

    def __call__(
        self, *args: str, expect: int | None = 0, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [DEVNET, *args, "--data-dir", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if expect is not None:
            assert p.returncode == expect, (
                f"devnet {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def endpoints(self) -> tuple[str, dict[str, str]]:
        """The sequencer's endpoint and each rollup's node's, from `devnet status`."""
        status = self.json("status")
        by_name = {p["name"]: p for p in status["processes"]}
        nodes = {p["rollup"]: p["endpoint"] for p in status["processes"] if p["role"] == "node"}
        return by_name["sequencer"]["endpoint"], nodes


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """`devnet up --rollups 4` (explorer included), `devnet down` at the end."""
    run = Runner(tmp_path_factory.mktemp("many") / "dn")
    try:
        up = run.json("up", "--rollups", "4")
        assert [p["rollup"] for p in up["processes"] if p["role"] == "node"] == list(ROLLUPS)
        yield run
    finally:
        run("down", expect=None)


def one_error_line(p: subprocess.CompletedProcess[str], code: int) -> str:
    lines = p.stderr.splitlines()
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


# ---------------------------------------------------------------- bundles over N rollups


def transfer_leg(rollup: str, sender: Keypair, to: Keypair, asset: str, amount: int) -> Leg:
    return Leg(rollup, sender.address, Transfer(to.address, asset, Amount(amount)))


def option_legs(option_rollup: str, collateral_rollup: str, expiry: int) -> list[Leg]:
    """An open: a 2 ETH put at strike 2,800 USDC, collateral locked on `collateral_rollup`."""
    strike, size = 2_800 * USDC, 2 * ETH
    need = compute_collateral(OptionKind.PUT, strike, size, 9)
    return [
        Leg(collateral_rollup, WRITER.address, LockCollateral("USDC", Amount(need), option_rollup)),
        Leg(
            option_rollup,
            HOLDER.address,
            OpenOption(
                OptionKind.PUT,
                "ETH",
                "USDC",
                Amount(strike),
                Amount(size),
                Height(expiry),
                Amount(50 * USDC),
                WRITER.address,
                (collateral_rollup,),
            ),
        ),
    ]


async def submit_and_decide(
    sequencer: str, nodes: dict[str, str], legs: Sequence[Leg], signers: Sequence[Keypair]
) -> tuple[bytes, int, dict[str, npb.BundleRecord], dict[str, dict[str, dict[str, int]]]]:
    """Submit a bundle of `legs`; (id, ordered height, each rollup's record once
    decided, every dev account's balances per rollup before it)."""
    async with Client(sequencer) as c:
        clients = {r: NodeClient(ep) for r, ep in nodes.items()}
        try:
            before = {
                r: {
                    k.address.hex(): await n.balances(k.address)
                    for k in (WRITER, HOLDER, CAROL, DAVE)
                }
                for r, n in clients.items()
            }
            expiry = (await c.status()).height + 200
            ack = await c.submit_bundle(build_bundle(legs, signers, expiry))
            touched = sorted({leg.rollup for leg in legs})
            records = await wait_for_decision({r: clients[r] for r in touched}, ack.id, 30)
            for r in set(clients) - set(touched):  # no record where the bundle has no leg
                with pytest.raises(aio.AioRpcError) as err:
                    await clients[r].bundle(ack.id)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
            return ack.id, ack.height, records, before
        finally:
            for n in clients.values():
                await n.close()


async def balances_now(nodes: dict[str, str]) -> dict[str, dict[str, dict[str, int]]]:
    out = {}
    for r, ep in nodes.items():
        async with NodeClient(ep) as n:
            out[r] = {
                k.address.hex(): await n.balances(k.address) for k in (WRITER, HOLDER, CAROL, DAVE)
            }
    return out


async def logged_votes_and_decision(
    sequencer: str, bundle_id: bytes, from_height: int, to_height: int
) -> tuple[dict[str, bool], Decision]:
    """The rollups' logged votes on the bundle (first per rollup) and its decision."""
    votes: dict[str, bool] = {}
    async with Client(sequencer) as c:
        for h in range(from_height, to_height + 1):
            block = codec.decode_block(await c.get_block(h))
            for e in block.entries:
                if isinstance(e, Vote):
                    for v in e.body.votes:
                        if v.bundle_id == bundle_id:
                            votes.setdefault(e.body.rollup, v.yes)
                elif isinstance(e, Decision) and e.bundle_id == bundle_id:
                    return votes, e
    raise AssertionError(f"no decision for {bundle_id.hex()} in {from_height}..{to_height}")


def decided_in_log(
    sequencer: str, bundle_id: bytes, height: int, records: dict[str, npb.BundleRecord]
) -> tuple[dict[str, bool], Decision]:
    decided_at = max(r.decision_height for r in records.values())
    return asyncio.run(logged_votes_and_decision(sequencer, bundle_id, height, decided_at))


def test_a_bundle_across_three_rollups_commits_on_each(four: Runner) -> None:
    sequencer, nodes = four.endpoints()
    expiry = 10_000
    legs = [
        *option_legs("delta", "alpha", expiry),
        transfer_leg("gamma", HOLDER, WRITER, "USDC", 7 * USDC),  # a fee, on a third rollup
    ]

    bid, height, records, before = asyncio.run(
        submit_and_decide(sequencer, nodes, legs, [WRITER, HOLDER])
    )
    after = asyncio.run(balances_now(nodes))
    votes, decision = decided_in_log(sequencer, bid, height, records)
    status = four.json("bundle", "status", bid.hex())

    assert set(records) == {"alpha", "gamma", "delta"}
    assert all(r.status == COMMITTED and r.vote for r in records.values()), records
    assert votes == {"alpha": True, "gamma": True, "delta": True}
    assert (decision.commit, decision.code) == (True, ReasonCode.ALL_YES)
    assert status["status"] == "committed" and set(status["rollups"]) == {"alpha", "gamma", "delta"}
    w, h = WRITER.address.hex(), HOLDER.address.hex()
    need = compute_collateral(OptionKind.PUT, 2_800 * USDC, 2 * ETH, 9)
    assert after["alpha"][w]["USDC"] == before["alpha"][w]["USDC"] - need
    assert after["delta"][h]["USDC"] == before["delta"][h]["USDC"] - 50 * USDC
    assert after["delta"][w]["USDC"] == before["delta"][w]["USDC"] + 50 * USDC
    assert after["gamma"][h]["USDC"] == before["gamma"][h]["USDC"] - 7 * USDC
    assert after["gamma"][w]["USDC"] == before["gamma"][w]["USDC"] + 7 * USDC
    assert after["beta"] == before["beta"]

    # the explorer's bundle page, at the URL `devnet status` gives, lists the three
    explorer = four.json("status")["explorer"].rstrip("/")
    page = get(f"{explorer}/api/bundle/{bid.hex()}")
    assert page.status == 200, page.body
    doc = page.json()
    assert set(doc["bundle"]["rollups"]) == {"alpha", "gamma", "delta"}
    assert {r["rollup"] for r in doc["records"].values()} == {"alpha", "gamma", "delta"}
    assert doc["state"] == "committed"


def test_a_bundle_across_three_rollups_with_one_overspending_leg_aborts_on_each(
    four: Runner,
) -> None:
    sequencer, nodes = four.endpoints()
    legs = [
        transfer_leg("alpha", CAROL, DAVE, "USDC", 3 * USDC),
        transfer_leg("beta", DAVE, CAROL, "ETH", 10**6 * ETH),  # holds 1,000 ETH there
        transfer_leg("gamma", CAROL, DAVE, "ETH", 1 * ETH),
    ]

    bid, height, records, before = asyncio.run(
        submit_and_decide(sequencer, nodes, legs, [CAROL, DAVE])
    )
    after = asyncio.run(balances_now(nodes))
    votes, decision = decided_in_log(sequencer, bid, height, records)

    assert set(records) == {"alpha", "beta", "gamma"}
    assert all(r.status == ABORTED for r in records.values()), records
    assert not records["beta"].vote and "insufficient" in records["beta"].reason
    assert votes["beta"] is False
    assert (decision.commit, decision.code) == (False, ReasonCode.VOTED_NO)
    assert after == before  # nothing moved on any rollup


def test_a_bundle_across_all_four_rollups_commits(four: Runner) -> None:
    sequencer, nodes = four.endpoints()
    legs = [transfer_leg(r, CAROL, DAVE, "ETH", (i + 1) * ETH) for i, r in enumerate(ROLLUPS)]

    bid, height, records, before = asyncio.run(submit_and_decide(sequencer, nodes, legs, [CAROL]))
    after = asyncio.run(balances_now(nodes))
    votes, decision = decided_in_log(sequencer, bid, height, records)

    assert set(records) == set(ROLLUPS)
    assert all(r.status == COMMITTED for r in records.values()), records
    assert votes == dict.fromkeys(ROLLUPS, True)
    assert decision.commit
    d = DAVE.address.hex()
    for i, r in enumerate(ROLLUPS):
        assert after[r][d]["ETH"] == before[r][d]["ETH"] + (i + 1) * ETH


def test_check_holds_and_accounts_show_every_rollup(four: Runner) -> None:
    report = four.json("check")
    accounts = four.json("accounts")

    assert report["ok"], report
    assert not report["nodes_skipped"]
    assert report["checks"]["decisions"]["committed"] >= 2
    assert report["checks"]["decisions"]["aborted"] >= 1
    assert set(accounts["accounts"][0]["balances"]) == set(ROLLUPS)


def test_up_with_another_genesis_on_the_same_directory_is_refused(four: Runner) -> None:
    same = four.json("up", "--rollups", "alpha,beta,gamma,delta")
    other = four("up", "--rollups", "3", expect=None)

    assert same["already_running"]
    line = one_error_line(other, 1)
    assert f"the devnet in {four.dir} has another genesis" in line
    assert "differs in rollups, allocations" in line and "devnet down --wipe" in line
    assert load_genesis(four.dir / "genesis.json") == dev_genesis(rollups=compute_rollup_names(4))


# ---------------------------------------------------------------- a genesis of one's own

CUSTOM_ROLLUPS = ("north", "south")
WBTC = 10**8


def compute_custom_genesis() -> Genesis:
    """Rollups of other names, a chain id of its own, USDC and ETH as the dev
    genesis has them plus WBTC (8 decimals: 10 WBTC for each dev account on each
    rollup), a faster block interval and at most 3 legs a bundle."""
    dev = dev_genesis()
    rollups = tuple(Rollup(n, derive_rollup_vote_key(n).public_key) for n in CUSTOM_ROLLUPS)
    assets = (*dev.assets, Asset("WBTC", 8))
    amounts = {"USDC": 1_000_000 * USDC, "ETH": 1_000 * ETH, "WBTC": 10 * WBTC}
    allocations = tuple(
        Allocation(r, derive_dev_account(i).address, a.symbol, amounts[a.symbol])
        for i in range(DEV_ACCOUNT_COUNT)
        for r in CUSTOM_ROLLUPS
        for a in assets
    )
    return replace(
        dev,
        chain_id="my-rollups-7",
        block_interval_ms=15,
        rollups=rollups,
        assets=assets,
        allocations=allocations,
        limits=replace(dev.limits, max_legs=3, bundle_deadline_blocks=40),
    )


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """`devnet up --genesis FILE --no-explorer`, `devnet down` at the end."""
    tmp = tmp_path_factory.mktemp("custom")
    file = tmp / "my-genesis.json"
    file.write_text(encode_genesis(compute_custom_genesis()))
    run = Runner(tmp / "dn")
    try:
        up = run.json("up", "--genesis", str(file), "--no-explorer")
        assert [p["rollup"] for p in up["processes"] if p["role"] == "node"] == list(CUSTOM_ROLLUPS)
        assert up["chain_id"] == "my-rollups-7"
        yield run
    finally:
        run("down", expect=None)


def test_a_custom_genesis_is_the_devnets_genesis(custom: Runner) -> None:
    assert load_genesis(custom.dir / "genesis.json") == compute_custom_genesis()


def test_a_decimal_transfer_of_a_new_asset_moves_its_base_units(custom: Runner) -> None:
    before = custom.json("accounts", "--base-units")["accounts"]

    sent = custom.json(
        *("transfer", "--rollup", "south", "--from", "0", "--to", "1"),
        *("--asset", "WBTC", "--amount", "0.12345678", "--wait"),
    )
    after = custom.json("accounts", "--base-units")["accounts"]
    shown = custom.json("accounts")["accounts"]

    assert sent["receipt"]["status"] == "ok" and sent["amount"] == "0.12345678"
    assert (
        after[0]["balances"]["south"]["WBTC"] == before[0]["balances"]["south"]["WBTC"] - 12_345_678
    )
    assert (
        after[1]["balances"]["south"]["WBTC"] == before[1]["balances"]["south"]["WBTC"] + 12_345_678
    )
    assert after[0]["balances"]["north"] == before[0]["balances"]["north"]
    assert shown[0]["balances"]["south"]["WBTC"] == "9.87654322"
    assert shown[1]["balances"]["south"]["WBTC"] == "10.12345678"


def test_the_custom_genesis_limits_are_in_force(custom: Runner) -> None:
    sequencer, _ = custom.endpoints()
    legs = [transfer_leg(r, CAROL, DAVE, "WBTC", 1) for r in (*CUSTOM_ROLLUPS, "north")]
    legs.append(transfer_leg("south", CAROL, DAVE, "WBTC", 2))

    async def submit() -> aio.AioRpcError:
        async with Client(sequencer, "my-rollups-7") as c:
            expiry = (await c.status()).height + 100
            with pytest.raises(aio.AioRpcError) as err:
                await c.submit_bundle(build_bundle(legs, [CAROL], expiry, "my-rollups-7"))
            return err.value

    err = asyncio.run(submit())

    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4 legs, limit is 3" in (err.details() or "")


def test_check_holds_on_the_custom_genesis(custom: Runner) -> None:
    report = custom.json("check")

    assert report["ok"], report
    assert set(report["checks"]["conservation"]["assets"]) == {"USDC", "ETH", "WBTC"}
