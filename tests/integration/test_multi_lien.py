"""Collateral on several rollups (issue 11), on a real devnet of three rollups:
an option on beta backed by liens on alpha and gamma opens in one bundle that
commits on all three, and settles in one bundle that pays the holder from the
liens in their order (alpha first, then gamma) and returns the rest of each lien
to the writer on its own rollup. A lien may also sit on the option's own rollup.

Every partial failure aborts everywhere and moves nothing: one lien short (gamma
votes no), the liens short of the margin rule (beta votes no), a settlement
whose split is not the waterfall (beta votes no), and a lien rollup down past the
deadline (alpha and beta abort at the deadline by themselves; gamma, resumed,
replays to the same abort). After all of it `devnet check`'s invariants hold:
atomicity, supply per asset on every rollup, equal roots."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from chainsupport import Net, assert_invariants, net_of, paused

from devnet import network
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_settle_option,
    option_liens,
    wait_for_decision,
)
from xrollup.genesis import dev_genesis
from xrollup.keys import Keypair, derive_dev_account, derive_oracle_key
from xrollup.model import OptionKind, ReasonCode
from xrollup.options import split_collateral, split_payout
from xrollup.v1 import node_pb2 as npb

DEVNET = str(Path(sys.executable).parent / "devnet")
ROLLUPS = ("alpha", "beta", "gamma")
USDC, ETH = 10**6, 10**9
STRIKE, SIZE = 2_800 * USDC, 2 * ETH
NEED = 5_600 * USDC  # a 2 ETH put at 2,800
SPLIT = split_collateral(NEED, [6_000, 4_000])  # 60 % on alpha, 40 % on gamma
COMMITTED = npb.BundleRecord.STATUS_COMMITTED
ABORTED = npb.BundleRecord.STATUS_ABORTED
ORACLE = derive_oracle_key()
DEV = tuple(derive_dev_account(i) for i in range(10))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    data_dir: Path = tmp_path_factory.mktemp("multi-lien")
    manifest = network.start_devnet(data_dir, explorer=False, genesis=dev_genesis(rollups=ROLLUPS))
    try:
        yield net_of(manifest)
    finally:
        network.stop_devnet(data_dir, grace=5.0)


class Chain:
    """The sequencer and one node per rollup."""

    def __init__(self, client: Client, nodes: dict[str, NodeClient]) -> None:
        self.client, self.nodes = client, nodes

    async def usdc(self, who: Keypair) -> dict[str, int]:
        return {r: (await n.balances(who.address)).get("USDC", 0) for r, n in self.nodes.items()}

    async def head(self) -> int:
        return int((await self.client.status()).height)

    async def decided(self, bundle_id: bytes, rollups: tuple[str, ...] = ROLLUPS) -> dict:
        return await wait_for_decision({r: self.nodes[r] for r in rollups}, bundle_id, 60)

    async def open(
        self, writer: Keypair, holder: Keypair, liens: list[tuple[str, int]], expiry_in: int = 30
    ) -> tuple[bytes, dict[str, npb.BundleRecord]]:
        head = await self.head()
        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            STRIKE,
            SIZE,
            head + expiry_in,
            10 * USDC,
            head + 200,
            liens=liens,
            option_rollup="beta",
        )
        ack = await self.client.submit_bundle(bundle)
        involved = tuple(dict.fromkeys([*(r for r, _ in liens), "beta"]))
        return ack.id, await self.decided(ack.id, involved)

    async def settle(
        self,
        keeper: Keypair,
        option: npb.OptionPosition,
        payout: int,
        liens: list[tuple[str, int]] | None = None,
    ) -> dict[str, npb.BundleRecord]:
        """Submit the settle bundle (a release on each of `liens`, by default the
        option's own, in its order) and wait for each involved rollup's decision."""
        liens = option_liens(option) if liens is None else liens
        bundle = build_settle_option(
            keeper,
            option.id,
            payout,
            option.holder,
            await self.head() + 200,
            option_rollup="beta",
            liens=liens,
        )
        ack = await self.client.submit_bundle(bundle)
        involved = tuple(dict.fromkeys(["beta", *(r for r, _ in liens)]))
        return await self.decided(ack.id, involved)

    async def post_price_after(self, height: int, price: int) -> None:
        while await self.head() < height:
            await asyncio.sleep(0.02)
        tx = build_price_update(ORACLE, "beta", "ETH", "USDC", price, height + 200)
        ack = await self.client.submit_tx(tx)
        await self.nodes["beta"].wait_for_receipt(ack.id, timeout=30)


@asynccontextmanager
async def chain_of(net: Net) -> AsyncIterator[Chain]:
    async with Client(net.sequencer) as client:
        nodes = {r: NodeClient(net.endpoint(r)) for r in ROLLUPS}
        try:
            yield Chain(client, nodes)
        finally:
            for n in nodes.values():
                await n.close()


def statuses(records: dict[str, npb.BundleRecord]) -> dict[str, int]:
    return {r: rec.status for r, rec in records.items()}


async def _opens_and_settles(net: Net) -> None:
    writer, holder, keeper = DEV[2], DEV[3], DEV[4]
    async with chain_of(net) as c:
        w0, h0 = await c.usdc(writer), await c.usdc(holder)
        option_id, records = await c.open(
            writer, holder, [("alpha", SPLIT[0]), ("gamma", SPLIT[1])]
        )
        assert statuses(records) == dict.fromkeys(ROLLUPS, COMMITTED), records
        w1 = await c.usdc(writer)
        assert w1["alpha"] == w0["alpha"] - SPLIT[0] and w1["gamma"] == w0["gamma"] - SPLIT[1]
        assert w1["beta"] == w0["beta"] + 10 * USDC  # the premium
        o = await c.nodes["beta"].option(option_id)
        assert option_liens(o) == [("alpha", SPLIT[0]), ("gamma", SPLIT[1])]
        assert o.collateral == NEED
        for r, amount in zip(("alpha", "gamma"), SPLIT, strict=True):
            lien = await c.nodes[r].lien(option_id)
            assert (lien.status, lien.amount, lien.controller_rollup) == (
                npb.Lien.STATUS_LOCKED,
                amount,
                "beta",
            )

        await c.post_price_after(o.expiry_height, 1_000 * USDC)
        payout = (2_800 - 1_000) * 2 * USDC  # 3,600: more than alpha's 3,360
        shares = split_payout(payout, SPLIT)
        assert shares == (SPLIT[0], payout - SPLIT[0])

        # A split that is not the waterfall: beta votes no, nothing moves anywhere.
        wrong = [("gamma", SPLIT[1]), ("alpha", SPLIT[0])]  # gamma first
        records = await c.settle(keeper, o, payout, wrong)
        assert statuses(records) == dict.fromkeys(ROLLUPS, ABORTED)
        assert (records["beta"].vote, records["beta"].reason_code) == (
            False,
            ReasonCode.PAYOUT_MISMATCH,
        )
        assert (await c.nodes["beta"].option(option_id)).status == npb.OptionPosition.STATUS_OPEN
        assert (await c.nodes["gamma"].lien(option_id)).status == npb.Lien.STATUS_LOCKED

        records = await c.settle(keeper, o, payout)
        assert statuses(records) == dict.fromkeys(ROLLUPS, COMMITTED)
        w2, h2 = await c.usdc(writer), await c.usdc(holder)
        for i, r in enumerate(("alpha", "gamma")):
            assert h2[r] - h0[r] == shares[i]  # the holder is paid each lien's share
            assert w2[r] - w1[r] == SPLIT[i] - shares[i]  # the writer gets the rest back
            lien = await c.nodes[r].lien(option_id)
            assert (lien.status, lien.paid_out) == (npb.Lien.STATUS_RELEASED, shares[i])
        assert sum(h2[r] - h0[r] for r in ("alpha", "gamma")) == payout
        settled = await c.nodes["beta"].option(option_id)
        assert settled.status == npb.OptionPosition.STATUS_SETTLED
        assert [lien.paid for lien in settled.liens] == list(shares)
    await assert_invariants(net)


def test_a_position_on_two_rollups_liens_opens_and_settles_atomically(net: Net) -> None:
    asyncio.run(_opens_and_settles(net))


async def _partial_failures(net: Net) -> None:
    writer, holder = DEV[5], DEV[6]
    async with chain_of(net) as c:
        before = await c.usdc(writer), await c.usdc(holder)

        # One lien short: the writer holds 1,000,000 USDC on gamma, the lien wants more.
        short = [("alpha", NEED), ("gamma", 1_000_000 * USDC + 1)]
        _, records = await c.open(writer, holder, short)
        assert statuses(records) == dict.fromkeys(ROLLUPS, ABORTED)
        assert (records["gamma"].vote, records["gamma"].reason_code) == (
            False,
            ReasonCode.INSUFFICIENT_FUNDS,
        )
        assert records["alpha"].vote and records["beta"].vote

        # The liens together one base unit short of the margin rule: beta votes no.
        thin = [("alpha", SPLIT[0]), ("gamma", SPLIT[1] - 1)]
        _, records = await c.open(writer, holder, thin)
        assert statuses(records) == dict.fromkeys(ROLLUPS, ABORTED)
        assert (records["beta"].vote, records["beta"].reason_code) == (False, ReasonCode.MARGIN)
        assert records["alpha"].vote and records["gamma"].vote

        # gamma down past the deadline: alpha and beta abort by themselves at h + K.
        deadline_blocks = net.genesis.limits.bundle_deadline_blocks
        head = await c.head()
        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            STRIKE,
            SIZE,
            head + 500,
            10 * USDC,
            head + 200,
            liens=[("alpha", SPLIT[0]), ("gamma", SPLIT[1])],
            option_rollup="beta",
        )
        with paused(net, "gamma"):
            ack = await c.client.submit_bundle(bundle)
            records = await c.decided(ack.id, ("alpha", "beta"))
            for r in ("alpha", "beta"):
                assert records[r].status == ABORTED and records[r].vote
                assert records[r].reason_code == ReasonCode.DEADLINE
                assert records[r].decision_height == ack.height + deadline_blocks
            alpha_now = (await c.nodes["alpha"].balances(writer.address))["USDC"]
            assert alpha_now == before[0]["alpha"]  # the lock came back
        at_gamma = await c.nodes["gamma"].wait_for_bundle(ack.id, timeout=60)
        assert (at_gamma.status, at_gamma.reason_code) == (ABORTED, ReasonCode.DEADLINE)

        assert (await c.usdc(writer), await c.usdc(holder)) == before  # nothing moved
    await assert_invariants(net)


def test_every_partial_failure_aborts_everywhere_and_moves_nothing(net: Net) -> None:
    asyncio.run(_partial_failures(net))


async def _local_and_remote(net: Net) -> None:
    writer, holder, keeper = DEV[7], DEV[8], DEV[9]
    liens = [("beta", 1_000 * USDC), ("alpha", NEED - 1_000 * USDC)]  # local lien first
    async with chain_of(net) as c:
        w0 = await c.usdc(writer)
        oid, records = await c.open(writer, holder, liens, expiry_in=20)
        assert statuses(records) == {"alpha": COMMITTED, "beta": COMMITTED}
        lien = await c.nodes["beta"].lien(oid)
        assert (lien.controller_rollup, lien.amount) == ("beta", 1_000 * USDC)
        o = await c.nodes["beta"].option(oid)
        await c.post_price_after(o.expiry_height, 2_300 * USDC)
        payout = 1_000 * USDC  # (2,800 - 2,300) x 2: the local lien pays all of it
        assert statuses(await c.settle(keeper, o, payout)) == {
            "alpha": COMMITTED,
            "beta": COMMITTED,
        }
        w1 = await c.usdc(writer)
        assert w1["alpha"] == w0["alpha"]  # the alpha lien came back whole
        assert w1["beta"] == w0["beta"] + 10 * USDC - 1_000 * USDC  # premium in, lien paid out


def test_a_lien_on_the_options_own_rollup_backs_it_beside_a_remote_one(net: Net) -> None:
    asyncio.run(_local_and_remote(net))


def devnet_cli(net: Net, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    data_dir = Path(net.manifest.data_dir)
    p = subprocess.run(
        [DEVNET, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
    return p


def test_option_open_splits_the_collateral_by_percentage_over_lien_rollups(net: Net) -> None:
    base = ("option", "open", "--writer", "1", "--holder", "0", "--kind", "put")
    terms = ("--strike", "2800", "--size", "2", "--premium", "1", "--option-rollup", "beta")
    opened = json.loads(
        devnet_cli(
            net, *base, *terms, "--lien", "alpha=60%", "--lien", "gamma=40%", "--json"
        ).stdout
    )
    assert opened["status"] == "committed" and set(opened["rollups"]) == set(ROLLUPS)
    assert opened["liens"] == [
        {"rollup": "alpha", "amount": "3360"},
        {"rollup": "gamma", "amount": "2240"},
    ]
    shown = json.loads(
        devnet_cli(net, "option", "show", opened["id"], "--option-rollup", "beta", "--json").stdout
    )
    assert shown["collateral_rollups"] == ["alpha", "gamma"] and shown["collateral"] == "5600"

    for bad, says in (
        (("--lien", "alpha=60%", "--lien", "gamma=30%"), "sum to 90%, not 100%"),
        (("--lien", "alpha=60%", "--lien", "gamma=2240"), "every share as a percentage"),
        (("--lien", "alpha=50%", "--lien", "alpha=50%"), "a rollup named twice"),
        (("--lien", "alpha"), "want ROLLUP=SHARE"),
        (("--lien", "omega=100%"), "omega"),
    ):
        p = devnet_cli(net, *base, *terms, *bad, expect=1 if "omega" not in says else 2)
        assert says in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
