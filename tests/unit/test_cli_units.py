"""The pure helpers behind the command line's amounts and rollup defaults:
decimal text <-> base units exactly (devnet.amounts), how an invocation shows
amounts (Units, with and without --base-units), and which rollups an option uses
when none is named (xrollup.genesis.compute_option_rollups)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devnet.cli.common import Units, pick_rollup
from xrollup.amounts import format_units, parse_units
from xrollup.errors import InvalidInput
from xrollup.genesis import Rollup, compute_option_rollups, dev_genesis


@pytest.mark.parametrize(
    ("text", "decimals", "base_units"),
    [
        ("2.5", 6, 2_500_000),
        ("2.500000", 6, 2_500_000),  # trailing zeros are not precision
        ("1.0000000", 6, 1_000_000),
        ("0.000001", 6, 1),
        ("0.000000001", 9, 1),
        ("1e3", 6, 1_000_000_000),
        ("12.34e2", 6, 1_234_000_000),
        ("0", 6, 0),
        ("1000000", 6, 10**12),
        ("9223372036854.775807", 6, 2**63 - 1),
    ],
)
def test_parse_units_is_exact(text: str, decimals: int, base_units: int) -> None:
    assert parse_units(text, decimals) == base_units


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.0000001", "more than 6 decimals"),
        ("1e-999999999", "more than 6 decimals"),
        ("abc", "not a number"),
        ("", "not a number"),
        ("-1", "non-negative"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("1e999999", "too large"),
        ("123456789012345678901234567", "too large"),
    ],
)
def test_parse_units_refuses_what_the_asset_cannot_hold(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse_units(text, 6, "--amount")


@given(st.integers(0, 2**64 - 1), st.integers(0, 18))
def test_format_then_parse_gives_the_same_base_units(amount: int, decimals: int) -> None:
    assert parse_units(format_units(amount, decimals, grouping=False), decimals) == amount


def test_format_units_groups_thousands_for_people_only() -> None:
    assert format_units(1_000_000_500_000, 6) == "1,000,000.5"
    assert format_units(1_000_000_500_000, 6, grouping=False) == "1000000.5"


def test_units_show_decimals_or_base_units() -> None:
    genesis = dev_genesis()
    decimal, base = Units(genesis), Units(genesis, base_units=True)

    assert decimal.parse("2.5", "USDC", "--amount") == base.parse("2500000", "USDC", "--amount")
    assert decimal.json(2_500_000, "USDC") == "2.5" and base.json(2_500_000, "USDC") == 2_500_000
    assert decimal.json(1, "ETH") == "0.000000001"
    assert decimal.text(10**12, "USDC") == "1,000,000 USDC"
    assert base.text(10**12, "USDC", symbol=False) == "1000000000000"


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (Units(dev_genesis()), "0.0000001"),
        (Units(dev_genesis(), base_units=True), "2.5"),
        (Units(dev_genesis(), base_units=True), "²"),
        (Units(dev_genesis()), "10000000000000"),  # over genesis's max_amount
    ],
)
def test_units_refuse_with_a_usage_exit(units: Units, text: str) -> None:
    with pytest.raises(SystemExit) as e:
        units.parse(text, "USDC", "--amount")
    assert e.value.code == 2


def test_an_option_defaults_to_the_last_rollup_and_collateral_to_the_first_other() -> None:
    genesis = dev_genesis()
    names = genesis.rollup_names
    three = replace(genesis, rollups=(*genesis.rollups, Rollup("gamma", bytes(32))))
    one = replace(genesis, rollups=genesis.rollups[:1])

    assert compute_option_rollups(genesis) == (names[-1], names[0])
    assert compute_option_rollups(three) == ("gamma", names[0])
    with pytest.raises(InvalidInput, match="one rollup"):
        compute_option_rollups(one)


def test_pick_rollup_takes_a_rollup_of_genesis_or_the_default() -> None:
    genesis = dev_genesis()
    first = genesis.rollup_names[0]

    assert pick_rollup(genesis, None, "--rollup", default=first) == first
    assert pick_rollup(genesis, first, "--rollup", default="other") == first
    with pytest.raises(SystemExit) as e:
        pick_rollup(genesis, "nosuch", "--rollup")
    assert e.value.code == 2
