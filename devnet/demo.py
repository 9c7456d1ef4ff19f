"""`devnet demo`: the option story end to end on a running devnet, every step
checked. The rollups come from genesis (xrollup.genesis.compute_option_rollups;
the dev genesis: collateral on alpha, option on beta). A writer whose capital
sits on the collateral rollup writes a cash-secured put on the option rollup to
a holder who pays the premium there; an under-collateralized attempt aborts and
changes nothing; the price falls; settlement pays the holder on the collateral
rollup from the lien and releases the rest to the writer. No bridge, no
transfer of the collateral."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xrollup.amounts import format_units
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_settle_option,
    wait_for_decision,
)
from xrollup.errors import InvalidInput
from xrollup.genesis import Genesis, compute_option_rollups
from xrollup.keys import Address, derive_dev_account, derive_oracle_key, encode_address
from xrollup.model import OptionKind
from xrollup.options import compute_collateral, compute_payout
from xrollup.v1 import node_pb2 as npb

COMMITTED = npb.BundleRecord.STATUS_COMMITTED
ABORTED = npb.BundleRecord.STATUS_ABORTED


@dataclass
class DemoResult:
    ok: bool = True
    failures: list[str] = field(default_factory=list)
    latencies_ms: dict[str, float] = field(default_factory=dict)
    decision_blocks: dict[str, int] = field(default_factory=dict)
    option_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failures": self.failures,
            "option_id": self.option_id,
            "decision_latency_ms": self.latencies_ms,
            "decision_blocks": self.decision_blocks,
        }


async def run_demo(
    sequencer: str,
    nodes: Mapping[str, str],
    genesis: Genesis,
    say: Callable[[str], None] = print,
    expiry_blocks: int = 40,
) -> DemoResult:
    """Run the story; `nodes` maps rollup name -> node endpoint and must hold the
    option rollup and the collateral rollup of genesis."""
    result = DemoResult()
    on, locked_on = compute_option_rollups(genesis)
    missing = [r for r in (locked_on, on) if r not in nodes]
    if missing:
        raise InvalidInput(f"the demo needs a node of {' and '.join(missing)}")
    usdc = genesis.get_asset("USDC")
    eth = genesis.get_asset("ETH")
    if usdc is None or eth is None:
        have = ", ".join(a.symbol for a in genesis.assets)
        raise InvalidInput(f"the demo writes an ETH put paid in USDC: genesis has {have}")

    def usd(x: int) -> str:
        return f"{format_units(x, usdc.decimals)} USDC"

    def check(cond: bool, what: str) -> None:
        say(f"    {'ok ' if cond else 'FAIL'}  {what}")
        if not cond:
            result.ok = False
            result.failures.append(what)

    writer, holder, keeper = derive_dev_account(2), derive_dev_account(3), derive_dev_account(4)
    oracle = derive_oracle_key()
    strike = 2_800 * 10**usdc.decimals
    size = 2 * 10**eth.decimals
    premium = 50 * 10**usdc.decimals
    chain = genesis.chain_id

    async with (
        Client(sequencer, chain) as seq,
        NodeClient(nodes[locked_on]) as a,
        NodeClient(nodes[on]) as b,
    ):
        clients = {locked_on: a, on: b}

        async def usdc_of(node: NodeClient, who: Address) -> int:
            return (await node.balances(who)).get("USDC", 0)

        async def snapshot() -> dict[str, int]:
            return {
                f"writer@{locked_on}": await usdc_of(a, writer.address),
                f"writer@{on}": await usdc_of(b, writer.address),
                f"holder@{locked_on}": await usdc_of(a, holder.address),
                f"holder@{on}": await usdc_of(b, holder.address),
            }

        def show(snap: dict[str, int]) -> None:
            say("    balances: " + ", ".join(f"{k} {usd(v)}" for k, v in snap.items()))

        async def post_price(price: int) -> None:
            head = (await seq.status()).height
            ack = await seq.submit_tx(
                build_price_update(oracle, on, "ETH", "USDC", price, head + 100, chain)
            )
            receipt = await b.wait_for_receipt(ack.id)
            check(receipt.ok, f"price ETH/USDC {usd(price)} posted on {on} at height {ack.height}")

        async def submit_and_decide(bundle: Any, label: str) -> tuple[bytes, dict[str, Any]]:
            loop = asyncio.get_running_loop()
            started = loop.time()
            ack = await seq.submit_bundle(bundle)
            records = await wait_for_decision(clients, ack.id)
            result.latencies_ms[label] = round((loop.time() - started) * 1000, 1)
            result.decision_blocks[label] = (
                max(r.decision_height for r in records.values()) - ack.height
            )
            return ack.id, records

        say(f"writer  {encode_address(writer.address)} (dev 2): capital on {locked_on}")
        say(f"holder  {encode_address(holder.address)} (dev 3): buys protection on {on}")
        say(f"1. The oracle posts a price on {on}")
        await post_price(3_000 * 10**usdc.decimals)

        before = await snapshot()
        head = (await seq.status()).height
        expiry = head + expiry_blocks
        need = compute_collateral(OptionKind.PUT, strike, size, eth.decimals)
        say(
            f"2. Open: a put on 2 ETH at strike {usd(strike)}, expiry height {expiry},"
            f" premium {usd(premium)}; {usd(need)} locked on {locked_on} as collateral"
        )
        show(before)
        bundle = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            strike,
            size,
            expiry,
            premium,
            head + 200,
            underlying_decimals=eth.decimals,
            collateral_rollup=locked_on,
            option_rollup=on,
            chain_id=chain,
        )
        option_id, records = await submit_and_decide(bundle, "open")
        result.option_id = option_id.hex()
        say(f"    option / lien id {option_id.hex()}")
        check(
            all(r.status == COMMITTED for r in records.values()),
            f"open committed on {locked_on} and {on}",
        )
        lien = await a.lien(option_id)
        position = await b.option(option_id)
        check(
            lien.status == npb.Lien.STATUS_LOCKED
            and lien.amount == need
            and lien.owner == writer.address,
            f"lien on {locked_on}: {usd(lien.amount)} of the writer's, controlled by {on}",
        )
        check(position.status == npb.OptionPosition.STATUS_OPEN, f"option open on {on}")
        after_open = await snapshot()
        show(after_open)
        check(
            after_open[f"writer@{locked_on}"] == before[f"writer@{locked_on}"] - need,
            f"collateral left writer's {locked_on} balance",
        )
        check(
            after_open[f"holder@{on}"] == before[f"holder@{on}"] - premium,
            f"holder paid the premium on {on}",
        )
        check(
            after_open[f"writer@{on}"] == before[f"writer@{on}"] + premium,
            f"writer received the premium on {on}",
        )

        say("3. A second put with too little collateral (1,000 USDC)")
        thin = build_open_option(
            writer,
            holder,
            OptionKind.PUT,
            strike,
            size,
            expiry,
            premium,
            head + 200,
            underlying_decimals=eth.decimals,
            collateral_rollup=locked_on,
            option_rollup=on,
            collateral=1_000 * 10**usdc.decimals,
            chain_id=chain,
        )
        _, records = await submit_and_decide(thin, "thin")
        reason = records[on].reason  # the option rollup checks the margin and says why
        check(all(r.status == ABORTED for r in records.values()), f"aborted: {reason}")
        check(await snapshot() == after_open, "nothing changed on either rollup")

        say(f"4. Wait for expiry (height {expiry}); the price falls to 2,500 USDC")
        await b.wait_for_height(expiry, timeout=60)
        settle_price = 2_500 * 10**usdc.decimals
        await post_price(settle_price)
        payout = compute_payout(OptionKind.PUT, strike, size, settle_price, eth.decimals)

        say(f"5. Settle (submitted by dev 4, anyone may): payout {usd(payout)} to the holder")
        head = (await seq.status()).height
        settle = build_settle_option(
            keeper,
            option_id,
            payout,
            holder.address,
            head + 100,
            option_rollup=on,
            collateral_rollup=locked_on,
            chain_id=chain,
        )
        _, records = await submit_and_decide(settle, "settle")
        check(
            all(r.status == COMMITTED for r in records.values()),
            f"settle committed on {locked_on} and {on}",
        )
        final = await snapshot()
        show(final)
        check(
            final[f"holder@{locked_on}"] == after_open[f"holder@{locked_on}"] + payout,
            f"holder paid {usd(payout)} on {locked_on}",
        )
        check(
            final[f"writer@{locked_on}"] == after_open[f"writer@{locked_on}"] + need - payout,
            f"writer got the rest back on {locked_on}: {usd(need - payout)}",
        )
        lien = await a.lien(option_id)
        position = await b.option(option_id)
        check(lien.status == npb.Lien.STATUS_RELEASED, "lien released")
        check(
            position.status == npb.OptionPosition.STATUS_SETTLED and position.payout == payout,
            f"option settled at {usd(position.settle_price)}",
        )
    say(
        "decision latency (submit -> decided on both rollups): "
        + ", ".join(
            f"{k} {v} ms / {result.decision_blocks[k]} blocks"
            for k, v in result.latencies_ms.items()
        )
    )
    return result
