"""Retention of finished records: the state that would otherwise only grow is
deleted a fixed number of blocks after it became final, as a state transition,
so every node (on the whole stream or on its rollup's) deletes the same keys at
the same height and state roots keep agreeing.

Final, and read by no rule in a way that matters once gone:
- a bundle record (b"bnd:") once committed or aborted here;
- a lien (b"lien:") once released or reclaimed (a locked or pending one is never
  final: it holds an owner's collateral until its exit);
- an option (b"opt:") once settled, or open once its claim window has closed
  (expiry + limits.lien_grace_blocks: settlement is refused from then on; its lien
  on the other rollup stays until its owner reclaims it).

The block that makes a record final schedules it in the retention index
(b"ret:" + due height + record key, state.py) at that height +
limits.record_retention_blocks (R); an option is scheduled when it opens, at its
window's close + R, and again when it settles. At the start of block `due` the
record is deleted if it is final then; one that is not (an option being settled
at its window's close) is looked at again R blocks later. R = 0 keeps every record.

What a deleted record changes: GetBundle, GetLien and GetOption answer NOT_FOUND;
a second logged decision on a pruned bundle is ignored instead of refused
(protocol.is_tracked); a settle or release naming a pruned position is refused
with NO_POSITION instead of POSITION_BUSY or CLAIM_WINDOW_CLOSED. A bundle id
cannot execute twice after its record is gone: its seen-marker (b"seen:") stays
until its expiry height, and an expired bundle is refused (bundles.prepare_bundle).

The account indexes (state.py) never name a pruned record: a lien's key goes when
it is released or reclaimed, before it is final; an escrow's when its bundle
finishes; an option's when it settles, or here with the record when it is pruned
still OPEN (its claim window closed R blocks before)."""

from __future__ import annotations

import json

from rollup_node.core import bundles, collateral, options
from rollup_node.core.state import BUNDLE, LIEN, OPTION, RETIRE, State, retire_key
from xrollup.genesis import UINT64_MAX, Limits

RETAINED = (BUNDLE, LIEN, OPTION)  # the prefixes whose finished records retire


def _status(raw: bytes) -> str:
    status: str = json.loads(raw)["status"]
    return status


def is_final(record_key: bytes, raw: bytes, height: int, limits: Limits) -> bool:
    """Whether the record can change no more and no rule needs it at `height`."""
    status = _status(raw)
    if record_key.startswith(BUNDLE):
        return status != bundles.PREPARED
    if record_key.startswith(LIEN):
        return status in (collateral.RELEASED, collateral.RECLAIMED)
    assert record_key.startswith(OPTION), record_key
    if status == options.SETTLED:
        return True
    closes = compute_window_close(options.decode_option(raw), limits)
    return status == options.OPEN and height >= closes


def compute_window_close(option: options.OptionPosition, limits: Limits) -> int:
    """The height from which the option can no longer be settled."""
    return collateral.compute_reclaimable_height(option.expiry_height, limits.lien_grace_blocks)


def compute_due(
    record_key: bytes, old: bytes | None, new: bytes, height: int, limits: Limits
) -> int | None:
    """The height at which a record written in block `height` (`old` before the
    block, `new` after it) is to be deleted, or None when this write does not
    schedule it."""
    keep = limits.record_retention_blocks
    if record_key.startswith(OPTION):
        if old is None:
            closes = compute_window_close(options.decode_option(new), limits)
            return max(height, closes) + keep
        settled = _status(new) == options.SETTLED
        return height + keep if settled and _status(old) != options.SETTLED else None
    if not is_final(record_key, new, height, limits):
        return None
    if old is not None and is_final(record_key, old, height, limits):
        return None  # final before this block: scheduled then
    return height + keep


def schedule_finished(state: State, height: int, limits: Limits) -> None:
    """At the end of block `height`: put every record this block made final (or
    opened, for options) into the retention index."""
    if limits.record_retention_blocks == 0:
        return
    for key in sorted(k for k in state.writes if k.startswith(RETAINED)):
        new = state.writes[key]
        if new is None:
            continue
        due = compute_due(key, state.get_base(key), new, height, limits)
        if due is not None and due <= UINT64_MAX:  # past the largest height: never due
            state.put(retire_key(due, key), b"")


def prune_records(state: State, height: int, limits: Limits) -> None:
    """At the start of block `height`: delete the records due now that are final,
    and look again R blocks later at one that is not."""
    keep = limits.record_retention_blocks
    if keep == 0:
        return
    for key, _ in state.iterate_base(RETIRE, retire_key(height + 1, b"")):
        record_key = key[len(RETIRE) + 8 :]
        state.delete(key)
        raw = state.get(record_key)
        if raw is None:
            continue  # scheduled twice (an option opened, then settled): gone already
        if is_final(record_key, raw, height, limits):
            if record_key.startswith(OPTION):
                options.delete_option(state, options.decode_option(raw))  # and its index keys
            else:
                state.delete(record_key)  # a lien or bundle final here has none
        else:
            state.put(retire_key(height + keep, record_key), b"")
