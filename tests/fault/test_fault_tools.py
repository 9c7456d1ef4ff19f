"""The fault tools themselves (devnet.faults), where the fault suite leans on
them: restarts that overlap still leave devnet.json naming every live process,
so `devnet down` stops them all."""

from __future__ import annotations

import threading
from pathlib import Path

from devnet import faults, launcher, network
from devnet.manifest import load_manifest

NODES = ("alpha", "beta", "alpha-replica", "beta-replica")


def test_overlapping_restarts_keep_every_pid_in_devnet_json(tmp_path: Path) -> None:
    """Regression: restart read devnet.json, started the process (a second or
    so), then wrote back the whole file: two restarts at once each wrote their
    own stale copy, the last one won, and the other new pids were lost, so
    `devnet down` left those processes running."""
    data_dir = tmp_path / "devnet"
    started: list[int] = []
    try:
        network.start_devnet(data_dir, replicas=True)
        errors: list[BaseException] = []

        def restart(name: str) -> None:
            try:
                started.append(faults.restart(data_dir, name).pid)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=restart, args=(n,)) for n in NODES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        manifest = load_manifest(data_dir.resolve())
        assert manifest is not None
        recorded = {p.name: p.pid for p in manifest.processes}
        assert sorted(recorded[n] for n in NODES) == sorted(started)
    finally:
        network.stop_devnet(data_dir, grace=5.0)
        leaked = [pid for pid in started if launcher.is_alive(pid)]
        for pid in leaked:  # stop what devnet.json lost track of, by our own pids
            launcher.stop_pid(pid, grace=5.0)
    assert not leaked, f"still running after stop_devnet: {leaked}"
