"""The sequencer's Prometheus metrics (`xrollup_sequencer_*`), on when
`--metrics-listen` is given. The runtime pushes once per sealed block (interval,
size, every acknowledgement's latency in one call), the service once per call or
per batch (admissions by outcome and status code); heights, pool lanes and
subscribers are read from the running Sequencer at scrape time.

A submission is counted once, when it is answered: `accepted` with code OK when
it was ordered (a duplicate too: it gets the first one's result), `refused` with
the gRPC status code it was answered with (xrollup/grpc_status.py). A batch counts
each of its transactions. Requests that do not decode as protobuf are answered by
the server's interceptor before any of this and are not counted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from xrollup.grpc_status import compute_status
from xrollup.metrics import (
    BYTE_BUCKETS,
    ENTRY_BUCKETS,
    SECONDS_BUCKETS,
    BlockHistogram,
    Scraped,
    new_registry,
)

if TYPE_CHECKING:
    from sequencer.runtime import Sequencer

PREFIX = "xrollup_sequencer_"
ACCEPTED = "accepted"
REFUSED = "refused"
# Kinds of submission (the `kind` label): SubmitTransaction and SubmitBatch
# transactions, SubmitBundle bundles, SubmitVote votes.
TX, BUNDLE, VOTE = "tx", "bundle", "vote"
_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class SequencerMetrics:
    def __init__(self, seq: Sequencer, registry: CollectorRegistry | None = None) -> None:
        self.seq = seq
        self.registry = registry if registry is not None else new_registry("sequencer")
        r = self.registry
        self.block_interval = BlockHistogram(
            PREFIX + "block_interval_seconds",
            "Time from one sealed block to the next (seconds)",
            SECONDS_BUCKETS,
            r,
        )
        self.block_entries = BlockHistogram(
            PREFIX + "block_size_entries",
            "Entries per sealed block (decisions included)",
            ENTRY_BUCKETS,
            r,
        )
        self.block_bytes = BlockHistogram(
            PREFIX + "block_size_bytes",
            "Encoded bytes of the entries of a sealed block (the header's byte_count)",
            BYTE_BUCKETS,
            r,
        )
        self.ack_latency = BlockHistogram(
            PREFIX + "ack_latency_seconds",
            "From a submission's admission into the pool to its acknowledgement"
            " (its block synced to disk), seconds",
            SECONDS_BUCKETS,
            r,
        )
        self.admissions = Counter(
            PREFIX + "admissions",
            "Submissions answered, by kind, outcome and gRPC status code",
            ["kind", "outcome", "code"],
            registry=r,
        )
        self._accepted = {k: self.admissions.labels(k, ACCEPTED, "OK") for k in (TX, BUNDLE, VOTE)}
        self._last_sealed: float | None = None
        Scraped(self._collect, r)

    # ------------------------------------------------------------ pushed

    def observe_block(
        self, entries: int, byte_count: int, ack_latencies: Sequence[float], sealed_at: float
    ) -> None:
        """One sealed block: its size, the latency of every acknowledgement it
        gave, and the time since the previous block (`sealed_at` is monotonic)."""
        if self._last_sealed is not None:
            self.block_interval.observe(sealed_at - self._last_sealed)
        self._last_sealed = sealed_at
        self.block_entries.observe(entries)
        self.block_bytes.observe(byte_count)
        self.ack_latency.observe_many(ack_latencies)

    def count_accepted(self, kind: str, n: int = 1) -> None:
        self._accepted[kind].inc(n)

    def count_refused(self, kind: str, err: BaseException, n: int = 1) -> None:
        """`n` submissions refused with the status `err` is answered with."""
        code, _ = compute_status(err)
        self.admissions.labels(kind, REFUSED, code.name).inc(n)

    def count_batch(self, total: int, refused_codes: Sequence[int]) -> None:
        """A batch of `total` transactions answered, `refused_codes` the status
        codes (integers, as in BatchResult) of those that were not ordered."""
        if total > len(refused_codes):
            self._accepted[TX].inc(total - len(refused_codes))
        counts: dict[int, int] = {}
        for code in refused_codes:
            counts[code] = counts.get(code, 0) + 1
        for code, n in counts.items():
            self.admissions.labels(TX, REFUSED, _CODE_NAMES.get(code, str(code))).inc(n)

    # ------------------------------------------------------------ read at scrape time

    def _collect(self) -> Iterable[Metric]:
        seq = self.seq
        yield GaugeMetricFamily(
            PREFIX + "head_height", "Height of the last sealed block", value=seq.head_height
        )
        lanes = GaugeMetricFamily(
            PREFIX + "pool_entries",
            "Admitted entries waiting for a block, by pool lane (user: transactions and"
            " bundles; protocol: votes)",
            labels=["lane"],
        )
        lanes.add_metric(["user"], seq.pool.user_entries)
        lanes.add_metric(["protocol"], seq.pool.protocol_entries)
        yield lanes
        yield GaugeMetricFamily(
            PREFIX + "stream_subscribers",
            "Open StreamBlocks calls",
            value=seq.subscribers,
        )
        yield GaugeMetricFamily(
            PREFIX + "undecided_bundles",
            "Bundles ordered and not yet decided",
            value=len(seq.tracker.open),
        )
        # HA (sequencer/ha.py): what a replica is and saw; a single sequencer leads
        # for good with term 0.
        yield GaugeMetricFamily(
            PREFIX + "leading",
            "1 while this sequencer orders (an HA replica: while it leads), else 0",
            value=1 if seq.leading else 0,
        )
        yield GaugeMetricFamily(
            PREFIX + "term",
            "The highest leader term this sequencer knows (0 without HA)",
            value=seq.term,
        )
        yield CounterMetricFamily(
            PREFIX + "fenced_appends",
            "Blocks sealed as leader that etcd refused (a superseded term's)",
            value=seq.fenced_appends,
        )
