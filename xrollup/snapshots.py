"""What the sequencer, the nodes and the devnet share about snapshots: the rule for
a snapshot's name (a name, never a path), the one-at-a-time directory a process
writes its copies into (`<data dir>/snapshots/<name>/`, written under a temporary
name and renamed when complete, so a listed snapshot is always whole), and copying
a closed LevelDB directory's files."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from xrollup.errors import AlreadyExists, InvalidInput, LimitExceeded

SNAPSHOTS = "snapshots"  # the folder under a process's (or the devnet's) data directory
NAME_RULE = "1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
# A process refuses a snapshot height further than this past the head it knows:
# a request waits for its height, and it holds the one snapshot slot while it waits.
MAX_AHEAD_BLOCKS = 1_000
# Snapshots a process keeps in its own folder (the devnet moves them out to its own).
MAX_KEPT = 64
_PARTIAL = ".partial-"
T = TypeVar("T")  # a copy being written; names cannot start with '.'


def validate_snapshot_name(name: str) -> None:
    """Raise InvalidInput unless `name` is a snapshot name (so never `.`, `..`, empty
    or anything with a path separator)."""
    if not _NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise InvalidInput(f"snapshot name {shown!r} is not {NAME_RULE}")


def validate_snapshot_height(height: int) -> None:
    if height < 1:
        raise InvalidInput("snapshot height must be at least 1")


class Reservation:
    """The one snapshot a process is writing: its copy goes to `partial`, then
    `commit` renames it to `final`; `abandon` removes it. Either releases the slot."""

    def __init__(self, owner: SnapshotDir, name: str) -> None:
        self._owner = owner
        self.name = name
        self.final = owner.root / name
        self.partial = owner.root / f"{_PARTIAL}{name}"

    def commit(self) -> Path:
        try:
            os.rename(self.partial, self.final)
        finally:
            self._owner.release()
        return self.final

    def abandon(self) -> None:
        try:
            shutil.rmtree(self.partial, ignore_errors=True)
        finally:
            self._owner.release()

    def fill(self, copy: Callable[[Path], T]) -> T:
        """`copy(partial)` writes the snapshot, then it is committed; on any failure
        it is abandoned. Blocking: runs on a thread (fill_shielded)."""
        try:
            out = copy(self.partial)
        except BaseException:
            self.abandon()
            raise
        self.commit()
        return out

    async def fill_shielded(self, copy: Callable[[Path], T]) -> T:
        """fill on a thread, shielded: a caller that gives up does not stop a copy
        half way; it completes (or is removed) on its thread, which also frees the
        slot."""
        loop = asyncio.get_running_loop()
        return await asyncio.shield(loop.run_in_executor(None, self.fill, copy))


class SnapshotDir:
    """A process's snapshot folder: names are checked here and one snapshot is
    written at a time (a second request meanwhile is RESOURCE_EXHAUSTED)."""

    def __init__(self, data_dir: Path, keep: int = MAX_KEPT) -> None:
        self.root = data_dir / SNAPSHOTS
        self.keep = keep
        self._lock = threading.Lock()  # released by the thread that finishes the copy
        # What a process killed while copying left behind is never a snapshot.
        if self.root.is_dir():
            for leftover in self.root.glob(f"{_PARTIAL}*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def reserve(self, name: str) -> Reservation:
        validate_snapshot_name(name)
        if not self._lock.acquire(blocking=False):
            raise LimitExceeded("a snapshot is being saved here already; one at a time")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if (self.root / name).exists():
                raise AlreadyExists(f"snapshot {name!r} exists already in {self.root}")
            kept = sum(1 for p in self.root.iterdir() if not p.name.startswith("."))
            if kept >= self.keep:
                raise LimitExceeded(
                    f"{kept} snapshots kept in {self.root} already (limit {self.keep}):"
                    " delete some first"
                )
            res = Reservation(self, name)
            shutil.rmtree(res.partial, ignore_errors=True)
            return res
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        self._lock.release()


def copy_store_files(src: Path, dst: Path) -> None:
    """Copy a closed LevelDB directory `src` to a new directory `dst`. Table files
    (*.ldb, *.sst) are hard-linked when the file system allows: LevelDB never
    changes one once written, so the copy and the original can each be opened
    and compacted on their own. The log, manifest and CURRENT are copied."""
    if dst.exists():
        raise AlreadyExists(f"{dst} exists already")
    dst.mkdir(parents=True)
    for entry in sorted(src.iterdir()):
        if entry.is_dir() or entry.name == "LOCK":
            continue  # a node's own snapshots/ folder is not part of its store
        target = dst / entry.name
        if entry.suffix in (".ldb", ".sst"):
            try:
                os.link(entry, target)
                continue
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        shutil.copy2(entry, target)


def compute_dir_bytes(path: Path) -> int:
    """Bytes of the files under `path` (a hard-linked file counts in full)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total
