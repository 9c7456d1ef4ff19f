"""Immutable checks on a decoded submission: chain id, known rollups and assets,
sizes and amounts within limits, and signatures by exactly the accounts it
touches. The sequencer runs them at admission; nodes run them again on what
they execute. Mutable checks (balances, expiry against a height) live with the
state they read."""

from __future__ import annotations

from collections.abc import Iterable

from xrollup.errors import (
    BadSignature,
    Expired,
    InvalidInput,
    LimitExceeded,
    NotAuthorized,
    WrongSigners,
)
from xrollup.genesis import Genesis, compute_genesis_hash
from xrollup.keys import (
    PUBLIC_KEY_LEN,
    SIGNATURE_LEN,
    Address,
    compute_address,
    encode_address,
    is_valid_signature,
)
from xrollup.model import (
    BUNDLE_ONLY,
    Action,
    Bundle,
    Leg,
    LockCollateral,
    OpenOption,
    PriceUpdate,
    ReclaimLien,
    ReleaseLien,
    SettleOption,
    Signature,
    Transfer,
    Tx,
    Vote,
)


def validate_body_size(body_bytes: bytes, genesis: Genesis, what: str) -> None:
    limit = genesis.limits.max_body_bytes
    if len(body_bytes) > limit:
        raise LimitExceeded(f"{what} body is {len(body_bytes)} bytes, limit is {limit}")


def validate_chain_id(chain_id: str, genesis: Genesis, what: str) -> None:
    if chain_id != genesis.chain_id:
        raise InvalidInput(f"{what}.chain_id is {chain_id!r}, this chain is {genesis.chain_id!r}")


def validate_rollup(rollup: str, genesis: Genesis, what: str) -> None:
    if genesis.get_rollup(rollup) is None:
        known = ", ".join(genesis.rollup_names)
        raise InvalidInput(f"{what}: unknown rollup {rollup!r} (known: {known})")


def validate_asset(symbol: str, genesis: Genesis, what: str) -> None:
    if genesis.get_asset(symbol) is None:
        known = ", ".join(a.symbol for a in genesis.assets)
        raise InvalidInput(f"{what}: unknown asset {symbol!r} (known: {known})")


def validate_action(action: Action, sender: Address, genesis: Genesis, what: str) -> None:
    max_amount = genesis.limits.max_amount
    if isinstance(action, Transfer):
        validate_asset(action.asset, genesis, f"{what}.transfer")
        if action.amount > max_amount:
            raise LimitExceeded(
                f"{what}.transfer.amount {action.amount} is over the limit {max_amount}"
            )
    elif isinstance(action, PriceUpdate):
        validate_asset(action.base, genesis, f"{what}.price_update.base")
        validate_asset(action.quote, genesis, f"{what}.price_update.quote")
        if action.price > max_amount:
            raise LimitExceeded(
                f"{what}.price_update.price {action.price} is over the limit {max_amount}"
            )
        if sender != compute_address(genesis.oracle_key):
            raise NotAuthorized(f"{what}: price updates must come from the genesis oracle account")
    elif isinstance(action, LockCollateral):
        validate_asset(action.asset, genesis, f"{what}.lock_collateral")
        validate_rollup(
            action.controller_rollup, genesis, f"{what}.lock_collateral.controller_rollup"
        )
        if action.amount > max_amount:
            raise LimitExceeded(f"{what}.lock_collateral.amount {action.amount} is over the limit")
    elif isinstance(action, OpenOption):
        w = f"{what}.open_option"
        validate_asset(action.underlying, genesis, f"{w}.underlying")
        validate_asset(action.quote, genesis, f"{w}.quote")
        if action.underlying == action.quote:
            raise InvalidInput(f"{w}: underlying and quote are the same asset")
        for i, name in enumerate(action.collateral_rollups):
            validate_rollup(name, genesis, f"{w}.collateral_rollups[{i}]")
        if len(set(action.collateral_rollups)) != len(action.collateral_rollups):
            raise InvalidInput(f"{w}.collateral_rollups: a rollup named twice")
        for name in ("strike", "size", "premium", "expiry_height"):
            if getattr(action, name) > max_amount:
                raise LimitExceeded(f"{w}.{name} is over the limit {max_amount}")
        if action.writer == sender:
            raise InvalidInput(f"{w}: writer and holder are the same account")
    elif isinstance(action, SettleOption | ReleaseLien) and action.payout > max_amount:
        raise LimitExceeded(f"{what}: payout is over the limit {max_amount}")


def compute_authorizers(leg_sender: Address, action: Action) -> set[Address]:
    """The accounts that must sign for an action: its sender, and for an option
    open also the writer, who takes on the obligation and receives the premium."""
    if isinstance(action, OpenOption):
        return {leg_sender, action.writer}
    return {leg_sender}


def validate_bundle_structure(legs: tuple[Leg, ...], what: str) -> None:
    """Cross-leg rules that make option flows atomic by construction: the lien
    locks travel with the option open they collateralize (one lock on each of the
    option's collateral rollups, by its writer, controlled by the option's
    rollup), the lien releases with the settlement on their controlling rollup
    (each releasing the settled position, the shares summing to its payout). At
    most one open and one settle per bundle, at most one lock and one release per
    rollup. A lien may sit on the option's own rollup (local collateral)."""
    by_kind: dict[type, list[tuple[int, Leg]]] = {}
    for i, leg in enumerate(legs):
        by_kind.setdefault(type(leg.action), []).append((i, leg))
    for kind in (OpenOption, SettleOption):
        if len(by_kind.get(kind, [])) > 1:
            raise InvalidInput(f"{what}: at most one {kind.__name__} leg per bundle")
    for per_rollup in (LockCollateral, ReleaseLien):
        on = [leg.rollup for _, leg in by_kind.get(per_rollup, [])]
        if len(set(on)) != len(on):
            raise InvalidInput(f"{what}: at most one {per_rollup.__name__} leg per rollup")
    locks, releases = by_kind.get(LockCollateral, []), by_kind.get(ReleaseLien, [])
    opens, settles = by_kind.get(OpenOption, []), by_kind.get(SettleOption, [])
    if bool(locks) != bool(opens):
        raise InvalidInput(f"{what}: lock_collateral legs and an open_option leg go together")
    if opens:
        oi, oleg = opens[0]
        oa = oleg.action
        assert isinstance(oa, OpenOption)
        if sorted(leg.rollup for _, leg in locks) != sorted(oa.collateral_rollups):
            raise InvalidInput(
                f"{what}.legs[{oi}]: the option's collateral_rollups"
                f" ({', '.join(oa.collateral_rollups)}) must be exactly the rollups of its"
                f" lock_collateral legs ({', '.join(leg.rollup for _, leg in locks)})"
            )
        for li, lleg in locks:
            la = lleg.action
            assert isinstance(la, LockCollateral)
            if la.controller_rollup != oleg.rollup:
                raise InvalidInput(
                    f"{what}.legs[{li}]: the lien must be controlled by the option's rollup"
                    f" {oleg.rollup!r}, not {la.controller_rollup!r}"
                )
            if lleg.sender != oa.writer:
                raise InvalidInput(
                    f"{what}.legs[{li}]: the lien's owner must be the option's writer"
                )
    if bool(settles) != bool(releases):
        raise InvalidInput(
            f"{what}: a settle_option leg and release_lien legs go together"
            " (a lien cannot be spent by a single leg)"
        )
    if settles:
        si, sleg = settles[0]
        sa = sleg.action
        assert isinstance(sa, SettleOption)
        total = 0
        for ri, rleg in releases:
            ra = rleg.action
            assert isinstance(ra, ReleaseLien)
            if ra.lien_id != sa.option_id:
                raise InvalidInput(
                    f"{what}.legs[{si}]/[{ri}]: release_lien must name the settled position"
                )
            total += int(ra.payout)
        if total != sa.payout:
            raise InvalidInput(
                f"{what}.legs[{si}]: the release_lien payouts sum to {total},"
                f" the settle_option states {int(sa.payout)}"
            )


def validate_signatures(
    body_bytes: bytes,
    signatures: Iterable[Signature],
    required: set[Address],
    genesis: Genesis,
    what: str,
) -> None:
    """The signers are exactly `required` and every signature verifies over the
    body. Everything that costs nothing (count, repeated keys, the signer set) is
    checked before the first signature is verified, so a crafted submission
    cannot buy verification work."""
    sigs = tuple(signatures)
    if len(sigs) > genesis.limits.max_signatures:
        raise LimitExceeded(
            f"{what} has {len(sigs)} signatures, limit is {genesis.limits.max_signatures}"
        )
    if len({s.public_key for s in sigs}) != len(sigs):
        raise InvalidInput(f"{what}.signatures: a key signs more than once")
    for i, sig in enumerate(sigs):
        if len(sig.public_key) != PUBLIC_KEY_LEN or len(sig.signature) != SIGNATURE_LEN:
            raise BadSignature(f"{what}.signatures[{i}] is not an Ed25519 key and signature")
    signed = {compute_address(s.public_key) for s in sigs}
    missing = required - signed
    if missing:
        by = ", ".join(sorted(encode_address(a) for a in signed))
        raise WrongSigners(
            f"{what}: account {encode_address(min(missing))} has not signed; signatures are by "
            f"{by}, a key that does not own the account"
        )
    extra = signed - required
    if extra:
        raise WrongSigners(
            f"{what}: signature by {encode_address(min(extra))}, an account it does not touch"
        )
    for i, sig in enumerate(sigs):
        if not is_valid_signature(sig.public_key, sig.signature, body_bytes):
            raise BadSignature(f"{what}.signatures[{i}] does not verify over the body bytes")


def validate_tx(tx: Tx, genesis: Genesis) -> None:
    body = tx.body
    validate_body_size(tx.body_bytes, genesis, "tx")
    validate_chain_id(body.chain_id, genesis, "tx")
    validate_rollup(body.rollup, genesis, "tx.rollup")
    if isinstance(body.action, BUNDLE_ONLY):
        name = type(body.action).__name__
        raise InvalidInput(f"tx.action: {name} is only valid as a leg of a bundle")
    validate_action(body.action, body.sender, genesis, "tx")
    validate_signatures(tx.body_bytes, tx.signatures, {body.sender}, genesis, "tx")


def validate_bundle(bundle: Bundle, genesis: Genesis) -> None:
    body = bundle.body
    validate_body_size(bundle.body_bytes, genesis, "bundle")
    validate_chain_id(body.chain_id, genesis, "bundle")
    if len(body.legs) > genesis.limits.max_legs:
        raise LimitExceeded(f"bundle has {len(body.legs)} legs, limit is {genesis.limits.max_legs}")
    required: set[Address] = set()
    for i, leg in enumerate(body.legs):
        validate_rollup(leg.rollup, genesis, f"bundle.legs[{i}].rollup")
        if isinstance(leg.action, PriceUpdate | ReclaimLien):
            name = type(leg.action).__name__
            raise InvalidInput(f"bundle.legs[{i}]: {name} is a plain transaction, not a leg")
        validate_action(leg.action, leg.sender, genesis, f"bundle.legs[{i}]")
        required |= compute_authorizers(leg.sender, leg.action)
    validate_bundle_structure(body.legs, "bundle")
    validate_signatures(bundle.body_bytes, bundle.signatures, required, genesis, "bundle")


def validate_vote(vote: Vote, genesis: Genesis) -> None:
    body = vote.body
    validate_body_size(vote.body_bytes, genesis, "vote")
    validate_chain_id(body.chain_id, genesis, "vote")
    rollup = genesis.get_rollup(body.rollup)
    if rollup is None:
        validate_rollup(body.rollup, genesis, "vote.rollup")
        return
    if body.genesis_hash != compute_genesis_hash(genesis):
        raise InvalidInput("vote.genesis_hash: the vote is for another chain's genesis")
    if not is_valid_signature(vote.signature.public_key, vote.signature.signature, vote.body_bytes):
        raise BadSignature("vote.signature does not verify over the body bytes")
    if vote.signature.public_key != rollup.vote_key:
        raise NotAuthorized(
            f"vote for rollup {body.rollup!r} is not signed by its genesis vote key"
        )


def validate_expiry(expiry_height: int, next_height: int, genesis: Genesis, what: str) -> None:
    """The submission can still be ordered at `next_height`, and does not live too long."""
    if expiry_height < next_height:
        raise Expired(f"{what} expired at height {expiry_height}; the next block is {next_height}")
    window = genesis.limits.max_expiry_window
    if expiry_height > next_height + window:
        raise InvalidInput(
            f"{what}.expiry_height {expiry_height} is more than {window} blocks"
            f" ahead of {next_height}"
        )
