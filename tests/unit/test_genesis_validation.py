"""Genesis validation (xrollup/genesis.py, issue 10): every invalid genesis is
refused with a message naming the field and what is wrong (a table: the change to
the dev genesis's JSON, the fragment the message must hold), a valid one
round-trips, `--rollups N` names follow one rule, and `devnet up` refuses a genesis
its processes cannot run (other keys than the dev ones) or cannot read, in one
line and before starting anything."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devnet.demo import run_demo
from devnet.load import run_load
from xrollup.errors import InvalidInput
from xrollup.genesis import (
    Asset,
    Rollup,
    compute_rollup_names,
    decode_genesis,
    dev_genesis,
    encode_genesis,
    validate_dev_keys,
    validate_genesis,
)
from xrollup.keys import derive_dev_account, derive_keypair, derive_rollup_vote_key

DEVNET = str(Path(sys.executable).parent / "devnet")
Doc = dict[str, Any]


def dev_doc() -> Doc:
    doc: Doc = json.loads(encode_genesis(dev_genesis()))
    return doc


def setting(path: str, value: Any) -> Callable[[Doc], None]:
    """Set doc[a][b]... (list indexes as digits) to value."""

    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return change


def deleting(path: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        del node[last]

    return change


def doing(fn: Callable[[Doc], None]) -> Callable[[Doc], None]:
    return fn


ALICE = "0x" + derive_dev_account(0).address.hex()
KEY = derive_rollup_vote_key("alpha").public_key.hex()

INVALID: list[tuple[str, Callable[[Doc], None], str]] = [
    ("top: a typo", setting("limit", {}), "genesis: unknown key 'limit' (did you mean 'limits'?)"),
    ("top: missing", deleting("sequencer_key"), "genesis: missing key 'sequencer_key'"),
    ("chain_id: spaces", setting("chain_id", "my chain"), "genesis.chain_id 'my chain' is not"),
    ("chain_id: empty", setting("chain_id", ""), "genesis.chain_id '' is not well-formed"),
    ("chain_id: type", setting("chain_id", 7), "genesis.chain_id must be a string, not an int"),
    ("interval: 0", setting("block_interval_ms", 0), "genesis.block_interval_ms is 0: must be"),
    ("interval: text", setting("block_interval_ms", "20"), "block_interval_ms must be an integer"),
    ("rollups: none", setting("rollups", []), "genesis.rollups: a genesis has 1 to 64 rollups"),
    (
        "rollups: too many",
        setting("rollups", [{"name": f"r{i}", "vote_key": KEY} for i in range(65)]),
        "1 to 64 rollups, not 65",
    ),
    ("rollup: upper case", setting("rollups.0.name", "Alpha"), "rollups[0].name 'Alpha' is not a"),
    ("rollup: too long", setting("rollups.0.name", "a" * 33), "is not a well-formed rollup name"),
    ("rollup: digit first", setting("rollups.1.name", "2beta"), "rollups[1].name '2beta' is not"),
    ("rollup: sequencer", setting("rollups.0.name", "sequencer"), "'sequencer' is taken by the"),
    ("rollup: proxy", setting("rollups.0.name", "proxy"), "'proxy' is taken by the devnet"),
    ("rollup: explorer", setting("rollups.1.name", "explorer"), "'explorer' is taken by the"),
    ("rollup: logs folder", setting("rollups.1.name", "logs"), "'logs' is taken by the devnet"),
    ("rollup: replica", setting("rollups.1.name", "alpha-replica"), "ends in '-replica'"),
    ("rollup: twice", setting("rollups.1.name", "alpha"), "rollups[1].name 'alpha' is a second"),
    ("rollup: key short", setting("rollups.0.vote_key", "ab" * 31), "rollups[0].vote_key must be"),
    ("rollup: key not hex", setting("rollups.1.vote_key", "zz" * 32), "64 hex digits"),
    (
        "rollup: extra key",
        setting("rollups.0.weight", 1),
        "genesis.rollups[0]: unknown key 'weight'",
    ),
    ("rollup: not object", setting("rollups.0", "alpha"), "genesis.rollups[0] must be an object"),
    ("oracle key", setting("oracle_key", "00"), "genesis.oracle_key must be 64 hex digits"),
    ("sequencer key", setting("sequencer_key", None), "sequencer_key must be a string, not null"),
    (
        "limits: typo",
        setting("limits.max_leg", 4),
        "unknown key 'max_leg' (did you mean 'max_legs'?)",
    ),
    ("limits: not object", setting("limits", [8]), "genesis.limits must be an object, not a list"),
    ("limits: zero", setting("limits.max_legs", 0), "genesis.limits.max_legs is 0: must be within"),
    ("limits: negative", setting("limits.bundle_deadline_blocks", -1), "deadline_blocks is -1"),
    (
        "limits: negative retention",
        setting("limits.record_retention_blocks", -1),
        "record_retention_blocks is -1: must be within 0..9223372036854775807 (0 keeps every",
    ),
    ("limits: bool", setting("limits.max_batch", True), "max_batch must be an integer, not true"),
    ("limits: float", setting("limits.max_pool", 1.5), "max_pool must be an integer, not a number"),
    ("limits: amount over 64 bits", setting("limits.max_amount", 2**64), "max_amount is 1844"),
    (
        "limits: message over 64 MiB",
        setting("limits.max_message_bytes", 128 * 2**20),
        "max_message_bytes is 134217728: at most 67108864",
    ),
    (
        "limits: block over message",
        setting("limits.max_block_bytes", 4 * 2**20),
        "max_block_bytes is 4194304: it must leave 64 KiB under limits.max_message_bytes",
    ),
    (
        "limits: body over block",
        setting("limits.max_body_bytes", 2 * 2**20),
        "max_body_bytes is 2097152: it must be under limits.max_block_bytes",
    ),
    ("assets: none", setting("assets", []), "genesis.assets: a genesis has 1 to 64 assets, not 0"),
    ("asset: lower case", setting("assets.0.symbol", "usdc"), "assets[0].symbol 'usdc' is not"),
    ("asset: too long", setting("assets.1.symbol", "ETHEREUMETH"), "'ETHEREUMETH' is not well-"),
    ("asset: twice", setting("assets.1.symbol", "USDC"), "assets[1].symbol 'USDC' is a second"),
    ("asset: decimals 19", setting("assets.1.decimals", 19), "decimals of ETH is 19: must be"),
    ("asset: decimals < 0", setting("assets.0.decimals", -1), "decimals of USDC is -1: must be"),
    ("asset: decimals text", setting("assets.0.decimals", "6"), "decimals must be an integer"),
    ("asset: missing", deleting("assets.0.decimals"), "assets[0]: missing key 'decimals'"),
    (
        "asset: unit over max_amount",
        doing(lambda d: (setting("limits.max_amount", 10**8)(d), d.__setitem__("allocations", []))),
        "decimals of ETH is 9: one whole ETH (10^9 base units) is over limits.max_amount",
    ),
    (
        "allocation: rollup",
        setting("allocations.0.rollup", "zeta"),
        "rollup 'zeta' is not a rollup",
    ),
    ("allocation: asset", setting("allocations.0.asset", "BTC"), "asset 'BTC' is not an asset of"),
    ("allocation: address", setting("allocations.0.address", "0x12"), "allocations[0].address:"),
    ("allocation: negative", setting("allocations.0.amount", "-5"), "integer of base units"),
    ("allocation: float", setting("allocations.0.amount", 1.5), "base units (a string of digits)"),
    ("allocation: over", setting("allocations.0.amount", str(2**64)), "amount is 18446744073"),
    ("allocation: extra key", setting("allocations.0.note", "x"), "unknown key 'note'"),
    (
        "allocation: repeated",
        doing(lambda d: d["allocations"].append(dict(d["allocations"][0]))),
        "repeats allocations[0]",
    ),
    (
        "allocation: supply over 64 bits",
        doing(
            lambda d: d["allocations"].extend(
                {"rollup": "alpha", "address": "0x" + f"{i:040x}", "asset": "USDC"}
                | {"amount": str(2**62)}
                for i in (1, 2)
            )
        ),
        "the supply of USDC on alpha reaches",
    ),
]


@pytest.mark.parametrize(("change", "says"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_an_invalid_genesis_is_refused_naming_the_field(
    change: Callable[[Doc], None], says: str
) -> None:
    doc = dev_doc()
    change(doc)

    with pytest.raises(InvalidInput) as err:
        decode_genesis(json.dumps(doc))

    assert says in str(err.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [("{not json", "genesis is not JSON"), ("[]", "genesis must be an object, not a list")],
)
def test_what_is_not_a_genesis_object_is_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        decode_genesis(text)


def test_the_dev_genesis_round_trips_and_limits_and_allocations_may_be_left_out() -> None:
    doc = dev_doc()
    assert decode_genesis(json.dumps(doc)) == dev_genesis()

    short = copy.deepcopy(doc)
    del short["limits"]["max_legs"], short["allocations"]
    decoded = decode_genesis(json.dumps(short))

    assert decoded.limits == dev_genesis().limits  # the default for what is left out
    assert decoded.allocations == ()


def test_record_retention_may_be_zero_keeping_every_record() -> None:
    doc = dev_doc()
    doc["limits"]["record_retention_blocks"] = 0

    assert decode_genesis(json.dumps(doc)).limits.record_retention_blocks == 0


def test_amounts_may_be_json_integers() -> None:
    doc = dev_doc()
    doc["allocations"][0]["amount"] = 7

    assert decode_genesis(json.dumps(doc)).allocations[0].amount == 7


def test_rollup_names_of_a_count_are_the_greek_letters_then_round_again() -> None:
    assert compute_rollup_names(1) == ("alpha",)
    assert compute_rollup_names(4) == ("alpha", "beta", "gamma", "delta")
    assert compute_rollup_names(5)[-1] == "epsilon"
    assert compute_rollup_names(26)[23:] == ("omega", "alpha-2", "beta-2")
    assert len(set(compute_rollup_names(64))) == 64
    for count in (0, 65):
        with pytest.raises(InvalidInput, match=f"1 to 64 rollups, not {count}"):
            compute_rollup_names(count)


def test_the_dev_genesis_over_other_rollups_allocates_on_each() -> None:
    names = compute_rollup_names(4)
    genesis = dev_genesis(rollups=names)
    validate_genesis(genesis)
    validate_dev_keys(genesis)

    assert genesis.rollup_names == names
    for r in names:
        mine = [a for a in genesis.allocations if a.rollup == r]
        assert {(a.asset, a.amount) for a in mine} == {("USDC", 10**12), ("ETH", 10**12)}
        assert len(mine) == 2 * 10
    assert dev_genesis(rollups=("alpha", "beta")) == dev_genesis()


def test_a_genesis_with_other_than_the_dev_keys_cannot_run_in_a_devnet() -> None:
    other = derive_keypair("someone else").public_key
    rollups = (dev_genesis().rollups[0], Rollup("beta", other))

    with pytest.raises(
        InvalidInput, match=re.escape("rollups[1].vote_key of rollup 'beta' is not its dev")
    ):
        validate_dev_keys(replace(dev_genesis(), rollups=rollups))
    with pytest.raises(
        InvalidInput, match=re.escape("genesis.sequencer_key is not the dev sequencer key")
    ):
        validate_dev_keys(replace(dev_genesis(), sequencer_key=other))
    validate_genesis(replace(dev_genesis(), rollups=rollups))  # valid, just not runnable here


def run_devnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEVNET, *args], capture_output=True, text=True, timeout=60)


def assert_one_error_line(p: subprocess.CompletedProcess[str], says: str) -> None:
    lines = p.stderr.splitlines()
    assert p.returncode in (1, 2), (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert says in lines[0], lines[0]
    assert p.stdout == ""


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (setting("assets.1.decimals", 19), "genesis.assets[1].decimals of ETH is 19"),
        (setting("limits.max_leg", 4), "did you mean 'max_legs'?"),
        (setting("rollups.1.name", "proxy"), "'proxy' is taken by the devnet"),
        (
            setting("rollups.1.vote_key", derive_keypair("x").public_key.hex()),
            "vote_key of rollup 'beta' is not its dev vote key",
        ),
    ],
    ids=["decimals", "limits typo", "process name", "vote key"],
)
def test_devnet_up_with_a_bad_genesis_is_one_line_and_starts_nothing(
    tmp_path: Path, change: Callable[[Doc], None], says: str
) -> None:
    doc = dev_doc()
    change(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    data_dir = tmp_path / "dn"

    p = run_devnet("up", "--genesis", str(bad), "--data-dir", str(data_dir))

    assert_one_error_line(p, says)
    assert str(bad) in p.stderr
    assert not (data_dir / "devnet.json").exists() and not (data_dir / "genesis.json").exists()


def test_devnet_up_refuses_both_rollups_and_genesis_and_an_unreadable_file(tmp_path: Path) -> None:
    good = tmp_path / "g.json"
    good.write_text(encode_genesis(dev_genesis()))
    data_dir = str(tmp_path / "dn")

    both = run_devnet("up", "--rollups", "3", "--genesis", str(good), "--data-dir", data_dir)
    missing = run_devnet("up", "--genesis", str(tmp_path / "nope.json"), "--data-dir", data_dir)
    bad_name = run_devnet("up", "--rollups", "alpha,Beta", "--data-dir", data_dir)
    bad_count = run_devnet("up", "--rollups", "0", "--data-dir", data_dir)

    assert_one_error_line(both, "--rollups and --genesis")
    assert_one_error_line(missing, "cannot read genesis")
    assert_one_error_line(bad_name, "--rollups 'Beta' is not a well-formed rollup name")
    assert_one_error_line(bad_count, "1 to 64 rollups, not 0")
    assert not Path(data_dir).exists()


def test_devnet_genesis_prints_the_embedded_default_as_a_starting_file() -> None:
    plain = run_devnet("genesis")
    four = run_devnet("genesis", "--rollups", "4")

    assert plain.returncode == 0 and four.returncode == 0, plain.stderr + four.stderr
    assert decode_genesis(plain.stdout) == dev_genesis()
    assert decode_genesis(four.stdout) == dev_genesis(rollups=compute_rollup_names(4))


@pytest.mark.parametrize("which", ["load", "demo"])
def test_load_and_demo_refuse_a_genesis_without_their_assets_before_connecting(which: str) -> None:
    wbtc_only = replace(dev_genesis(), assets=(Asset("WBTC", 8),), allocations=())
    unreachable = "127.0.0.1:1"

    with pytest.raises(InvalidInput, match=r"ETH puts? paid in USDC: genesis has"):
        if which == "load":
            asyncio.run(run_load(unreachable, wbtc_only, seed=1, count=1))
        else:
            nodes = dict.fromkeys(wbtc_only.rollup_names, unreachable)
            asyncio.run(run_demo(unreachable, nodes, wbtc_only, say=lambda _: None))
