"""Where the explorer reads from: the sequencer and the nodes over their public
gRPC APIs (one long-lived channel per endpoint), and, when it runs beside a
devnet directory, that devnet's manifest (the process list, re-read when it
changes, so a restarted node is found on its new port) and its fault file."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet import network
from devnet.manifest import Manifest, ProcessRecord, load_manifest, manifest_path
from xrollup.client import Client, NodeClient
from xrollup.errors import Unavailable
from xrollup.genesis import Genesis, compute_genesis_hash

SEQUENCER = "sequencer"
NODE = "node"


@dataclass(frozen=True)
class NodeRef:
    name: str
    rollup: str
    endpoint: str


class Sources:
    """Endpoints, clients, genesis and the devnet's files. Endpoints given on the
    command line win over the manifest's."""

    def __init__(
        self,
        genesis: Genesis,
        data_dir: Path | None = None,
        sequencer: str | None = None,
        nodes: Sequence[NodeRef] = (),
    ) -> None:
        self.genesis = genesis
        self.genesis_hash = compute_genesis_hash(genesis)
        self.data_dir = data_dir
        self._sequencer = sequencer
        self._nodes = list(nodes)
        self._manifest: Manifest | None = None
        self._manifest_mtime: int | None = None
        self._clients: dict[str, Client] = {}
        self._node_clients: dict[str, NodeClient] = {}

    # ------------------------------------------------------------ the devnet's files

    def manifest(self) -> Manifest | None:
        """devnet.json as last written (it is replaced atomically)."""
        if self.data_dir is None:
            return None
        try:
            mtime = manifest_path(self.data_dir).stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self._manifest_mtime:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                self._manifest = load_manifest(self.data_dir)
                self._manifest_mtime = mtime
        return self._manifest

    def processes(self) -> list[ProcessRecord]:
        """The devnet's processes; without a manifest, the endpoints given."""
        m = self.manifest()
        if m is not None:
            return list(m.processes)
        out = []
        if self._sequencer:
            out.append(ProcessRecord(SEQUENCER, SEQUENCER, None, 0, self._sequencer, "", ""))
        out += [ProcessRecord(n.name, NODE, n.rollup, 0, n.endpoint, "", "") for n in self._nodes]
        return out

    def faults(self) -> dict[str, dict[str, Any]]:
        """The fault proxy's links as DIR/faults.json has them ({} without one)."""
        if self.data_dir is None:
            return {}
        try:
            return network.load_faults(self.data_dir)
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------ endpoints and clients

    def sequencer_endpoint(self) -> str | None:
        if self._sequencer:
            return self._sequencer
        m = self.manifest()
        rec = m.get(SEQUENCER) if m else None
        return rec.endpoint if rec else None

    def sequencer(self) -> Client:
        endpoint = self.sequencer_endpoint()
        if endpoint is None:
            raise Unavailable("no sequencer endpoint: no devnet.json and no --sequencer")
        if endpoint not in self._clients:
            self._clients[endpoint] = Client(endpoint, self.genesis.chain_id)
        return self._clients[endpoint]

    def nodes(self) -> list[NodeRef]:
        """Every node, each rollup's primary (named after its rollup) first."""
        if self._nodes:
            refs = list(self._nodes)
        else:
            refs = [
                NodeRef(p.name, p.rollup, p.endpoint)
                for p in self.processes()
                if p.role == NODE and p.rollup
            ]
        return sorted(refs, key=lambda r: (r.name != r.rollup, r.name))

    def node_client(self, ref: NodeRef) -> NodeClient:
        if ref.endpoint not in self._node_clients:
            self._node_clients[ref.endpoint] = NodeClient(ref.endpoint)
        return self._node_clients[ref.endpoint]

    def nodes_of(self, rollup: str) -> list[tuple[NodeRef, NodeClient]]:
        """The nodes of `rollup`, its primary first."""
        return [(r, self.node_client(r)) for r in self.nodes() if r.rollup == rollup]

    def decimals(self, asset: str) -> int | None:
        a = self.genesis.get_asset(asset)
        return a.decimals if a else None

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()
        for n in self._node_clients.values():
            await n.close()
