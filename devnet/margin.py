"""The consolidated margin view of one account: on every rollup and per asset, what
is free (its balance), locked in liens it owns, and held for it in the escrows of
undecided bundles; each lien followed to the option it backs on its controlling
rollup (status, kind, size and strike, the lien's place in the payout order); the
options it writes or holds; and per asset the totals across rollups.

One place for `devnet margin` and the explorer's /margin page. It reads only the
nodes' public GetAccount and GetOption (xrollup.client.NodeClient). A rollup whose
nodes do not answer is reported down, and the view shows the others; its amounts
are then missing from the totals, which say so (`partial`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from xrollup.client import NodeClient
from xrollup.keys import Address, encode_address
from xrollup.v1 import node_pb2 as npb
from xrollup.v1 import types_pb2 as pb

CALL_TIMEOUT = 2.0  # seconds per query: a paused node is reported down, not waited for

AmountOut = Callable[[int, str], Any]  # (base units, asset) -> what the output shows


@dataclass
class Holdings:
    """One asset's amounts, in base units."""

    free: int = 0
    locked: int = 0
    escrowed: int = 0

    @property
    def total(self) -> int:
        return self.free + self.locked + self.escrowed

    def add(self, other: Holdings) -> None:
        self.free += other.free
        self.locked += other.locked
        self.escrowed += other.escrowed


@dataclass(frozen=True)
class Backing:
    """The option a lien backs, as its controlling rollup has it: `place` is the
    lien's place (1-based) among the option's `of` liens in payout order (the
    payout is taken from the first lien first); `option` is None when that rollup
    did not answer or no longer has the option (`error` says which)."""

    rollup: str
    option_id: bytes
    option: npb.OptionPosition | None
    place: int | None
    of: int | None
    error: str = ""


@dataclass(frozen=True)
class LienHold:
    lien: npb.Lien
    backs: Backing


@dataclass
class RollupMargin:
    """The account on one rollup; `up` False when no node of it answered."""

    rollup: str
    up: bool
    node: str = ""  # the endpoint that answered
    error: str = ""  # why it is down
    height: int = 0
    assets: dict[str, Holdings] = field(default_factory=dict)
    liens: list[LienHold] = field(default_factory=list)
    escrows: list[npb.EscrowHold] = field(default_factory=list)
    options: list[npb.AccountOption] = field(default_factory=list)
    truncated: bool = False


@dataclass
class MarginView:
    address: Address
    rollups: list[RollupMargin]
    totals: dict[str, Holdings]  # per asset, over the rollups that answered

    @property
    def down(self) -> list[str]:
        return [r.rollup for r in self.rollups if not r.up]


def describe_rpc_error(e: aio.AioRpcError) -> str:
    return f"{e.code().name}: {e.details()}"


def compute_holdings(account: npb.GetAccountResponse) -> dict[str, Holdings]:
    """Per asset: the balance is free; liens and escrow holds add what is locked
    and escrowed (every asset of the balances listed, zeros included)."""
    assets = {b.asset: Holdings(free=int(b.amount)) for b in account.balances}
    for lien in account.liens:
        assets.setdefault(lien.asset, Holdings()).locked += int(lien.amount)
    for escrow in account.escrows:
        for held in escrow.held:
            assets.setdefault(held.asset, Holdings()).escrowed += int(held.amount)
    return dict(sorted(assets.items()))


def compute_totals(rollups: Sequence[RollupMargin]) -> dict[str, Holdings]:
    totals: dict[str, Holdings] = {}
    for r in rollups:
        for asset, h in r.assets.items():
            totals.setdefault(asset, Holdings()).add(h)
    return dict(sorted(totals.items()))


def compute_place(option: npb.OptionPosition, lien_rollup: str) -> tuple[int | None, int]:
    """The lien's place (1-based) in the option's payout order, and the count."""
    order = [backing.rollup for backing in option.liens]
    place = order.index(lien_rollup) + 1 if lien_rollup in order else None
    return place, len(order)


async def _ask(
    clients: Sequence[NodeClient], call: Callable[[NodeClient], Any]
) -> tuple[Any, str, str]:
    """The first answer of `clients` in turn: (answer, endpoint, ""), or (None, "",
    why) when none answered. NOT_FOUND and INVALID_ARGUMENT are answers, raised."""
    errors = []
    for c in clients:
        try:
            return await call(c), c.endpoint, ""
        except aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise
            errors.append(describe_rpc_error(e))
    return None, "", "; ".join(errors) or "no running node"


async def read_margin(
    address: Address,
    nodes: Mapping[str, Sequence[NodeClient]],
    timeout: float = CALL_TIMEOUT,
) -> MarginView:
    """The account's margin view over the rollups of `nodes` (rollup -> its nodes,
    the preferred first; none: down). Raises the node's INVALID_ARGUMENT (a bad
    address); every other failure marks a rollup down."""

    async def one(rollup: str) -> tuple[RollupMargin, npb.GetAccountResponse | None]:
        account, endpoint, error = await _ask(
            nodes[rollup], lambda c: c.account(address, timeout=timeout)
        )
        if account is None:
            return RollupMargin(rollup, up=False, error=error), None
        r = RollupMargin(
            rollup,
            up=True,
            node=endpoint,
            height=int(account.height),
            assets=compute_holdings(account),
            escrows=list(account.escrows),
            options=list(account.options),
            truncated=account.truncated,
        )
        return r, account

    answers = await asyncio.gather(*(one(rollup) for rollup in nodes))
    # Each lien's option: from its rollup's answer when the account is a party to
    # it there, else asked of that rollup (once per option).
    known: dict[tuple[str, bytes], npb.OptionPosition] = {}
    for r, account in answers:
        if account is not None:
            for o in account.options:
                known[(r.rollup, bytes(o.option.id))] = o.option
    wanted = {
        (lien.controller_rollup, bytes(lien.controller_position))
        for _, account in answers
        if account is not None
        for lien in account.liens
    }

    async def fetch(key: tuple[str, bytes]) -> tuple[npb.OptionPosition | None, str]:
        rollup, option_id = key
        if key in known:
            return known[key], ""
        if rollup not in nodes:
            return None, f"{rollup} is not a rollup of this view"
        try:
            o, _, error = await _ask(nodes[rollup], lambda c: c.option(option_id, timeout=timeout))
        except aio.AioRpcError as e:
            return None, f"{rollup}: {describe_rpc_error(e)}"
        return o, (f"{rollup} down ({error})" if o is None else "")

    keys = sorted(wanted)
    found = dict(zip(keys, await asyncio.gather(*(fetch(k) for k in keys)), strict=True))
    for r, account in answers:
        if account is None:
            continue
        for lien in account.liens:
            key = (lien.controller_rollup, bytes(lien.controller_position))
            option, error = found[key]
            place, of = compute_place(option, r.rollup) if option is not None else (None, None)
            r.liens.append(LienHold(lien, Backing(key[0], key[1], option, place, of, error)))
    rollups = [r for r, _ in answers]
    return MarginView(address, rollups, compute_totals(rollups))


async def read_margin_from(
    address: Address, endpoints: Mapping[str, Sequence[str]], timeout: float = CALL_TIMEOUT
) -> MarginView:
    """read_margin over fresh connections to `endpoints` (rollup -> node endpoints,
    none for a rollup with no running node), closed on return."""
    clients = {rollup: [NodeClient(ep) for ep in eps] for rollup, eps in endpoints.items()}
    try:
        return await read_margin(address, clients, timeout)
    finally:
        for cs in clients.values():
            for c in cs:
                await c.close()


# ---------------------------------------------------------------- as JSON

_ROLES = {
    npb.AccountOption.ROLE_WRITER: "writer",
    npb.AccountOption.ROLE_HOLDER: "holder",
    npb.AccountOption.ROLE_BOTH: "writer and holder",
}


def _status(enum: Any, value: int) -> str:
    return str(enum.Name(value)).removeprefix("STATUS_").lower()


def holdings_json(h: Holdings, asset: str, amount: AmountOut) -> dict[str, Any]:
    return {
        "free": amount(h.free, asset),
        "locked": amount(h.locked, asset),
        "escrowed": amount(h.escrowed, asset),
        "total": amount(h.total, asset),
    }


def option_summary_json(o: npb.OptionPosition, amount: AmountOut) -> dict[str, Any]:
    """What a margin view shows of an option: status, kind, size, strike, expiry,
    and its liens in payout order."""
    return {
        "id": o.id.hex(),
        "status": _status(npb.OptionPosition.Status, o.status),
        "kind": "put" if o.kind == pb.OPTION_KIND_PUT else "call",
        "underlying": o.underlying,
        "quote": o.quote,
        "size": amount(o.size, o.underlying),
        "strike": amount(o.strike, o.quote),
        "expiry_height": o.expiry_height,
        "collateral_asset": o.collateral_asset,
        "collateral": amount(o.collateral, o.collateral_asset),
        "liens": [
            {"rollup": b.rollup, "amount": amount(b.amount, o.collateral_asset)} for b in o.liens
        ],
        "writer": encode_address(o.writer),
        "holder": encode_address(o.holder),
    }


def lien_hold_json(h: LienHold, amount: AmountOut) -> dict[str, Any]:
    lien, b = h.lien, h.backs
    return {
        "id": lien.id.hex(),
        "asset": lien.asset,
        "amount": amount(lien.amount, lien.asset),
        "status": _status(npb.Lien.Status, lien.status),
        "controller_rollup": lien.controller_rollup,
        "controller_position": lien.controller_position.hex(),
        "locked_height": lien.locked_height,
        "option_expiry_height": lien.option_expiry_height,
        "reclaimable_height": lien.reclaimable_height,
        "backs": {
            "rollup": b.rollup,
            "option_id": b.option_id.hex(),
            "place": b.place,
            "of": b.of,
            "option": option_summary_json(b.option, amount) if b.option is not None else None,
            "error": b.error or None,
        },
    }


def margin_json(view: MarginView, amount: AmountOut) -> dict[str, Any]:
    """The view as JSON; `amount` writes each amount (decimal strings in the
    asset's units, integers of base units, ...)."""
    return {
        "address": encode_address(view.address),
        "rollups": [
            {
                "rollup": r.rollup,
                "up": r.up,
                "node": r.node or None,
                "error": r.error or None,
                "height": r.height if r.up else None,
                "assets": {a: holdings_json(h, a, amount) for a, h in r.assets.items()},
                "liens": [lien_hold_json(h, amount) for h in r.liens],
                "escrows": [
                    {
                        "bundle_id": e.bundle_id.hex(),
                        "held": {x.asset: amount(x.amount, x.asset) for x in e.held},
                        "prepare_height": e.prepare_height,
                        "deadline_height": e.deadline_height,
                    }
                    for e in r.escrows
                ],
                "options": [
                    {"role": _ROLES.get(o.role, "?"), **option_summary_json(o.option, amount)}
                    for o in r.options
                ],
                "truncated": r.truncated,
            }
            for r in view.rollups
        ],
        "totals": {a: holdings_json(h, a, amount) for a, h in view.totals.items()},
        "down": view.down,
        "partial": bool(view.down),
    }
