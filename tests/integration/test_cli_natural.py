"""The `devnet` command reads naturally (issue 9), as users type it
(.venv/bin/devnet in a subprocess) against one devnet shared by the module:
amounts are decimals in the asset's units (exact base units moved; --base-units
for scripts), the rollups an option uses come from genesis, help is grouped under
section headings, and every bad invocation is one line on stderr starting with
`error:` and never a traceback (exit 2 for a bad flag or value, 1 for what went
wrong at run time)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from xrollup.genesis import Genesis, load_genesis

DEVNET = str(Path(sys.executable).parent / "devnet")
SECTIONS = (
    "Lifecycle",
    "Chain",
    "Options and liens",
    "Faults",
    "Verification",
    "Observe",
    "Experiments",
)


class Devnet(Protocol):
    dir: Path

    def __call__(
        self, *args: str, expect: int | None = 0, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]: ...


class _Runner:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir

    def __call__(
        self, *args: str, expect: int | None = 0, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [DEVNET, *args, "--data-dir", str(data_dir or self.dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if expect is not None:
            assert p.returncode == expect, (
                f"devnet {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """`devnet up` once for the module (no replicas), `devnet down` at the end."""
    run = _Runner(tmp_path_factory.mktemp("natural") / "dn")
    try:
        run("up", "--json")
        yield run
    finally:
        run("down", expect=None)


def genesis_of(devnet: Devnet) -> Genesis:
    return load_genesis(devnet.dir / "genesis.json")


def balances(devnet: Devnet, rollup: str, asset: str) -> dict[int, int]:
    """Each dev account's balance in base units (accounts --json --base-units)."""
    accounts = as_json(devnet("accounts", "--json", "--base-units"))
    assert accounts["source"] == "nodes"
    return {a["index"]: a["balances"][rollup][asset] for a in accounts["accounts"]}


def as_json(p: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(p.stdout)


def assert_one_error_line(p: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    lines = p.stderr.splitlines()
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in p.stdout + p.stderr and "Usage:" not in p.stderr
    assert p.stdout == ""


def test_help_lists_the_commands_under_section_headings() -> None:
    p = subprocess.run([DEVNET, "--help"], capture_output=True, text=True, timeout=30)

    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    headings = [line.removesuffix(":") for line in lines if line.endswith(":") and line[0] != " "]
    assert headings == ["Options", *SECTIONS]  # click's own flags first, then the commands

    def section_of(command: str) -> str:
        title = ""
        for line in lines:
            if line.endswith(":") and not line.startswith(" "):
                title = line.removesuffix(":")
            elif line.split()[:1] == [command]:
                return title
        raise AssertionError(f"{command} not in the help")

    expected = {
        "up": "Lifecycle",
        "status": "Lifecycle",
        "accounts": "Lifecycle",
        "transfer": "Chain",
        "price": "Chain",
        "option": "Options and liens",
        "lien": "Options and liens",
        "margin": "Options and liens",
        "kill": "Faults",
        "byzantine": "Faults",
        "faults": "Faults",
        "check": "Verification",
        "watch": "Observe",
        "bundle": "Observe",
        "experiment": "Experiments",
    }
    assert {c: section_of(c) for c in expected} == expected


TRANSFER = ("transfer", "--rollup", "alpha", "--from", "0", "--to", "1", "--asset", "USDC")


def test_a_decimal_amount_moves_exactly_its_base_units(devnet: Devnet) -> None:
    rollup = genesis_of(devnet).rollup_names[0]
    send = ("transfer", "--rollup", rollup, "--from", "4", "--to", "5", "--wait", "--json")
    usdc_before, eth_before = balances(devnet, rollup, "USDC"), balances(devnet, rollup, "ETH")

    usdc = as_json(devnet(*send, "--asset", "USDC", "--amount", "12.345678"))
    eth = as_json(devnet(*send, "--asset", "ETH", "--amount", "0.000000001"))

    assert (usdc["amount"], usdc["receipt"]["status"]) == ("12.345678", "ok")
    assert (eth["amount"], eth["receipt"]["status"]) == ("0.000000001", "ok")
    usdc_after, eth_after = balances(devnet, rollup, "USDC"), balances(devnet, rollup, "ETH")
    assert usdc_before[4] - usdc_after[4] == usdc_after[5] - usdc_before[5] == 12_345_678
    assert eth_before[4] - eth_after[4] == eth_after[5] - eth_before[5] == 1
    shown = {
        a["index"]: a["balances"][rollup] for a in as_json(devnet("accounts", "--json"))["accounts"]
    }
    assert shown[5]["USDC"] == "1000012.345678" and shown[5]["ETH"] == "1000.000000001"


def test_base_units_in_and_out(devnet: Devnet) -> None:
    rollup = genesis_of(devnet).rollup_names[-1]
    before = balances(devnet, rollup, "USDC")

    sent = as_json(
        devnet(
            *("transfer", "--rollup", rollup, "--from", "6", "--to", "7", "--asset", "USDC"),
            *("--amount", "7", "--base-units", "--wait", "--json"),
        )
    )

    assert sent["amount"] == 7 and sent["receipt"]["status"] == "ok"
    after = balances(devnet, rollup, "USDC")
    assert (before[6] - after[6], after[7] - before[7]) == (7, 7)
    text = devnet("accounts", "--base-units").stdout
    assert str(after[7]) in text  # the table too shows integers of base units


def test_an_option_uses_the_rollups_genesis_names_and_decimal_amounts(devnet: Devnet) -> None:
    """Defaults from genesis: the option on the last rollup, its collateral (the
    lien) on the first other one; the price on the option rollup."""
    names = genesis_of(devnet).rollup_names
    option_rollup, collateral_rollup = names[-1], names[0]

    posted = as_json(devnet("price", "--price", "3000.5", "--json"))
    opened = as_json(
        devnet(
            *("option", "open", "--writer", "2", "--holder", "3", "--kind", "put"),
            *("--strike", "2800", "--size", "2.5", "--premium", "50.25", "--json"),
        )
    )
    shown = as_json(devnet("option", "show", opened["id"], "--json"))
    raw = as_json(devnet("option", "show", opened["id"], "--json", "--base-units"))
    lien = as_json(devnet("lien", "show", opened["id"], "--json"))

    assert (posted["price"], posted["receipt"]["rollup"]) == ("3000.5", option_rollup)
    assert (opened["option_rollup"], opened["collateral_rollups"]) == (
        option_rollup,
        [collateral_rollup],
    )
    assert opened["status"] == "committed"
    assert set(opened["rollups"]) == {option_rollup, collateral_rollup}
    assert (shown["strike"], shown["size"], shown["premium"]) == ("2800", "2.5", "50.25")
    assert shown["collateral"] == "7000" and shown["collateral_rollups"] == [collateral_rollup]
    assert (raw["strike"], raw["size"], raw["collateral"]) == (2800 * 10**6, 25 * 10**8, 7 * 10**9)
    assert (lien["asset"], lien["amount"], lien["controller_rollup"]) == (
        "USDC",
        "7000",
        option_rollup,
    )


@pytest.mark.parametrize(
    ("amount", "flags", "says"),
    [
        ("0.0000001", (), "--amount '0.0000001' has more than 6 decimals"),
        ("2.5", ("--base-units",), "--amount '2.5' is not an integer of base units"),
        ("lots", (), "--amount 'lots' is not a number"),
        ("0", (), "--amount must be more than 0"),
        ("-1", (), "must be a finite, non-negative number"),
        ("1e30", (), "is too large"),
        ("10000000000000", (), "over the largest amount genesis allows"),
    ],
)
def test_an_amount_the_asset_cannot_hold_is_one_line(
    devnet: Devnet, amount: str, flags: tuple[str, ...], says: str
) -> None:
    p = devnet(*TRANSFER, "--amount", amount, *flags, expect=None)

    assert_one_error_line(p, 2, says)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ((*TRANSFER, "--amount", "5", "--bogus"), 2, "no such option '--bogus'"),
        (TRANSFER, 2, "missing option '--amount'"),
        (
            ("transfer", "--from", "0", "--to", "1", "--asset", "USDC", "--amount", "1"),
            2,
            "--rollup",
        ),
        ((*TRANSFER[:6], "0xnothex", *TRANSFER[7:], "--amount", "1"), 2, "not hex"),
        (("option", "show", "1234"), 2, "is not a 32-byte hex id"),
        (("transfer", "--rollup", "gamma", *TRANSFER[3:], "--amount", "1"), 2, "unknown rollup"),
        ((*TRANSFER[:-1], "DOGE", "--amount", "1"), 2, "unknown asset 'DOGE'"),
        ((*TRANSFER[:3], "--from", "x", *TRANSFER[5:], "--amount", "1"), 2, "--from 'x'"),
        (("price", "--price", "3000", "--rollup", "gamma"), 2, "unknown rollup 'gamma'"),
        (("lien", "show", "00" * 32, "--rollup", "gamma"), 2, "unknown rollup 'gamma'"),
        (
            ("option", "open", "--writer", "2", "--holder", "3", "--kind", "put"),
            2,
            "missing option '--strike'",
        ),
        (("option", "show", "00" * 32), 1, "NOT_FOUND"),
        (("receipt", "zz"), 2, "is not a hex id"),
        (("byzantine", "lie", "alpha"), 2, "'lie' is not one of"),
        (("delay", "alpha", "99999999"), 2, "delay must be within 0..60000 ms"),
        (("kill", "nosuch"), 1, "no process 'nosuch'"),
        ((*TRANSFER, "--amount", "1", "--sequencer", "127.0.0.1:1"), 1, "UNAVAILABLE"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_a_bad_invocation_is_one_line(
    devnet: Devnet, args: tuple[str, ...], code: int, says: str
) -> None:
    p = devnet(*args, expect=None)

    assert_one_error_line(p, code, says)
    if code == 2:
        assert f"(see devnet {args[0]}" in p.stderr


def test_an_unreadable_devnet_directory_is_one_line(devnet: Devnet, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "devnet.json").write_text("{not json")
    for args in (("status",), ("down",), ("watch", "--count", "1"), ("lien", "show", "00" * 32)):
        p = devnet(*args, data_dir=broken, expect=None)
        assert_one_error_line(p, 1, "devnet.json in")
    (broken / "devnet.json").unlink()
    (broken / "genesis.json").write_text("{}")
    assert_one_error_line(devnet("accounts", data_dir=broken, expect=None), 1, "genesis")


def test_no_devnet_in_the_data_dir_is_one_line(devnet: Devnet, tmp_path: Path) -> None:
    for args in ((*TRANSFER, "--amount", "1"), ("check",), ("option", "show", "00" * 32)):
        p = devnet(*args, data_dir=tmp_path / "none", expect=None)
        assert_one_error_line(p, 1, f"no devnet in {tmp_path / 'none'}")


def test_check_reports_conservation_in_the_asset_units(devnet: Devnet) -> None:
    genesis = genesis_of(devnet)
    minted = sum(a.amount for a in genesis.allocations if a.asset == "USDC")

    shown = as_json(devnet("check", "--json"))["checks"]["conservation"]
    raw = as_json(devnet("check", "--json", "--base-units"))["checks"]["conservation"]

    assert shown["ok"] and raw["ok"]
    assert shown["assets"]["USDC"]["minted"] == str(minted // 10**6)
    assert raw["assets"]["USDC"]["minted"] == minted


def test_watch_refreshes_count_times_and_shows_heights(devnet: Devnet) -> None:
    names = genesis_of(devnet).rollup_names

    text = devnet("watch", "--count", "2", "--interval", "0.2")
    lines = devnet("watch", "--count", "2", "--interval", "0.2", "--json").stdout.splitlines()

    assert "devnet watch  head " in text.stdout and "no faults in force" in text.stdout
    assert all(name in text.stdout for name in names)
    first, second = (json.loads(line) for line in lines)
    assert isinstance(first["head"], int) and second["head"] >= first["head"] > 0
    assert second["blocks_per_s"] > 0 and second["window_blocks"] >= 2
    nodes = {p["name"]: p for p in second["processes"] if p["role"] == "node"}
    assert set(nodes) == set(names)
    for p in nodes.values():
        assert p["health"] == "SERVING" and isinstance(p["height"], int) and p["lag"] is not None
    assert second["faults"] == []


def test_ctrl_c_stops_watch_with_exit_code_0(devnet: Devnet) -> None:
    p = subprocess.Popen(
        [DEVNET, "watch", "--interval", "0.2", "--data-dir", str(devnet.dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)

    assert p.returncode == 0, (out, err)
    assert "Traceback" not in out + err and "devnet watch  head " in out


def test_watch_shows_the_faults_in_force(devnet: Devnet) -> None:
    node = genesis_of(devnet).rollup_names[0]
    devnet("delay", node, "30")
    try:
        snap = as_json(devnet("watch", "--count", "1", "--json"))
    finally:
        devnet("heal", node)

    assert snap["faults"] == [{"name": node, "what": "delay 30 ms"}]
