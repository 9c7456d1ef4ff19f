"""The state table (rollup_node/core/state.py) pinned: every storage key prefix,
the layout of each key, and the exact bytes of one record of each kind. Every
state root depends on these bytes; a change here is a change of the state
encoding (see the golden root in test_execute.py) and needs a migration note.
Each record also decodes back to what was encoded."""

from __future__ import annotations

import struct
import typing

from rollup_node.core import bundles, collateral, options, oracle, protocol
from rollup_node.core.state import (
    ACCOUNT_ESCROW,
    ACCOUNT_LIEN,
    ACCOUNT_OPTION,
    BALANCE,
    BUNDLE,
    DEADLINE,
    ESCROW,
    EXPIRY,
    LIEN,
    OPEN,
    OPTION,
    PREFIXES,
    PRICE,
    RETIRE,
    SEEN,
    SUPPLY,
    MemoryState,
    State,
    account_escrow_key,
    account_lien_key,
    account_option_key,
    balance_key,
    compute_prefix_end,
    deadline_key,
    encode_record,
    encode_u64,
    expiry_key,
    price_key,
    retire_key,
    seen_key,
    supply_key,
)
from xrollup.decisions import OpenBundle
from xrollup.model import OptionKind, PriceUpdate, ReasonCode
from xrollup.numeric import Amount, Height

OWNER, PAYEE = b"\xaa" * 20, b"\xbb" * 20
ID, POS = b"\x11" * 32, b"\x22" * 32


def pinned(text: str) -> bytes:
    """A pinned record, written with <ID>, <POS>, <OWNER>, <PAYEE> for the hex of
    the sample ids and addresses."""
    for name, raw in (("<ID>", ID), ("<POS>", POS), ("<OWNER>", OWNER), ("<PAYEE>", PAYEE)):
        text = text.replace(name, raw.hex())
    return text.encode()


# ---------------------------------------------------------------- keys


def test_the_prefixes_are_pinned_and_none_is_a_prefix_of_another() -> None:
    assert PREFIXES == (
        b"bal:",
        b"sup:",
        b"px:",
        b"seen:",
        b"exp:",
        b"lien:",
        b"opt:",
        b"esc:",
        b"bnd:",
        b"opn:",
        b"ddl:",
        b"ret:",
        b"acl:",
        b"ace:",
        b"aco:",
    )
    assert (
        BALANCE,
        SUPPLY,
        PRICE,
        SEEN,
        EXPIRY,
        LIEN,
        OPTION,
        ESCROW,
        BUNDLE,
        OPEN,
        DEADLINE,
        RETIRE,
        ACCOUNT_LIEN,
        ACCOUNT_ESCROW,
        ACCOUNT_OPTION,
    ) == PREFIXES
    for a in PREFIXES:
        for b in PREFIXES:
            assert a == b or not b.startswith(a), (a, b)


def test_key_layouts() -> None:
    assert balance_key(OWNER, "USDC") == b"bal:" + OWNER + b"USDC"
    assert supply_key("ETH") == b"sup:ETH"
    assert price_key("ETH", "USDC") == b"px:ETH/USDC"
    assert seen_key(ID) == b"seen:" + ID
    assert expiry_key(258, ID) == b"exp:\x00\x00\x00\x00\x00\x00\x01\x02" + ID
    assert deadline_key(51, ID) == b"ddl:\x00\x00\x00\x00\x00\x00\x00\x33" + ID
    assert retire_key(258, b"bnd:" + ID) == b"ret:\x00\x00\x00\x00\x00\x00\x01\x02bnd:" + ID
    assert encode_u64(2**64 - 1) == b"\xff" * 8
    # big-endian heights: the deadline index iterates in height order
    assert deadline_key(255, ID) < deadline_key(256, ID)
    # the account indexes: prefix, the 20-byte account, the record's 32-byte id; b"" values
    assert account_lien_key(OWNER, ID) == b"acl:" + OWNER + ID
    assert account_escrow_key(OWNER, ID) == b"ace:" + OWNER + ID
    assert account_option_key(PAYEE, POS) == b"aco:" + PAYEE + POS
    # one account's keys iterate as a range, whatever bytes its address ends in
    assert compute_prefix_end(b"acl:" + OWNER) == b"acl:" + b"\xaa" * 19 + b"\xab"
    assert compute_prefix_end(b"acl:" + b"\x01" + b"\xff" * 19) == b"acl:\x02"


def test_records_are_canonical_json() -> None:
    assert encode_record({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'


# ---------------------------------------------------------------- records

LIEN_SAMPLE = collateral.Lien(
    id=ID,
    owner=OWNER,
    asset="USDC",
    amount=5_600_000_000,
    controller_rollup="beta",
    controller_position=POS,
    status=collateral.RELEASED,
    locked_height=2,
    released_height=9,
    paid_out=600_000_000,
    payee=PAYEE,
    option_expiry_height=5,
)
LIEN_BYTES = pinned(
    '{"amount":5600000000,"asset":"USDC","controller_position":"<POS>",'
    '"controller_rollup":"beta","id":"<ID>","locked_height":2,"option_expiry_height":5,'
    '"owner":"<OWNER>","paid_out":600000000,"payee":"<PAYEE>","released_height":9,'
    '"status":"released"}'
)

OPTION_SAMPLE = options.OptionPosition(
    id=ID,
    kind=OptionKind.CALL,
    underlying="ETH",
    quote="USDC",
    strike=2_800_000_000,
    size=2_000_000_000,
    expiry_height=5,
    premium=50_000_000,
    writer=OWNER,
    holder=PAYEE,
    liens=(("alpha", 1_500_000_000), ("gamma", 500_000_000)),
    collateral_asset="ETH",
    collateral=2_000_000_000,
    status=options.SETTLED,
    opened_height=2,
    settled_height=9,
    settle_price=3_000_000_000,
    payout=133_333_333,
    shares=(133_333_333, 0),
)
OPTION_BYTES = pinned(
    '{"collateral":2000000000,"collateral_asset":"ETH","expiry_height":5,'
    '"holder":"<PAYEE>","id":"<ID>","kind":2,'
    '"liens":[["alpha",1500000000],["gamma",500000000]],"opened_height":2,'
    '"payout":133333333,"premium":50000000,"quote":"USDC","settle_price":3000000000,'
    '"settled_height":9,"shares":[133333333,0],"size":2000000000,"status":"settled",'
    '"strike":2800000000,"underlying":"ETH","writer":"<OWNER>"}'
)


def test_lien_record() -> None:
    assert collateral.encode_lien(LIEN_SAMPLE) == LIEN_BYTES
    assert collateral.decode_lien(LIEN_BYTES) == LIEN_SAMPLE


def test_option_record() -> None:
    assert options.encode_option(OPTION_SAMPLE) == OPTION_BYTES
    assert options.decode_option(OPTION_BYTES) == OPTION_SAMPLE


def test_escrow_record_with_every_typed_effect() -> None:
    escrow = bundles.Escrow(
        held={"USDC": 50_000_000, "ETH": 7},
        commit=[
            bundles.Credit(OWNER, "USDC", 50_000_000),
            bundles.CreateLien(LIEN_SAMPLE),
            bundles.CreateOption(OPTION_SAMPLE),
            bundles.Settle(ID, 3_000_000_000, 133_333_333, (133_333_333, 0)),
            bundles.Release(ID, 600_000_000, PAYEE),
        ],
        abort=[
            bundles.Credit(PAYEE, "ETH", 7),
            bundles.Unsettle(ID),
            bundles.Unrelease(ID),
        ],
    )
    kinds = {type(e) for e in (*escrow.commit, *escrow.abort)}
    assert kinds == set(typing.get_args(bundles.Effect))

    raw = bundles.encode_escrow(escrow)

    assert raw == (
        b'{"abort":['
        + pinned('{"amount":7,"asset":"ETH","kind":"credit","owner":"<PAYEE>"},')
        + pinned('{"id":"<ID>","kind":"unsettle"},{"id":"<ID>","kind":"unrelease"}],')
        + b'"commit":['
        + pinned('{"amount":50000000,"asset":"USDC","kind":"credit","owner":"<OWNER>"},')
        + b'{"kind":"lien","lien":'
        + LIEN_BYTES
        + b'},{"kind":"option","option":'
        + OPTION_BYTES
        + b"},"
        + pinned(
            '{"id":"<ID>","kind":"settle","payout":133333333,"price":3000000000,'
            '"shares":[133333333,0]},'
        )
        + pinned('{"id":"<ID>","kind":"release","payee":"<PAYEE>","payout":600000000}],')
        + b'"held":{"ETH":7,"USDC":50000000}}'
    )
    assert bundles.decode_escrow(raw) == escrow


def test_bundle_record() -> None:
    record = bundles.BundleRecord(
        id=ID,
        status=bundles.ABORTED,
        vote=False,
        code=ReasonCode.MARGIN,
        prepare_height=3,
        decision_height=4,
        legs=((0, True, ReasonCode.NONE), (1, False, ReasonCode.MARGIN)),
    )

    raw = bundles.encode_bundle_record(record)

    assert raw == pinned(
        '{"code":14,"decision_height":4,"id":"<ID>","legs":[[0,true,0],[1,false,14]],'
        '"prepare_height":3,"status":"aborted","vote":false}'
    )
    assert bundles.decode_bundle_record(raw) == record


def test_open_bundle_record() -> None:
    b = OpenBundle(
        id=ID,
        rollups=("alpha", "beta"),
        height=3,
        deadline=53,
        votes=(("alpha", True, ReasonCode.NONE), ("beta", False, ReasonCode.INSUFFICIENT_FUNDS)),
    )

    raw = protocol.encode_open(b)

    # the id is the key (b"opn:" + id), not part of the value
    assert raw == (
        b'{"deadline":53,"height":3,"rollups":["alpha","beta"],'
        b'"votes":[["alpha",true,0],["beta",false,13]]}'
    )
    assert protocol.decode_open(ID, raw) == b


def test_reason_codes_in_records_are_the_pinned_integers() -> None:
    # Records store codes as integers: renumbering one changes every state root.
    assert {c.name: int(c) for c in ReasonCode} == {
        "NONE": 0,
        "ALL_YES": 1,
        "VOTED_NO": 2,
        "DEADLINE": 3,
        "EXPIRED": 10,
        "INVALID": 11,
        "BAD_SIGNATURE": 12,
        "INSUFFICIENT_FUNDS": 13,
        "MARGIN": 14,
        "NO_POSITION": 15,
        "POSITION_BUSY": 16,
        "NOT_EXPIRED": 17,
        "NO_PRICE": 18,
        "PAYOUT_MISMATCH": 19,
        "WRONG_PAYEE": 20,
        "NOT_CONTROLLER": 21,
        "CLAIM_WINDOW_CLOSED": 22,
        "OVERFLOW": 23,
        "REFUSED": 24,
    }


def test_price_value_layout() -> None:
    # b"px:" values: price u64 then the height it was posted at, u64
    state = State(MemoryState())
    oracle.apply_price_update(state, PriceUpdate("ETH", "USDC", Amount(3_000_000_000)), Height(7))
    assert state.writes == {b"px:ETH/USDC": struct.pack(">QQ", 3_000_000_000, 7)}
