"""The node's side of the cross-rollup bundle protocol (two-phase commit whose
decision lives in the ordered log; the rule is xrollup/decisions.py).

1. Prepare (the block that carries bundle B): if B has legs on this rollup, check
   it again (signatures, expiry, replay) and run each of this rollup's legs
   provisionally: what a leg spends moves out of balances into an escrow keyed
   by B, and positions it touches are marked pending. Any failure rolls all of
   them back and the vote is no, with a reason code. The outcome is recorded and
   becomes this rollup's vote.
2. Every node tracks B's votes from the log and derives the decision itself
   (rollup_node/core/protocol.py); a logged decision that contradicts them is
   refused with its block.
3. Finish: commit applies the escrow's effects; abort returns what it holds.

Escrow effects are typed records (Credit, CreateLien, ...), not op lists; state
keys and encodings are listed in state.py. Consensus records carry reason codes;
the text for people goes to the bundle's receipt."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rollup_node.core import bank, collateral, options, oracle
from rollup_node.core.state import (
    BUNDLE,
    ESCROW,
    State,
    StateReader,
    account_escrow_key,
    encode_record,
    seen_key,
)
from xrollup import checks
from xrollup.amounts import format_units
from xrollup.blocks import BlockRefused, RefusalCode
from xrollup.errors import ArithmeticOverflow, BadSignature, Expired, WrongSigners, XrollupError
from xrollup.genesis import UINT64_MAX, Genesis
from xrollup.keys import encode_address
from xrollup.model import (
    Bundle,
    BundleVote,
    Leg,
    LockCollateral,
    OpenOption,
    ReasonCode,
    ReleaseLien,
    SettleOption,
    Transfer,
)
from xrollup.numeric import Amount, Height

PREPARED = "prepared"
COMMITTED = "committed"
ABORTED = "aborted"


def _units(genesis: Genesis, amount: int, symbol: str) -> str:
    """An amount in words for a receipt: '5,600 USDC' (the asset's units, as the
    command line and the explorer show them; never consensus data)."""
    asset = genesis.get_asset(symbol)
    return f"{format_units(int(amount), asset.decimals) if asset else int(amount)} {symbol}"


class LegRefused(XrollupError):
    """A leg cannot be prepared on this rollup; `code` is what the vote records."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def compute_reason_code(e: XrollupError) -> ReasonCode:
    """The reason code a refusal is recorded with (its text goes to the receipt)."""
    code = getattr(e, "code", None)
    if isinstance(code, ReasonCode):
        return code
    if isinstance(e, bank.InsufficientFunds):
        return ReasonCode.INSUFFICIENT_FUNDS
    if isinstance(e, ArithmeticOverflow):
        return ReasonCode.OVERFLOW
    if isinstance(e, BadSignature | WrongSigners):
        return ReasonCode.BAD_SIGNATURE
    if isinstance(e, Expired):
        return ReasonCode.EXPIRED
    return ReasonCode.INVALID


# ---------------------------------------------------------------- typed effects


@dataclass(frozen=True, slots=True)
class Credit:
    owner: bytes
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class CreateLien:
    lien: collateral.Lien


@dataclass(frozen=True, slots=True)
class CreateOption:
    option: options.OptionPosition


@dataclass(frozen=True, slots=True)
class Settle:
    option_id: bytes
    price: int
    payout: int
    shares: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsettle:
    option_id: bytes


@dataclass(frozen=True, slots=True)
class Release:
    lien_id: bytes
    payout: int
    payee: bytes


@dataclass(frozen=True, slots=True)
class Unrelease:
    lien_id: bytes


Effect = Credit | CreateLien | CreateOption | Settle | Unsettle | Release | Unrelease


def encode_effect(e: Effect) -> dict[str, Any]:
    if isinstance(e, Credit):
        return {"kind": "credit", "owner": e.owner.hex(), "asset": e.asset, "amount": e.amount}
    if isinstance(e, CreateLien):
        return {"kind": "lien", "lien": json.loads(collateral.encode_lien(e.lien))}
    if isinstance(e, CreateOption):
        return {"kind": "option", "option": json.loads(options.encode_option(e.option))}
    if isinstance(e, Settle):
        return {
            "kind": "settle",
            "id": e.option_id.hex(),
            "price": e.price,
            "payout": e.payout,
            "shares": list(e.shares),
        }
    if isinstance(e, Unsettle):
        return {"kind": "unsettle", "id": e.option_id.hex()}
    if isinstance(e, Release):
        return {
            "kind": "release",
            "id": e.lien_id.hex(),
            "payout": e.payout,
            "payee": e.payee.hex(),
        }
    return {"kind": "unrelease", "id": e.lien_id.hex()}


def decode_effect(d: dict[str, Any]) -> Effect:
    kind = d["kind"]
    if kind == "credit":
        return Credit(bytes.fromhex(d["owner"]), d["asset"], int(d["amount"]))
    if kind == "lien":
        return CreateLien(collateral.decode_lien(encode_record(d["lien"])))
    if kind == "option":
        return CreateOption(options.decode_option(encode_record(d["option"])))
    if kind == "settle":
        return Settle(
            bytes.fromhex(d["id"]),
            int(d["price"]),
            int(d["payout"]),
            tuple(int(s) for s in d["shares"]),
        )
    if kind == "unsettle":
        return Unsettle(bytes.fromhex(d["id"]))
    if kind == "release":
        return Release(bytes.fromhex(d["id"]), int(d["payout"]), bytes.fromhex(d["payee"]))
    if kind == "unrelease":
        return Unrelease(bytes.fromhex(d["id"]))
    raise AssertionError(f"unknown escrow effect {kind!r}")  # pragma: no cover


@dataclass
class Escrow:
    """What a prepared bundle holds on this rollup and what finishing it does."""

    held: dict[str, int] = field(default_factory=dict)  # asset -> amount out of balances
    commit: list[Effect] = field(default_factory=list)
    abort: list[Effect] = field(default_factory=list)

    def hold(self, state: State, owner: bytes, asset: str, amount: int) -> None:
        """Move `amount` from `owner`'s balance into the escrow; refunded on abort."""
        if amount == 0:
            return
        bank.decrease_balance(state, owner, asset, Amount(amount))
        self.held[asset] = self.held.get(asset, 0) + amount
        self.abort.append(Credit(owner, asset, amount))


def encode_escrow(e: Escrow) -> bytes:
    return encode_record(
        {
            "held": e.held,
            "commit": [encode_effect(x) for x in e.commit],
            "abort": [encode_effect(x) for x in e.abort],
        }
    )


def decode_escrow(raw: bytes) -> Escrow:
    d = json.loads(raw)
    return Escrow(
        {k: int(v) for k, v in d["held"].items()},
        [decode_effect(x) for x in d["commit"]],
        [decode_effect(x) for x in d["abort"]],
    )


@dataclass(frozen=True, slots=True)
class BundleRecord:
    id: bytes
    status: str
    vote: bool
    code: ReasonCode  # why this rollup voted no, or why the bundle aborted
    prepare_height: int
    decision_height: int = 0
    legs: tuple[tuple[int, bool, ReasonCode], ...] = ()  # (leg index, ok, code)


def encode_bundle_record(r: BundleRecord) -> bytes:
    return encode_record(
        {
            "id": r.id.hex(),
            "status": r.status,
            "vote": r.vote,
            "code": int(r.code),
            "prepare_height": r.prepare_height,
            "decision_height": r.decision_height,
            "legs": [[i, ok, int(code)] for i, ok, code in r.legs],
        }
    )


def decode_bundle_record(raw: bytes) -> BundleRecord:
    d = json.loads(raw)
    return BundleRecord(
        bytes.fromhex(d["id"]),
        d["status"],
        d["vote"],
        ReasonCode(d["code"]),
        d["prepare_height"],
        d["decision_height"],
        tuple((int(i), bool(ok), ReasonCode(code)) for i, ok, code in d["legs"]),
    )


def get_record(state: State, bundle_id: bytes) -> BundleRecord | None:
    raw = state.get(BUNDLE + bundle_id)
    return None if raw is None else decode_bundle_record(raw)


def get_escrow(state: State, bundle_id: bytes) -> Escrow | None:
    raw = state.get(ESCROW + bundle_id)
    return None if raw is None else decode_escrow(raw)


def compute_held_for(escrow: Escrow) -> dict[bytes, dict[str, int]]:
    """Per owner and asset, what the escrow holds on the owner's behalf: the
    Credits its abort returns (Escrow.hold), in the order they were held."""
    out: dict[bytes, dict[str, int]] = {}
    for e in escrow.abort:
        if isinstance(e, Credit):
            held = out.setdefault(e.owner, {})
            held[e.asset] = held.get(e.asset, 0) + e.amount
    return out


def save_escrow(state: State, bundle_id: bytes, escrow: Escrow) -> None:
    """Save a prepared bundle's escrow, and an index key (b"ace:") for each
    account it holds funds of."""
    state.put(ESCROW + bundle_id, encode_escrow(escrow))
    for owner in compute_held_for(escrow):
        state.put(account_escrow_key(owner, bundle_id), b"")


def delete_escrow(state: State, bundle_id: bytes, escrow: Escrow) -> None:
    """The bundle is finished: its escrow goes, and its accounts' index keys."""
    state.delete(ESCROW + bundle_id)
    for owner in compute_held_for(escrow):
        state.delete(account_escrow_key(owner, bundle_id))


def get_escrow_held(base: StateReader) -> dict[str, int]:
    """Per asset, what the escrows of every undecided bundle hold (reads only the
    escrow prefix: one record per bundle prepared here and not yet finished)."""
    held: dict[str, int] = {}
    for _key, raw in base.iterate(ESCROW, ESCROW + b"\xff" * 33):
        for asset, amount in decode_escrow(raw).held.items():
            held[asset] = held.get(asset, 0) + amount
    return held


def compute_escrow_change(
    base: StateReader, writes: Mapping[bytes, bytes | None], bundle_ids: Iterable[bytes]
) -> dict[str, int]:
    """Per asset, how much more the escrows of `bundle_ids` hold after a block's
    `writes` than before it (`base`). Escrows are written only when a bundle is
    prepared and deleted only when it is finished, so the bundles a block prepared
    or finished here are all a caller need name."""
    change: dict[str, int] = {}
    for bundle_id in bundle_ids:
        key = ESCROW + bundle_id
        if key not in writes:
            continue
        for raw, sign in ((base.get(key), -1), (writes[key], 1)):
            if raw is not None:
                for asset, amount in decode_escrow(raw).held.items():
                    change[asset] = change.get(asset, 0) + sign * amount
    return change


# ---------------------------------------------------------------- prepare


@dataclass(frozen=True, slots=True)
class Prepared:
    """This rollup's vote on a bundle and the text for its receipt."""

    vote: BundleVote
    text: str


def prepare_bundle(
    state: State, bundle: Bundle, rollup: str, height: Height, genesis: Genesis, verify: bool = True
) -> Prepared | None:
    """Prepare this rollup's legs of `bundle`; the vote, or None when the bundle
    has no leg here or was prepared before (an id executes at most once)."""
    mine = [(i, leg) for i, leg in enumerate(bundle.body.legs) if leg.rollup == rollup]
    # Its record, or (once retention pruned the record) its seen-marker, which stays
    # until the bundle's expiry height, after which the bundle is refused as expired.
    done = state.get(BUNDLE + bundle.id) is not None or state.get(seen_key(bundle.id)) is not None
    if not mine or done:
        return None
    outcomes: list[tuple[int, bool, ReasonCode]] = []
    escrow = Escrow()
    code, text = ReasonCode.NONE, ""
    try:
        if bundle.body.expiry_height < height:
            raise Expired(f"bundle expired at height {int(bundle.body.expiry_height)}")
        if verify:
            checks.validate_bundle(bundle, genesis)
    except (BadSignature, WrongSigners) as e:
        # The id covers the body, not the signatures: vote no, record nothing, so
        # a forged copy cannot burn the id of the genuine bundle.
        return Prepared(BundleVote(bundle.id, False, ReasonCode.BAD_SIGNATURE, height), str(e))
    except XrollupError as e:
        code, text = compute_reason_code(e), str(e)
    if not text:
        state.begin()
        for i, leg in mine:
            try:
                prepare_leg(state, escrow, bundle, leg, height, genesis)
                outcomes.append((i, True, ReasonCode.NONE))
            except XrollupError as e:
                code, text = compute_reason_code(e), f"legs[{i}] on {rollup}: {e}"
                outcomes.append((i, False, code))
                break
        if text:
            state.rollback()
        else:
            state.commit()
            save_escrow(state, bundle.id, escrow)
    yes = not text
    record = BundleRecord(bundle.id, PREPARED, yes, code, int(height), legs=tuple(outcomes))
    state.put(BUNDLE + bundle.id, encode_bundle_record(record))
    return Prepared(BundleVote(bundle.id, yes, code, height), text)


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
        escrow.commit.append(Credit(a.to, a.asset, int(a.amount)))
    elif isinstance(a, LockCollateral):
        escrow.hold(state, leg.sender, a.asset, a.amount)
        open_leg = _find_leg(bundle, a.controller_rollup, OpenOption)
        assert open_leg is not None and isinstance(open_leg.action, OpenOption)  # structure
        lien = collateral.Lien(
            id=bundle.id,
            owner=leg.sender,
            asset=a.asset,
            amount=int(a.amount),
            controller_rollup=a.controller_rollup,
            controller_position=bundle.id,
            status=collateral.LOCKED,
            locked_height=int(height),
            option_expiry_height=int(open_leg.action.expiry_height),
        )
        escrow.commit.append(CreateLien(lien))
    elif isinstance(a, OpenOption):
        _prepare_open(state, escrow, bundle, leg, a, height, genesis)
    elif isinstance(a, SettleOption):
        _prepare_settle(state, escrow, bundle, leg, a, height, genesis)
    elif isinstance(a, ReleaseLien):
        _prepare_release(state, escrow, bundle, leg, a, height)
    else:
        raise LegRefused(ReasonCode.INVALID, f"{type(a).__name__} cannot be a bundle leg")


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
        raise LegRefused(
            ReasonCode.INVALID,
            f"option expiry {int(a.expiry_height)} is not after height {int(height)}",
        )
    grace, keep = genesis.limits.lien_grace_blocks, genesis.limits.record_retention_blocks
    if int(a.expiry_height) + grace + keep > UINT64_MAX:  # plain ints: no Height overflow
        raise LegRefused(
            ReasonCode.INVALID,
            f"option expiry {int(a.expiry_height)}: its claim window and the record's retention"
            " run past the largest height",
        )
    asset = genesis.get_asset(a.underlying)
    assert asset is not None  # checked at admission and in validate_bundle
    need_asset = options.collateral_asset(a.kind, a.underlying, a.quote)
    need = options.compute_collateral(a.kind, a.strike, a.size, asset.decimals)
    liens: list[tuple[str, int]] = []
    for on in a.collateral_rollups:
        lock_leg = _find_leg(bundle, on, LockCollateral)
        assert lock_leg is not None and isinstance(lock_leg.action, LockCollateral)  # structure
        lock = lock_leg.action
        if lock.asset != need_asset or lock.amount == 0:
            raise LegRefused(
                ReasonCode.MARGIN,
                f"margin: the lien on {on} locks {_units(genesis, lock.amount, lock.asset)};"
                f" a {a.kind.name.lower()} is collateralized in {need_asset}, more than zero",
            )
        liens.append((on, int(lock.amount)))
    locked = sum(amount for _, amount in liens)
    if locked < need:
        held = " + ".join(f"{_units(genesis, amount, need_asset)} on {on}" for on, amount in liens)
        raise LegRefused(
            ReasonCode.MARGIN,
            f"margin: a {a.kind.name.lower()} of size {_units(genesis, a.size, a.underlying)}"
            f" at strike {_units(genesis, a.strike, a.quote)}"
            f" needs {_units(genesis, need, need_asset)} locked,"
            f" the {'liens lock' if len(liens) > 1 else 'lien locks'} {held}",
        )
    escrow.hold(state, leg.sender, a.quote, a.premium)
    escrow.commit.append(Credit(a.writer, a.quote, int(a.premium)))
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
        liens=tuple(liens),
        collateral_asset=need_asset,
        collateral=locked,
        status=options.OPEN,
        opened_height=int(height),
    )
    escrow.commit.append(CreateOption(position))


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
        raise LegRefused(ReasonCode.NO_POSITION, f"no option {a.option_id.hex()}")
    if o.status != options.OPEN:
        raise LegRefused(ReasonCode.POSITION_BUSY, f"option {a.option_id.hex()[:16]} is {o.status}")
    if height < o.expiry_height:
        raise LegRefused(
            ReasonCode.NOT_EXPIRED, f"option expires at height {o.expiry_height}; now {int(height)}"
        )
    closes = collateral.compute_reclaimable_height(
        o.expiry_height, genesis.limits.lien_grace_blocks
    )
    if height >= closes:
        raise LegRefused(
            ReasonCode.CLAIM_WINDOW_CLOSED,
            f"the claim window closed at height {closes} (expiry {o.expiry_height} + grace"
            f" {genesis.limits.lien_grace_blocks}); the lien is its owner's again",
        )
    price = oracle.get_price(state, o.underlying, o.quote)
    if price is None or price.height < o.expiry_height:
        raise LegRefused(
            ReasonCode.NO_PRICE,
            f"no {o.underlying}/{o.quote} price posted at or after expiry height {o.expiry_height}",
        )
    asset = genesis.get_asset(o.underlying)
    assert asset is not None
    payout = options.compute_payout(o.kind, o.strike, o.size, price.price, asset.decimals)
    if payout != a.payout:
        raise LegRefused(
            ReasonCode.PAYOUT_MISMATCH,
            f"payout: the bundle states {int(a.payout)}, the price {int(price.price)}"
            f" at height {int(price.height)} gives {int(payout)}",
        )
    shares = options.split_payout(int(payout), [amount for _, amount in o.liens])
    on_lien_rollups = {on for on, _ in o.liens}
    for leg_ in bundle.body.legs:
        if isinstance(leg_.action, ReleaseLien) and leg_.rollup not in on_lien_rollups:
            raise LegRefused(
                ReasonCode.INVALID,
                f"the bundle releases a lien on {leg_.rollup}, where the option has none",
            )
    for (on, _amount), share in zip(o.liens, shares, strict=True):
        release = _find_leg(bundle, on, ReleaseLien)
        if release is None or not isinstance(release.action, ReleaseLien):
            raise LegRefused(ReasonCode.INVALID, f"the bundle carries no release_lien leg on {on}")
        if release.action.payee != o.holder:
            raise LegRefused(
                ReasonCode.WRONG_PAYEE,
                f"release_lien on {on} pays {encode_address(release.action.payee)}, not the holder",
            )
        if release.action.payout != share:
            raise LegRefused(
                ReasonCode.PAYOUT_MISMATCH,
                f"release_lien on {on} pays {int(release.action.payout)}; the lien's share of"
                f" the payout {int(payout)} is {share} (liens pay in order: {_order(o)})",
            )
    options.save_option(state, replace(o, status=options.SETTLING))
    escrow.commit.append(Settle(o.id, int(price.price), int(payout), shares))
    escrow.abort.append(Unsettle(o.id))


def _order(o: options.OptionPosition) -> str:
    return ", ".join(f"{on} {amount}" for on, amount in o.liens)


def _prepare_release(
    state: State, escrow: Escrow, bundle: Bundle, leg: Leg, a: ReleaseLien, height: Height
) -> None:
    lien = collateral.get_lien(state, a.lien_id)
    if lien is None:
        raise LegRefused(ReasonCode.NO_POSITION, f"no lien {a.lien_id.hex()}")
    if lien.status != collateral.LOCKED:
        raise LegRefused(ReasonCode.POSITION_BUSY, f"lien {a.lien_id.hex()[:16]} is {lien.status}")
    settle = _find_leg(bundle, lien.controller_rollup, SettleOption)
    if (
        settle is None
        or not isinstance(settle.action, SettleOption)
        or settle.action.option_id != lien.controller_position
    ):
        raise LegRefused(
            ReasonCode.NOT_CONTROLLER,
            f"lien {a.lien_id.hex()[:16]} is controlled by a position on {lien.controller_rollup};"
            " the bundle does not settle it there",
        )
    if a.payout > lien.amount:
        raise LegRefused(
            ReasonCode.PAYOUT_MISMATCH,
            f"payout {int(a.payout)} exceeds the lien's {lien.amount} {lien.asset}",
        )
    collateral.save_lien(state, replace(lien, status=collateral.PENDING))
    escrow.commit.append(Release(lien.id, int(a.payout), a.payee))
    escrow.abort.append(Unrelease(lien.id))


# ---------------------------------------------------------------- finish


def finish_bundle(
    state: State, bundle_id: bytes, commit: bool, code: ReasonCode, height: Height
) -> BundleRecord | None:
    """Apply a decision the rule gave (validated or derived by this node); None
    when this rollup has no part in the bundle or has finished it before."""
    record = get_record(state, bundle_id)
    if record is None or record.status != PREPARED:
        return None
    if commit and not record.vote:
        # The rule commits only with a counted yes signed by this rollup's own key:
        # a logged yes that contradicts this node's own no means that key signed both.
        raise BlockRefused(
            RefusalCode.BAD_DECISION,
            int(height),
            f"commit of bundle {bundle_id.hex()[:16]}, which this rollup voted no on",
        )
    escrow = get_escrow(state, bundle_id)
    if escrow is not None:
        for effect in escrow.commit if commit else escrow.abort:
            apply_effect(state, effect, height)
        delete_escrow(state, bundle_id, escrow)
    status = COMMITTED if commit else ABORTED
    final_code = record.code if not commit and not record.vote else code
    done = replace(record, status=status, code=final_code, decision_height=int(height))
    state.put(BUNDLE + record.id, encode_bundle_record(done))
    return done


def apply_effect(state: State, e: Effect, height: Height) -> None:
    if isinstance(e, Credit):
        bank.increase_balance(state, e.owner, e.asset, Amount(e.amount))
    elif isinstance(e, CreateLien):
        collateral.save_lien(state, replace(e.lien, locked_height=int(height)))
    elif isinstance(e, CreateOption):
        options.save_option(state, replace(e.option, opened_height=int(height)))
    elif isinstance(e, Settle):
        settled = options.get_option(state, e.option_id)
        assert settled is not None
        options.save_option(
            state,
            replace(
                settled,
                status=options.SETTLED,
                settled_height=int(height),
                settle_price=e.price,
                payout=e.payout,
                shares=e.shares,
            ),
        )
    elif isinstance(e, Unsettle):
        settling = options.get_option(state, e.option_id)
        assert settling is not None
        options.save_option(state, replace(settling, status=options.OPEN))
    elif isinstance(e, Release):
        held = collateral.get_lien(state, e.lien_id)
        assert held is not None
        bank.increase_balance(state, e.payee, held.asset, Amount(e.payout))
        bank.increase_balance(state, held.owner, held.asset, Amount(held.amount - e.payout))
        collateral.save_lien(
            state,
            replace(
                held,
                status=collateral.RELEASED,
                released_height=int(height),
                paid_out=e.payout,
                payee=e.payee,
            ),
        )
    else:
        pending = collateral.get_lien(state, e.lien_id)
        assert pending is not None
        collateral.save_lien(state, replace(pending, status=collateral.LOCKED))
