"""The node's side of the cross-rollup bundle protocol (two-phase commit whose
decision lives in the ordered log).

1. Prepare (the block that carries bundle B): if B has legs on this rollup, check
   it again (signatures, expiry, replay) and run each of this rollup's legs
   provisionally: what a leg spends moves out of balances into an escrow keyed
   by B, and positions it touches are marked pending. Any failure rolls all of
   them back and the vote is no. The outcome is recorded and becomes this
   rollup's vote.
2. The sequencer logs commit(B) or abort(B).
3. Finish (the block that carries the decision): commit applies the escrowed
   effects; abort returns them. A decision for a bundle already finished, or
   one this rollup is not part of, does nothing, so replay is idempotent.

State keys (see state.py for the others):
    b"esc:" + bundle id  -> escrow: what was held and what commit / abort do (JSON)
    b"bnd:" + bundle id  -> this rollup's record of the bundle (JSON)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from rollup_node.core import bank, collateral, options, oracle
from rollup_node.core.state import State
from xrollup import checks
from xrollup.errors import BadSignature, Refused, WrongSigners, XrollupError
from xrollup.genesis import Genesis
from xrollup.keys import encode_address
from xrollup.model import (
    Bundle,
    BundleVote,
    Decision,
    Leg,
    LockCollateral,
    OpenOption,
    ReleaseLien,
    SettleOption,
    Transfer,
)
from xrollup.numeric import Amount, Height

ESCROW = b"esc:"
BUNDLE = b"bnd:"

PREPARED = "prepared"
COMMITTED = "committed"
ABORTED = "aborted"


class LegRefused(Refused):
    """A leg cannot be prepared on this rollup."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Escrow:
    """What a prepared bundle holds on this rollup and what finishing it does.
    Ops are small JSON lists, applied in order (see apply_op)."""

    held: dict[str, int] = field(default_factory=dict)  # asset -> amount out of balances
    commit: list[list[Any]] = field(default_factory=list)
    abort: list[list[Any]] = field(default_factory=list)

    def hold(self, state: State, owner: bytes, asset: str, amount: int) -> None:
        """Move `amount` from `owner`'s balance into the escrow; refunded on abort."""
        if amount == 0:
            return
        bank.decrease_balance(state, owner, asset, Amount(amount))
        self.held[asset] = self.held.get(asset, 0) + amount
        self.abort.append(["credit", owner.hex(), asset, amount])


@dataclass(frozen=True, slots=True)
class BundleRecord:
    id: bytes
    status: str
    vote: bool
    reason: str
    prepare_height: int
    decision_height: int = 0
    legs: tuple[tuple[int, bool, str], ...] = ()


def encode_record(r: BundleRecord) -> bytes:
    return _canonical(
        {
            "id": r.id.hex(),
            "status": r.status,
            "vote": r.vote,
            "reason": r.reason,
            "prepare_height": r.prepare_height,
            "decision_height": r.decision_height,
            "legs": [list(x) for x in r.legs],
        }
    )


def decode_record(raw: bytes) -> BundleRecord:
    d = json.loads(raw)
    return BundleRecord(
        bytes.fromhex(d["id"]),
        d["status"],
        d["vote"],
        d["reason"],
        d["prepare_height"],
        d["decision_height"],
        tuple((int(i), bool(ok), str(why)) for i, ok, why in d["legs"]),
    )


def get_record(state: State, bundle_id: bytes) -> BundleRecord | None:
    raw = state.get(BUNDLE + bundle_id)
    return None if raw is None else decode_record(raw)


def get_escrow(state: State, bundle_id: bytes) -> Escrow | None:
    raw = state.get(ESCROW + bundle_id)
    if raw is None:
        return None
    d = json.loads(raw)
    return Escrow(d["held"], d["commit"], d["abort"])


def _save_escrow(state: State, bundle_id: bytes, escrow: Escrow) -> None:
    state.put(
        ESCROW + bundle_id,
        _canonical({"held": escrow.held, "commit": escrow.commit, "abort": escrow.abort}),
    )


# ---------------------------------------------------------------- prepare


def prepare_bundle(
    state: State, bundle: Bundle, rollup: str, height: Height, genesis: Genesis, verify: bool = True
) -> BundleVote | None:
    """Prepare this rollup's legs of `bundle`; the vote, or None when the bundle
    has no leg here or was prepared before (an id executes at most once)."""
    mine = [(i, leg) for i, leg in enumerate(bundle.body.legs) if leg.rollup == rollup]
    if not mine or state.get(BUNDLE + bundle.id) is not None:
        return None
    outcomes: list[tuple[int, bool, str]] = []
    escrow = Escrow()
    reason = ""
    try:
        if bundle.body.expiry_height < height:
            raise Refused(f"bundle expired at height {int(bundle.body.expiry_height)}")
        if verify:
            checks.validate_bundle(bundle, genesis)
    except (BadSignature, WrongSigners) as e:
        # The id covers the body, not the signatures: vote no, record nothing, so
        # a forged copy cannot burn the id of the genuine bundle.
        return BundleVote(bundle.id, False, str(e))
    except XrollupError as e:
        reason = str(e)
    if not reason:
        state.begin()
        for i, leg in mine:
            try:
                prepare_leg(state, escrow, bundle, leg, height, genesis)
                outcomes.append((i, True, ""))
            except XrollupError as e:
                reason = f"legs[{i}] on {rollup}: {e}"
                outcomes.append((i, False, str(e)))
                break
        if reason:
            state.rollback()
            escrow = Escrow()
        else:
            state.commit()
            _save_escrow(state, bundle.id, escrow)
    yes = not reason
    record = BundleRecord(bundle.id, PREPARED, yes, reason, int(height), legs=tuple(outcomes))
    state.put(BUNDLE + bundle.id, encode_record(record))
    return BundleVote(bundle.id, yes, reason)


def _find_leg(bundle: Bundle, rollup: str, kind: type) -> Leg | None:
    for leg in bundle.body.legs:
        if leg.rollup == rollup and isinstance(leg.action, kind):
            return leg
    return None


def prepare_leg(
    state: State, escrow: Escrow, bundle: Bundle, leg: Leg, height: Height, genesis: Genesis
) -> None:
    """Provisionally run one leg: hold what it spends, plan commit and abort."""
    a = leg.action
    if isinstance(a, Transfer):
        escrow.hold(state, leg.sender, a.asset, a.amount)
        escrow.commit.append(["credit", a.to.hex(), a.asset, int(a.amount)])
    elif isinstance(a, LockCollateral):
        escrow.hold(state, leg.sender, a.asset, a.amount)
        lien = collateral.Lien(
            id=bundle.id,
            owner=leg.sender,
            asset=a.asset,
            amount=int(a.amount),
            controller_rollup=a.controller_rollup,
            controller_position=bundle.id,
            status=collateral.LOCKED,
            locked_height=int(height),
        )
        escrow.commit.append(["lien", collateral.encode_lien(lien).decode()])
    elif isinstance(a, OpenOption):
        _prepare_open(state, escrow, bundle, leg, a, height, genesis)
    elif isinstance(a, SettleOption):
        _prepare_settle(state, escrow, bundle, leg, a, height, genesis)
    elif isinstance(a, ReleaseLien):
        _prepare_release(state, escrow, bundle, leg, a, height)
    else:
        raise LegRefused(f"{type(a).__name__} cannot be a bundle leg")


def _prepare_open(
    state: State,
    escrow: Escrow,
    bundle: Bundle,
    leg: Leg,
    a: OpenOption,
    height: Height,
    genesis: Genesis,
) -> None:
    if a.expiry_height <= height:
        raise LegRefused(f"option expiry {int(a.expiry_height)} is not after height {int(height)}")
    asset = genesis.get_asset(a.underlying)
    assert asset is not None  # checked at admission and in validate_bundle
    need_asset = options.collateral_asset(a.kind, a.underlying, a.quote)
    need = options.compute_collateral(a.kind, a.strike, a.size, asset.decimals)
    lock_leg = _find_leg(bundle, a.collateral_rollup, LockCollateral)
    assert lock_leg is not None and isinstance(lock_leg.action, LockCollateral)  # structure check
    lock = lock_leg.action
    if lock.asset != need_asset or lock.amount < need:
        raise LegRefused(
            f"margin: a {a.kind.name.lower()} of size {int(a.size)} at strike {int(a.strike)}"
            f" needs {int(need)} {need_asset} locked,"
            f" the lien locks {int(lock.amount)} {lock.asset}"
        )
    escrow.hold(state, leg.sender, a.quote, a.premium)
    escrow.commit.append(["credit", a.writer.hex(), a.quote, int(a.premium)])
    position = options.OptionPosition(
        id=bundle.id,
        kind=a.kind,
        underlying=a.underlying,
        quote=a.quote,
        strike=int(a.strike),
        size=int(a.size),
        expiry_height=int(a.expiry_height),
        premium=int(a.premium),
        writer=a.writer,
        holder=leg.sender,
        collateral_rollup=a.collateral_rollup,
        collateral_asset=lock.asset,
        collateral=int(lock.amount),
        status=options.OPEN,
        opened_height=int(height),
    )
    escrow.commit.append(["option", options.encode_option(position).decode()])


def _prepare_settle(
    state: State,
    escrow: Escrow,
    bundle: Bundle,
    leg: Leg,
    a: SettleOption,
    height: Height,
    genesis: Genesis,
) -> None:
    o = options.get_option(state, a.option_id)
    if o is None:
        raise LegRefused(f"no option {a.option_id.hex()}")
    if o.status != options.OPEN:
        raise LegRefused(f"option {a.option_id.hex()[:16]} is {o.status}")
    if height < o.expiry_height:
        raise LegRefused(f"option expires at height {o.expiry_height}; now {int(height)}")
    price = oracle.get_price(state, o.underlying, o.quote)
    if price is None or price.height < o.expiry_height:
        raise LegRefused(
            f"no {o.underlying}/{o.quote} price posted at or after expiry height {o.expiry_height}"
        )
    asset = genesis.get_asset(o.underlying)
    assert asset is not None
    payout = options.compute_payout(o.kind, o.strike, o.size, price.price, asset.decimals)
    if payout != a.payout:
        raise LegRefused(
            f"payout: the bundle states {int(a.payout)}, the price {int(price.price)}"
            f" at height {int(price.height)} gives {int(payout)}"
        )
    release = _find_leg(bundle, o.collateral_rollup, ReleaseLien)
    if release is None or not isinstance(release.action, ReleaseLien):
        raise LegRefused(f"the bundle carries no release_lien leg on {o.collateral_rollup}")
    if release.action.payee != o.holder:
        raise LegRefused(
            f"release_lien pays {encode_address(release.action.payee)}, not the holder"
        )
    options.save_option(state, replace(o, status=options.SETTLING))
    escrow.commit.append(["settle", o.id.hex(), int(height), int(price.price), int(payout)])
    escrow.abort.append(["unsettle", o.id.hex()])


def _prepare_release(
    state: State, escrow: Escrow, bundle: Bundle, leg: Leg, a: ReleaseLien, height: Height
) -> None:
    lien = collateral.get_lien(state, a.lien_id)
    if lien is None:
        raise LegRefused(f"no lien {a.lien_id.hex()}")
    if lien.status != collateral.LOCKED:
        raise LegRefused(f"lien {a.lien_id.hex()[:16]} is {lien.status}")
    settle = _find_leg(bundle, lien.controller_rollup, SettleOption)
    if (
        settle is None
        or not isinstance(settle.action, SettleOption)
        or settle.action.option_id != lien.controller_position
    ):
        raise LegRefused(
            f"lien {a.lien_id.hex()[:16]} is controlled by a position on {lien.controller_rollup};"
            " the bundle does not settle it there"
        )
    if a.payout > lien.amount:
        raise LegRefused(f"payout {int(a.payout)} exceeds the lien's {lien.amount} {lien.asset}")
    collateral.save_lien(state, replace(lien, status=collateral.PENDING))
    escrow.commit.append(["release", lien.id.hex(), int(height), int(a.payout), a.payee.hex()])
    escrow.abort.append(["unrelease", lien.id.hex()])


# ---------------------------------------------------------------- finish


def finish_bundle(state: State, decision: Decision, height: Height) -> BundleRecord | None:
    """Apply the logged decision; None when this rollup has no part in it or has
    finished it before."""
    record = get_record(state, decision.bundle_id)
    if record is None or record.status != PREPARED:
        return None
    if decision.commit and not record.vote:
        # Only a yes from this rollup's key lets the sequencer commit: never expected.
        reason = "protocol violation: committed although this rollup voted no"
        done = replace(record, status=ABORTED, reason=reason, decision_height=int(height))
        state.put(BUNDLE + record.id, encode_record(done))
        return done
    escrow = get_escrow(state, decision.bundle_id)
    if escrow is not None:
        for op in escrow.commit if decision.commit else escrow.abort:
            apply_op(state, op, height)
        state.delete(ESCROW + decision.bundle_id)
    status = COMMITTED if decision.commit else ABORTED
    reason = record.reason if not decision.commit and record.reason else decision.reason
    done = replace(record, status=status, reason=reason, decision_height=int(height))
    state.put(BUNDLE + record.id, encode_record(done))
    return done


def apply_op(state: State, op: list[Any], height: Height) -> None:
    kind = op[0]
    if kind == "credit":
        _, owner, asset, amount = op
        bank.increase_balance(state, bytes.fromhex(owner), asset, Amount(amount))
    elif kind == "lien":
        lien = collateral.decode_lien(op[1].encode())
        collateral.save_lien(state, replace(lien, locked_height=int(height)))
    elif kind == "option":
        o = options.decode_option(op[1].encode())
        options.save_option(state, replace(o, opened_height=int(height)))
    elif kind == "settle":
        _, option_id, _prepared, price, payout = op
        settled = options.get_option(state, bytes.fromhex(option_id))
        assert settled is not None
        options.save_option(
            state,
            replace(
                settled,
                status=options.SETTLED,
                settled_height=int(height),
                settle_price=price,
                payout=payout,
            ),
        )
    elif kind == "unsettle":
        settling = options.get_option(state, bytes.fromhex(op[1]))
        assert settling is not None
        options.save_option(state, replace(settling, status=options.OPEN))
    elif kind == "release":
        _, lien_id, _prepared, payout, payee = op
        held = collateral.get_lien(state, bytes.fromhex(lien_id))
        assert held is not None
        bank.increase_balance(state, bytes.fromhex(payee), held.asset, Amount(payout))
        bank.increase_balance(state, held.owner, held.asset, Amount(held.amount - payout))
        collateral.save_lien(
            state,
            replace(
                held,
                status=collateral.RELEASED,
                released_height=int(height),
                paid_out=payout,
                payee=bytes.fromhex(payee),
            ),
        )
    elif kind == "unrelease":
        pending = collateral.get_lien(state, bytes.fromhex(op[1]))
        assert pending is not None
        collateral.save_lien(state, replace(pending, status=collateral.LOCKED))
    else:  # pragma: no cover - ops are written only by prepare_leg
        raise AssertionError(f"unknown escrow op {kind!r}")
