"""Decoded log entries as plain JSON-able dicts, and what each touches: the
addresses it names and the liens and options it creates or settles. Pure: the
explorer's index and its pages share these. Amounts stay base units as strings
beside their asset (the pages format them in the asset's units)."""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from xrollup.keys import ADDRESS_LEN, encode_address
from xrollup.model import (
    Action,
    Bundle,
    Decision,
    Entry,
    LockCollateral,
    Malformed,
    OpenOption,
    ReleaseLien,
    SettleOption,
    Transfer,
    Tx,
    Vote,
    describe_reason,
)
from xrollup.numeric import Amount

ADDRESS_FIELDS = frozenset({"to", "writer", "payee"})  # the 20-byte fields of actions
INTEGER_TYPES = frozenset(
    {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_INT64}
)


def compute_kind(entry: Entry) -> str:
    """tx, bundle, vote, decision or malformed."""
    if isinstance(entry, Tx):
        return "tx"
    if isinstance(entry, Bundle):
        return "bundle"
    if isinstance(entry, Vote):
        return "vote"
    if isinstance(entry, Decision):
        return "decision"
    return "malformed"


def action_json(action: Action) -> dict[str, Any]:
    """{"type": "transfer", "to": "0x..", "asset": "USDC", "amount": "5000000"}:
    addresses 0x-hex, ids hex, amounts base units as strings, enums lower-case."""
    out: dict[str, Any] = {"type": _snake(type(action).__name__)}
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        if isinstance(value, bytes):
            out[f.name] = encode_address(value) if f.name in ADDRESS_FIELDS else value.hex()
        elif isinstance(value, enum.Enum):
            out[f.name] = value.name.lower()
        elif isinstance(value, Amount):
            out[f.name] = str(int(value))
        elif isinstance(value, int):
            out[f.name] = int(value)
        else:
            out[f.name] = value
    return out


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def entry_json(entry: Entry) -> dict[str, Any]:
    """One entry as the block, transaction and bundle pages show it."""
    kind = compute_kind(entry)
    out: dict[str, Any] = {"kind": kind, "id": entry.id.hex()}
    if isinstance(entry, Tx):
        b = entry.body
        out.update(
            rollup=b.rollup,
            sender=encode_address(b.sender),
            nonce=b.nonce,
            expiry_height=int(b.expiry_height),
            action=action_json(b.action),
        )
    elif isinstance(entry, Bundle):
        out.update(
            rollups=list(compute_rollups(entry)),
            nonce=entry.body.nonce,
            expiry_height=int(entry.body.expiry_height),
            legs=[
                {
                    "index": i,
                    "rollup": leg.rollup,
                    "sender": encode_address(leg.sender),
                    "action": action_json(leg.action),
                }
                for i, leg in enumerate(entry.body.legs)
            ],
        )
    elif isinstance(entry, Vote):
        out.update(
            rollup=entry.body.rollup,
            height=int(entry.body.height),
            votes=[
                {
                    "bundle_id": v.bundle_id.hex(),
                    "yes": v.yes,
                    "code": v.code.name,
                    "reason": describe_reason(v.code),
                    "bundle_height": int(v.bundle_height),
                }
                for v in entry.body.votes
            ],
        )
    elif isinstance(entry, Decision):
        out.update(
            bundle_id=entry.bundle_id.hex(),
            commit=entry.commit,
            code=entry.code.name,
            reason=describe_reason(entry.code),
        )
    elif isinstance(entry, Malformed):
        out["reason"] = entry.reason
    return out


def compute_rollups(entry: Entry) -> tuple[str, ...]:
    """The rollups a transaction or bundle acts on, in leg order."""
    if isinstance(entry, Tx):
        return (entry.body.rollup,)
    if isinstance(entry, Bundle):
        return tuple(dict.fromkeys(leg.rollup for leg in entry.body.legs))
    return ()


def compute_addresses(entry: Entry) -> frozenset[bytes]:
    """Every account an entry's sender, legs or actions name."""
    if isinstance(entry, Tx):
        return frozenset({entry.body.sender, *_named(entry.body.action)})
    if isinstance(entry, Bundle):
        return frozenset(a for leg in entry.body.legs for a in (leg.sender, *_named(leg.action)))
    return frozenset()


def _named(action: Action) -> tuple[bytes, ...]:
    if isinstance(action, Transfer):
        return (action.to,)
    if isinstance(action, OpenOption):
        return (action.writer,)
    if isinstance(action, ReleaseLien):
        return (action.payee,)
    return ()


def compute_positions(entry: Entry) -> tuple[tuple[bytes, str, bytes, str], ...]:
    """(address, kind, position id, rollup) for every lien and option a bundle
    opens or settles: the lien's owner and payee, the option's holder and writer.
    A lien's and an option's id is the id of the bundle that opened them."""
    if not isinstance(entry, Bundle):
        return ()
    out: list[tuple[bytes, str, bytes, str]] = []
    for leg in entry.body.legs:
        a = leg.action
        if isinstance(a, LockCollateral):
            out.append((leg.sender, "lien", entry.id, leg.rollup))
        elif isinstance(a, OpenOption):
            out.append((leg.sender, "option", entry.id, leg.rollup))
            out.append((a.writer, "option", entry.id, leg.rollup))
        elif isinstance(a, ReleaseLien):
            out.append((a.payee, "lien", a.lien_id, leg.rollup))
        elif isinstance(a, SettleOption):
            out.append((leg.sender, "option", a.option_id, leg.rollup))
    return tuple(out)


def record_json(msg: Message) -> dict[str, Any]:
    """A node's record (OptionPosition, Lien, BundleRecord) as JSON, field by
    field: 20-byte fields as 0x addresses, other bytes as hex (None when empty),
    enums by lower-case name ("put", "locked"), heights and times as integers
    and every other 64-bit integer (amounts, prices) as a string of base units."""
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if f.is_repeated:
            out[f.name] = [record_json(v) for v in value] if f.message_type else list(value)
        elif f.type == FieldDescriptor.TYPE_BYTES:
            raw = bytes(value)
            out[f.name] = (encode_address(raw) if len(raw) == ADDRESS_LEN else raw.hex()) or None
        elif f.enum_type is not None:
            e = f.enum_type
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", e.name).upper() + "_"
            known = e.values_by_number.get(value)
            out[f.name] = known.name.removeprefix(prefix).lower() if known else str(value)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            out[f.name] = record_json(value) if msg.HasField(f.name) else None
        elif f.type in INTEGER_TYPES and not f.name.endswith(("height", "_ms", "index", "count")):
            out[f.name] = str(value)
        else:
            out[f.name] = value
    return out
