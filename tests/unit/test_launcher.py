"""The launcher stops only processes it started: once a child has been reaped
its pid may belong to someone else, so stop_pid and kill_pid must not signal it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def test_a_probe_says_when_a_process_without_a_ready_file_is_up(tmp_path: Path) -> None:
    """etcd writes no ready file: a probe (here: the third call answers) declares it
    up in place of the ready file and grpc.health.v1; the record carries the
    process's own pid and its argv as run."""
    argv = [sys.executable, "-c", "import time; time.sleep(30)", "--name", "x"]
    calls: list[launcher.Starting] = []

    def probe(s: launcher.Starting) -> dict[str, Any] | None:
        calls.append(s)
        return {"endpoint": "127.0.0.1:7"} if len(calls) == 3 else None

    s = launcher.spawn_process(
        "x", "etcd", None, argv, tmp_path, tmp_path / "x.log", tmp_path / "x.ready", probe=probe
    )
    try:
        while (up := launcher.poll_started(s)) is None:
            time.sleep(launcher.POLL_S)
        assert len(calls) == 3 and calls[0] is s
        assert (up.pid, up.endpoint, up.argv, up.info) == (
            s.popen.pid,
            "127.0.0.1:7",
            argv,
            {"endpoint": "127.0.0.1:7"},
        )
        assert launcher.is_alive(up.pid, up.argv)
    finally:
        launcher.stop_pid(s.popen.pid, grace=5, popen=s.popen)


def test_a_probe_that_never_answers_stops_the_process_at_its_deadline(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    log = tmp_path / "x.log"
    s = launcher.spawn_process(
        "x", "etcd", None, argv, tmp_path, log, tmp_path / "x.ready", 0.3, probe=lambda s: None
    )

    with pytest.raises(launcher.LaunchError) as e:
        while launcher.poll_started(s) is None:
            time.sleep(launcher.POLL_S)
    assert str(e.value) == f"x did not become healthy within 0.3s; see {log}"
    assert s.popen.returncode is not None
