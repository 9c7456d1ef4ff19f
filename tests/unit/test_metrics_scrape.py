"""The Prometheus scrape configuration computed from a devnet's manifest: one job
per role, one target per process that serves metrics, labelled with its name and
rollup; a manifest written before metrics still loads (no metrics field)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devnet.manifest import Manifest, ProcessRecord, load_manifest
from devnet.scrape import compute_scrape_config


def _record(name: str, role: str, rollup: str | None, port: int | None) -> ProcessRecord:
    url = f"http://127.0.0.1:{port}/metrics" if port else ""
    return ProcessRecord(name, role, rollup, 1, "127.0.0.1:1", "d", "l", [], url)


MANIFEST = Manifest(
    "/tmp/devnet",
    "xrollup-devnet-1",
    "/tmp/devnet/genesis.json",
    [
        _record("sequencer", "sequencer", None, 9001),
        _record("proxy", "proxy", None, 9002),
        _record("alpha", "node", "alpha", 9003),
        _record("beta", "node", "beta", 9004),
        _record("beta-replica", "node", "beta", None),  # stopped: no metrics URL
    ],
)

EXPECTED = """\
# Prometheus scrape configuration for the devnet in /tmp/devnet
global:
  scrape_interval: "1s"
scrape_configs:
  - job_name: "xrollup_sequencer"
    metrics_path: "/metrics"
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:9001"]
        labels:
          name: "sequencer"
  - job_name: "xrollup_node"
    metrics_path: "/metrics"
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:9003"]
        labels:
          name: "alpha"
          rollup: "alpha"
      - targets: ["127.0.0.1:9004"]
        labels:
          name: "beta"
          rollup: "beta"
  - job_name: "xrollup_proxy"
    metrics_path: "/metrics"
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:9002"]
        labels:
          name: "proxy"
"""


def test_one_job_per_role_and_a_labelled_target_per_process() -> None:
    assert compute_scrape_config(MANIFEST, scrape_interval="1s") == EXPECTED


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) absent")
def test_prometheus_accepts_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(compute_scrape_config(MANIFEST))
    done = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0


def test_no_metrics_no_jobs_and_old_manifests_load(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "data_dir": str(tmp_path),
        "chain_id": "c",
        "genesis": "g",
        "processes": [
            {
                "name": "sequencer",
                "role": "sequencer",
                "rollup": None,
                "pid": 0,
                "endpoint": "127.0.0.1:5",
                "data_dir": "d",
                "log": "l",
                "argv": [],
            }
        ],
    }
    (tmp_path / "devnet.json").write_text(json.dumps(old))
    manifest = load_manifest(tmp_path)
    assert manifest is not None and manifest.processes[0].metrics == ""
    assert compute_scrape_config(manifest).endswith("scrape_configs: []\n")
