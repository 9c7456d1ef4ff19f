"""A rollup node's Prometheus metrics (`xrollup_node_*`), on when
`--metrics-listen` is given. The follower pushes once per applied block (apply
time, the bundles it prepared and finished, the change in escrow) and once per
refused block; heights, lag, vote counts and the escrow totals are read from the
running Follower at scrape time. `xrollup_node_info{rollup}` tells the series of
one rollup's nodes from another's (a replica differs by its scrape target)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rollup_node.core import bundles
from rollup_node.core.execute import BlockOutcome
from xrollup.blocks import RefusalCode
from xrollup.metrics import BLOCK_BUCKETS, SECONDS_BUCKETS, BlockHistogram, Scraped, new_registry

if TYPE_CHECKING:
    from rollup_node.follower import Follower

PREFIX = "xrollup_node_"
PREPARED = "prepared"


class NodeMetrics:
    def __init__(self, follower: Follower, registry: CollectorRegistry | None = None) -> None:
        self.follower = follower
        self.registry = registry if registry is not None else new_registry("node")
        r = self.registry
        self.apply_seconds = BlockHistogram(
            PREFIX + "apply_seconds",
            "Time to verify, apply and save one block (seconds)",
            SECONDS_BUCKETS,
            r,
        )
        self.bundles = Counter(
            PREFIX + "bundles",
            "Bundles with a leg on this rollup: prepared here (reason: the vote's, NONE for"
            " yes), then committed or aborted (reason: the decision's)",
            ["outcome", "reason"],
            registry=r,
        )
        self.decision_blocks = BlockHistogram(
            PREFIX + "decision_latency_blocks",
            "Blocks from a bundle's prepare to its decision on this rollup",
            BLOCK_BUCKETS,
            r,
        )
        self.refused_blocks = Counter(
            PREFIX + "refused_blocks",
            "Blocks refused (never applied), by refusal code",
            ["code"],
            registry=r,
        )
        # asset -> base units in escrow; every genesis asset from the start, so the
        # scrape thread never sees the dict change size.
        held = bundles.get_escrow_held(follower.store.state)
        self.escrow_held = {a.symbol: held.get(a.symbol, 0) for a in follower.genesis.assets}
        Scraped(self._collect, r)

    # ------------------------------------------------------------ pushed

    def observe_block(
        self, outcome: BlockOutcome, escrow_change: Mapping[str, int], seconds: float
    ) -> None:
        """One applied block: how long it took, what it did to bundles here."""
        self.apply_seconds.observe(seconds)
        for vote in outcome.votes:
            self.bundles.labels(PREPARED, vote.code.name).inc()
        for record in outcome.finished:
            self.bundles.labels(record.status, record.code.name).inc()
            self.decision_blocks.observe(record.decision_height - record.prepare_height)
        for asset, change in escrow_change.items():
            self.escrow_held[asset] = self.escrow_held.get(asset, 0) + change

    def count_refused(self, code: RefusalCode) -> None:
        self.refused_blocks.labels(code.name).inc()

    # ------------------------------------------------------------ read at scrape time

    def _collect(self) -> Iterable[Metric]:
        f = self.follower
        applied = f.applied.height
        info = GaugeMetricFamily(
            PREFIX + "info", "Always 1: which rollup this node runs", labels=["rollup"]
        )
        info.add_metric([f.rollup], 1)
        yield info
        yield GaugeMetricFamily(
            PREFIX + "applied_height", "Height of the last block applied", value=applied
        )
        yield GaugeMetricFamily(
            PREFIX + "lag_blocks",
            "The sequencer's head as this node last saw it, minus the applied height",
            value=max(f.sequencer_height, applied) - applied,
        )
        yield CounterMetricFamily(
            PREFIX + "votes_sent", "Vote messages the sequencer acknowledged", value=f.votes_sent
        )
        yield CounterMetricFamily(
            PREFIX + "vote_retries",
            "Vote submissions retried after a transient failure",
            value=f.vote_retries,
        )
        held = GaugeMetricFamily(
            PREFIX + "escrow_held_base_units",
            "What the escrows of undecided bundles hold on this rollup, per asset, in the"
            " asset's base units",
            labels=["asset"],
        )
        for asset, amount in sorted(self.escrow_held.items()):
            held.add_metric([asset], amount)
        yield held
        yield GaugeMetricFamily(
            PREFIX + "connected",
            "1 while the block stream from the sequencer is up",
            value=1 if f.connected else 0,
        )
