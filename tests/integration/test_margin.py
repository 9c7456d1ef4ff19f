"""The consolidated margin view (devnet.margin, `devnet margin`, the explorer's
/margin page) on a real devnet of three rollups (alpha, beta, gamma; processes
started as `devnet up` starts them). The story, run once for the module:

1. option A on beta backed by liens on alpha and gamma (3,600 + 2,000 USDC), and
   option B backed by one lien on alpha (2,000 USDC): per rollup and asset the
   writer's free balance is its balance, locked is its liens, the totals add up
   across rollups, and each lien shows the option it backs with its place in the
   payout order;
2. alpha's node paused, option C (its lien on alpha) is submitted: beta prepares
   it and holds the holder's premium in escrow while alpha cannot vote; the
   holder's view shows that escrow on beta and alpha down (the view still shows
   the others, the totals are partial), in the library and in `devnet margin`;
3. alpha resumed, C commits and the escrow is gone;
4. A and B settled at 2,500 USDC (A pays 600 USDC from its first lien, B nothing):
   their liens leave the view, the collateral is free again, the payout moved.

Then `devnet margin N --json` and its one-line error for a bad account, and the
explorer's /api/margin and /margin pages."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from explorersupport import explorer_url, get
from grpc import aio

from devnet import faults, network
from devnet.manifest import Manifest
from devnet.margin import margin_json, read_margin_from
from xrollup.client import (
    Client,
    NodeClient,
    build_open_option,
    build_price_update,
    build_settle_option,
    node_clients,
    option_liens,
    wait_for_decision,
)
from xrollup.genesis import dev_genesis
from xrollup.keys import derive_dev_account, derive_oracle_key, encode_address
from xrollup.model import OptionKind
from xrollup.options import compute_payout
from xrollup.v1 import node_pb2 as npb

DEVNET = str(Path(sys.executable).parent / "devnet")
ROLLUPS = ("alpha", "beta", "gamma")
USDC, ETH = 10**6, 10**9
FUNDED_USDC, FUNDED_ETH = 1_000_000 * USDC, 1_000 * ETH  # per dev account per rollup
WRITER_INDEX, HOLDER_INDEX = 6, 7
WRITER, HOLDER = derive_dev_account(WRITER_INDEX), derive_dev_account(HOLDER_INDEX)
DEV = dev_genesis(rollups=ROLLUPS)
# Room for the story: a bundle stays undecided while alpha is paused (deadline), and
# the options can be settled long after expiry (grace), at 20 ms blocks.
GENESIS = dataclasses.replace(
    DEV,
    limits=dataclasses.replace(DEV.limits, bundle_deadline_blocks=3000, lien_grace_blocks=5000),
)
COMMITTED = npb.BundleRecord.STATUS_COMMITTED
A_LIENS = [("alpha", 3_600 * USDC), ("gamma", 2_000 * USDC)]
B_LIEN, C_LIEN = 2_000 * USDC, 1_000 * USDC
A_PREMIUM, B_PREMIUM, C_PREMIUM = 50 * USDC, 20 * USDC, 10 * USDC
PRICE = 2_500 * USDC


def ints(amount: int, asset: str) -> int:
    return int(amount)


@dataclass
class Story:
    dir: Path
    manifest: Manifest
    a: bytes
    b: bytes
    c: bytes
    opened: dict[str, Any]  # the writer's view after A and B, base units
    opened_holder: dict[str, Any]
    balances_opened: dict[str, dict[str, int]]  # the writer's GetBalances per rollup
    held: dict[str, Any]  # the holder's view with alpha paused and C undecided
    held_cli: dict[str, Any]  # `devnet margin 7 --json --base-units` then
    held_seconds: float  # how long that command took
    decided: dict[str, Any]  # the holder's view once C committed
    settled: dict[str, Any]  # the writer's view after A and B settled
    settled_holder: dict[str, Any]
    balances_settled: dict[str, dict[str, int]]
    payout: int


def devnet_cli(
    data_dir: Path, *args: str, expect: int = 0, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [DEVNET, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == expect, f"devnet {' '.join(args)}: {p.returncode}\n{p.stdout}{p.stderr}"
    assert "Traceback" not in p.stdout + p.stderr
    return p


def endpoints(manifest: Manifest) -> dict[str, list[str]]:
    out = {}
    for r in ROLLUPS:
        rec = manifest.get(r)
        assert rec is not None
        out[r] = [rec.endpoint]
    return out


async def view(manifest: Manifest, who: bytes) -> dict[str, Any]:
    return margin_json(await read_margin_from(who, endpoints(manifest)), ints)


async def balances(manifest: Manifest, who: bytes) -> dict[str, dict[str, int]]:
    async with node_clients({r: eps[0] for r, eps in endpoints(manifest).items()}) as nodes:
        return {r: await n.balances(who) for r, n in nodes.items()}


async def open_option(
    c: Client,
    manifest: Manifest,
    strike: int,
    size: int,
    expiry: int,
    premium: int,
    liens: list[tuple[str, int]],
    wait: bool = True,
) -> bytes:
    bundle = build_open_option(
        WRITER,
        HOLDER,
        OptionKind.PUT,
        strike,
        size,
        expiry,
        premium,
        (await c.status()).height + 5000,
        liens=liens,
        option_rollup="beta",
        chain_id=GENESIS.chain_id,
    )
    ack = await c.submit_bundle(bundle)
    if wait:
        await decide(manifest, ack.id, ["beta", *(r for r, _ in liens)])
    return ack.id


async def decide(manifest: Manifest, bundle_id: bytes, rollups: list[str]) -> None:
    eps = {r: eps[0] for r, eps in endpoints(manifest).items() if r in rollups}
    async with node_clients(eps) as nodes:
        records = await wait_for_decision(nodes, bundle_id, timeout=60)
    assert {r: x.status for r, x in records.items()} == dict.fromkeys(eps, COMMITTED)


async def settle(c: Client, manifest: Manifest, option_id: bytes) -> int:
    async with NodeClient(endpoints(manifest)["beta"][0]) as beta:
        o = await beta.option(option_id)
        px = await beta.price(o.underlying, o.quote)
    payout = compute_payout(OptionKind(o.kind), o.strike, o.size, px.price, 9)
    bundle = build_settle_option(
        WRITER,
        option_id,
        payout,
        o.holder,
        await c.expiry(),
        option_rollup="beta",
        chain_id=GENESIS.chain_id,
        liens=option_liens(o),
    )
    ack = await c.submit_bundle(bundle)
    await decide(manifest, ack.id, ["beta", *(r for r, _ in option_liens(o))])
    return payout


async def run_story(data_dir: Path, manifest: Manifest) -> Story:
    seq = manifest.get("sequencer")
    assert seq is not None
    async with Client(seq.endpoint, GENESIS.chain_id) as c:
        expiry = (await c.status()).height + 150
        a = await open_option(c, manifest, 2_800 * USDC, 2 * ETH, expiry, A_PREMIUM, A_LIENS)
        b = await open_option(
            c, manifest, 2_000 * USDC, 1 * ETH, expiry, B_PREMIUM, [("alpha", B_LIEN)]
        )
        opened = await view(manifest, WRITER.address)
        opened_holder = await view(manifest, HOLDER.address)
        balances_opened = await balances(manifest, WRITER.address)

        faults.pause(data_dir, "alpha")
        try:
            c_id = await open_option(
                c,
                manifest,
                1_000 * USDC,
                1 * ETH,
                (await c.status()).height + 10_000,
                C_PREMIUM,
                [("alpha", C_LIEN)],
                wait=False,
            )
            async with NodeClient(endpoints(manifest)["beta"][0]) as beta:
                await beta.wait_for_receipt(c_id)  # prepared on beta: the premium in escrow
            held = await view(manifest, HOLDER.address)
            started = time.monotonic()
            cli = devnet_cli(data_dir, "margin", str(HOLDER_INDEX), "--json", "--base-units")
            held_seconds = time.monotonic() - started
        finally:
            faults.resume(data_dir, "alpha")
        await decide(manifest, c_id, ["alpha", "beta"])
        decided = await view(manifest, HOLDER.address)

        async with NodeClient(endpoints(manifest)["beta"][0]) as beta:
            await beta.wait_for_height(expiry)
            price = build_price_update(
                derive_oracle_key(),
                "beta",
                "ETH",
                "USDC",
                PRICE,
                await c.expiry(),
                GENESIS.chain_id,
            )
            ack = await c.submit_tx(price)
            assert (await beta.wait_for_receipt(ack.id)).ok
        payout = await settle(c, manifest, a)
        assert await settle(c, manifest, b) == 0
        settled = await view(manifest, WRITER.address)
        settled_holder = await view(manifest, HOLDER.address)
        balances_settled = await balances(manifest, WRITER.address)
    return Story(
        data_dir,
        manifest,
        a,
        b,
        c_id,
        opened,
        opened_holder,
        balances_opened,
        held,
        json.loads(cli.stdout),
        held_seconds,
        decided,
        settled,
        settled_holder,
        balances_settled,
        payout,
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    data_dir = tmp_path_factory.mktemp("margin") / "dn"
    manifest = network.start_devnet(data_dir, genesis=GENESIS)
    try:
        yield asyncio.run(run_story(data_dir, manifest))
    finally:
        network.stop_devnet(data_dir, grace=5.0)


def rollup(v: dict[str, Any], name: str) -> dict[str, Any]:
    [r] = [r for r in v["rollups"] if r["rollup"] == name]
    return r


def holdings(free: int, locked: int = 0, escrowed: int = 0) -> dict[str, int]:
    return {"free": free, "locked": locked, "escrowed": escrowed, "total": free + locked + escrowed}


# ---------------------------------------------------------------- opened


def test_per_rollup_and_asset_free_is_the_balance_and_locked_the_liens(story: Story) -> None:
    v = story.opened
    assert [r["rollup"] for r in v["rollups"]] == list(ROLLUPS)
    assert v["down"] == [] and v["partial"] is False
    for name in ROLLUPS:
        r = rollup(v, name)
        assert r["up"] and r["height"] > 0
        assert {a: h["free"] for a, h in r["assets"].items()} == story.balances_opened[name]
    locked_alpha = A_LIENS[0][1] + B_LIEN
    assert rollup(v, "alpha")["assets"] == {
        "ETH": holdings(FUNDED_ETH),
        "USDC": holdings(FUNDED_USDC - locked_alpha, locked_alpha),
    }
    assert rollup(v, "gamma")["assets"]["USDC"] == holdings(
        FUNDED_USDC - A_LIENS[1][1], A_LIENS[1][1]
    )
    assert rollup(v, "beta")["assets"]["USDC"] == holdings(FUNDED_USDC + A_PREMIUM + B_PREMIUM)
    locked = A_LIENS[0][1] + A_LIENS[1][1] + B_LIEN
    assert v["totals"] == {
        "ETH": holdings(3 * FUNDED_ETH),
        "USDC": holdings(3 * FUNDED_USDC + A_PREMIUM + B_PREMIUM - locked, locked),
    }


def test_each_lien_shows_the_option_it_backs_and_its_place_in_the_payout_order(
    story: Story,
) -> None:
    v = story.opened
    alpha = {bytes.fromhex(x["id"]): x for x in rollup(v, "alpha")["liens"]}
    [gamma] = rollup(v, "gamma")["liens"]
    assert alpha.keys() == {story.a, story.b} and gamma["id"] == story.a.hex()
    a_alpha, b_alpha = alpha[story.a], alpha[story.b]
    assert (a_alpha["amount"], a_alpha["status"]) == (A_LIENS[0][1], "locked")
    assert (gamma["amount"], gamma["status"]) == (A_LIENS[1][1], "locked")
    assert (b_alpha["amount"], b_alpha["status"]) == (B_LIEN, "locked")
    for lien, place, of in ((a_alpha, 1, 2), (gamma, 2, 2), (b_alpha, 1, 1)):
        backs = lien["backs"]
        assert (backs["rollup"], backs["place"], backs["of"], backs["error"]) == (
            "beta",
            place,
            of,
            None,
        )
        assert lien["controller_rollup"] == "beta"
        assert lien["reclaimable_height"] == lien["option_expiry_height"] + 5000
    option_a = a_alpha["backs"]["option"]
    assert option_a == gamma["backs"]["option"]
    assert (option_a["status"], option_a["kind"], option_a["size"], option_a["strike"]) == (
        "open",
        "put",
        2 * ETH,
        2_800 * USDC,
    )
    assert option_a["liens"] == [{"rollup": r, "amount": x} for r, x in A_LIENS]
    assert b_alpha["backs"]["option"]["strike"] == 2_000 * USDC
    # beta: the writer wrote both options, the holder holds them; neither has a lien there
    for who, role in ((story.opened, "writer"), (story.opened_holder, "holder")):
        beta = rollup(who, "beta")
        assert sorted((o["id"], o["role"]) for o in beta["options"]) == sorted(
            (x.hex(), role) for x in (story.a, story.b)
        )
        assert beta["liens"] == [] and beta["escrows"] == []
    assert all(rollup(story.opened_holder, r)["liens"] == [] for r in ROLLUPS)


# ---------------------------------------------------------------- held


def test_an_undecided_bundle_is_escrow_and_a_paused_node_is_down(story: Story) -> None:
    for v in (story.held, story.held_cli):
        assert v["down"] == ["alpha"] and v["partial"] is True
        alpha = rollup(v, "alpha")
        assert alpha["up"] is False and alpha["assets"] == {}
        # a stopped process: the call times out, or the connection attempt does
        assert alpha["error"].split(":")[0] in ("DEADLINE_EXCEEDED", "UNAVAILABLE")
        beta = rollup(v, "beta")
        [escrow] = beta["escrows"]
        assert escrow["bundle_id"] == story.c.hex() and escrow["held"] == {"USDC": C_PREMIUM}
        assert escrow["deadline_height"] == escrow["prepare_height"] + 3000
        paid = A_PREMIUM + B_PREMIUM + C_PREMIUM
        assert beta["assets"]["USDC"] == holdings(FUNDED_USDC - paid, 0, C_PREMIUM)
        assert rollup(v, "gamma")["assets"]["USDC"] == holdings(FUNDED_USDC)
        # alpha is left out of the totals
        assert v["totals"]["USDC"] == holdings(2 * FUNDED_USDC - paid, 0, C_PREMIUM)
    assert story.held_seconds < 30


def test_once_decided_the_escrow_is_gone_and_the_option_held(story: Story) -> None:
    v = story.decided
    assert v["down"] == []
    assert all(rollup(v, r)["escrows"] == [] for r in ROLLUPS)
    beta = rollup(v, "beta")
    assert story.c.hex() in {o["id"] for o in beta["options"]}
    assert beta["assets"]["USDC"]["escrowed"] == 0


# ---------------------------------------------------------------- settled


def test_after_settlement_the_liens_are_gone_and_balances_moved(story: Story) -> None:
    v = story.settled
    assert story.payout == 600 * USDC  # (2,800 - 2,500) x 2 ETH, paid from A's first lien
    [c_lien] = rollup(v, "alpha")["liens"]  # only C's remains
    assert c_lien["id"] == story.c.hex() and c_lien["amount"] == C_LIEN
    assert (c_lien["backs"]["place"], c_lien["backs"]["of"]) == (1, 1)
    assert rollup(v, "gamma")["liens"] == []
    assert [o["id"] for o in rollup(v, "beta")["options"]] == [story.c.hex()]
    alpha_free = FUNDED_USDC - C_LIEN - story.payout
    assert rollup(v, "alpha")["assets"]["USDC"] == holdings(alpha_free, C_LIEN)
    assert rollup(v, "gamma")["assets"]["USDC"] == holdings(FUNDED_USDC)
    premiums = A_PREMIUM + B_PREMIUM + C_PREMIUM
    assert rollup(v, "beta")["assets"]["USDC"] == holdings(FUNDED_USDC + premiums)
    for name in ROLLUPS:
        free = {a: h["free"] for a, h in rollup(v, name)["assets"].items()}
        assert free == story.balances_settled[name]
    assert v["totals"]["USDC"] == holdings(
        3 * FUNDED_USDC - C_LIEN - story.payout + premiums, C_LIEN
    )
    holder_alpha = rollup(story.settled_holder, "alpha")["assets"]["USDC"]
    assert holder_alpha == holdings(FUNDED_USDC + story.payout)


def test_get_account_refuses_a_bad_address_with_invalid_argument(story: Story) -> None:
    async def ask() -> aio.AioRpcError:
        async with NodeClient(endpoints(story.manifest)["alpha"][0]) as n:
            with pytest.raises(aio.AioRpcError) as e:
                await n.account(b"\x01" * 5)
            return e.value

    e = asyncio.run(ask())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.details() == "address is 5 bytes, want 20 (an account is a 20-byte address)"


# ---------------------------------------------------------------- the command line


def test_devnet_margin_json_in_units_and_base_units(story: Story) -> None:
    as_units = json.loads(devnet_cli(story.dir, "margin", str(WRITER_INDEX), "--json").stdout)
    by_address = json.loads(
        devnet_cli(story.dir, "margin", encode_address(WRITER.address), "--json").stdout
    )
    base = json.loads(
        devnet_cli(story.dir, "margin", str(WRITER_INDEX), "--json", "--base-units").stdout
    )

    assert as_units["address"] == encode_address(WRITER.address)
    assert rollup(as_units, "alpha")["assets"]["USDC"]["locked"] == "1000"
    assert rollup(base, "alpha")["assets"]["USDC"]["locked"] == C_LIEN
    assert base["totals"]["USDC"]["locked"] == C_LIEN
    [lien] = rollup(as_units, "alpha")["liens"]
    assert lien["backs"]["option"]["strike"] == "1000" and lien["backs"]["place"] == 1
    for v in (as_units, by_address):  # heights move on between the calls: compare amounts
        assert v["totals"] == as_units["totals"]


def test_devnet_margin_as_tables(story: Story) -> None:
    p = devnet_cli(story.dir, "margin", str(WRITER_INDEX))
    for text in ("margin of", "liens", "1 of 1", "totals", "options", "writer"):
        assert text in p.stdout, text


def test_a_bad_account_is_one_line(story: Story) -> None:
    p = devnet_cli(story.dir, "margin", "0x1234", expect=2)
    assert p.stdout == ""
    [line] = p.stderr.splitlines()
    assert line.startswith("error: ACCOUNT:") and "20 bytes" in line
    assert "devnet margin --help" in line


# ---------------------------------------------------------------- the explorer


def test_the_explorer_margin_page_and_its_api(story: Story) -> None:
    base = explorer_url(story.manifest)
    writer = encode_address(WRITER.address)
    deadline = time.monotonic() + 15
    while True:  # the explorer reads node health once it is up
        api = get(f"{base}/api/margin/{writer}")
        if (api.status == 200 and not api.json()["down"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert api.status == 200, api.body[:300]
    d = api.json()
    assert d["totals"]["USDC"]["locked"] == str(C_LIEN)  # base units as strings
    [lien] = rollup(d, "alpha")["liens"]
    assert lien["id"] == story.c.hex() and lien["backs"]["option"]["status"] == "open"

    page = get(f"{base}/margin/{writer}")
    assert page.status == 200
    for text in ("Margin of", "Totals across rollups", "1,000 USDC", "lien 1 of 1", story.c.hex()):
        assert text in page.body, text
    assert f'href="/margin/{writer}"' in get(f"{base}/account/{writer}").body
    assert get(f"{base}/api/margin/0x1234").status == 400
