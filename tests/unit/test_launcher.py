"""The launcher stops only processes it started: once a child has been reaped
its pid may belong to someone else, so stop_pid and kill_pid must not signal it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from devnet import launcher
from rollup_node.follower import compute_max_retry_delay
from xrollup.genesis import dev_genesis


def test_reaped_child_is_never_signalled(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert child.wait(timeout=10) == 0
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))

    assert launcher.stop_pid(child.pid, grace=0.1, popen=child)
    launcher.kill_pid(child.pid, popen=child)

    assert sent == [], f"signalled a reaped pid: {sent}"


def test_running_child_is_stopped_by_sigterm() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert launcher.stop_pid(child.pid, grace=5, popen=child)
    assert child.returncode is not None


def test_a_node_retries_the_sequencer_within_a_tenth_of_the_bundle_deadline() -> None:
    g = dev_genesis()  # 50 blocks of 20 ms: a deadline of 1 s
    assert compute_max_retry_delay(g) == 0.1
    slow = replace(g, block_interval_ms=2_000)  # a deadline of 100 s: capped at 1 s
    assert compute_max_retry_delay(slow) == 1.0
    fast = replace(g, block_interval_ms=1)  # 50 ms: floored at 50 ms
    assert compute_max_retry_delay(fast) == 0.05
