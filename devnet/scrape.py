"""A Prometheus configuration that scrapes a devnet, computed from its manifest
(devnet.json): one job per role (`xrollup_sequencer`, `xrollup_node`,
`xrollup_proxy`), each process that serves metrics one target HOST:PORT with the
labels `name` (its process name) and, for nodes, `rollup`. Processes without a
metrics URL (stopped, or recorded before metrics) are left out. honor_labels: a
node's own `xrollup_node_info{rollup}` keeps its label as it is (the target's
`rollup` says the same) instead of Prometheus renaming it `exported_rollup`.

    prometheus --config.file <(devnet metrics --prometheus-config)

The text is YAML; every scalar is written JSON-quoted, which YAML reads as is."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from devnet.manifest import Manifest, ProcessRecord

ROLES = ("sequencer", "node", "proxy")  # the order of the jobs; any other role follows


def compute_scrape_config(manifest: Manifest, scrape_interval: str = "5s") -> str:
    """The whole prometheus.yml for `manifest`, scraping every `scrape_interval`."""
    q = json.dumps
    lines = [
        f"# Prometheus scrape configuration for the devnet in {manifest.data_dir}",
        "global:",
        f"  scrape_interval: {q(scrape_interval)}",
        "scrape_configs:",
    ]
    by_role: dict[str, list[ProcessRecord]] = {}
    for p in manifest.processes:
        if p.metrics:
            by_role.setdefault(p.role, []).append(p)
    roles = [r for r in ROLES if r in by_role] + sorted(set(by_role) - set(ROLES))
    for role in roles:
        records = by_role[role]
        lines += [
            f"  - job_name: {q(f'xrollup_{role}')}",
            f"    metrics_path: {q(urlsplit(records[0].metrics).path or '/metrics')}",
            "    honor_labels: true",
            "    static_configs:",
        ]
        for p in records:
            lines += [
                f"      - targets: [{q(urlsplit(p.metrics).netloc)}]",
                "        labels:",
                f"          name: {q(p.name)}",
            ]
            if p.rollup:
                lines.append(f"          rollup: {q(p.rollup)}")
    if not roles:
        lines[-1] = "scrape_configs: []"
    return "\n".join(lines) + "\n"
