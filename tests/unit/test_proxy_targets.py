"""The proxy's choice of target, pure parts: the order targets are tried in
(from the last that accepted, those up before those down), a target going down
after PROBE_FAILURES failed health probes in a row (its connections closed) and
up after one success; --route NAME=LISTEN[=TARGET] and its command line; no
byzantine mode on a route with its own target."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from devnet.launcher import proxy_argv
from devnet.proxy import (
    PROBE_FAILURES,
    Route,
    Upstream,
    apply_faults,
    compute_order,
    parse_route,
    read_faults,
    write_faults,
)
from xrollup.errors import InvalidInput


def test_targets_are_tried_from_the_last_good_with_those_down_last() -> None:
    assert compute_order(3, 0, set()) == [0, 1, 2]
    assert compute_order(3, 1, set()) == [1, 2, 0]
    assert compute_order(3, 1, {1}) == [2, 0, 1]
    assert compute_order(3, 0, {0, 2}) == [1, 0, 2]
    assert compute_order(3, 2, {0, 1, 2}) == [2, 0, 1]  # all down: as if none were
    assert compute_order(1, 0, set()) == [0]


def test_a_target_is_down_after_failed_probes_in_a_row_and_its_connections_close() -> None:
    async def run() -> None:
        up = Upstream((("127.0.0.1", 1), ("127.0.0.1", 2)))
        piped = asyncio.create_task(asyncio.sleep(60))
        other = asyncio.create_task(asyncio.sleep(60))
        up.piped[0].add(piped)
        up.piped[1].add(other)
        for _ in range(PROBE_FAILURES - 1):
            up.record_probe(0, ok=False)
        up.record_probe(0, ok=True)  # not in a row: counting starts again
        for _ in range(PROBE_FAILURES - 1):
            up.record_probe(0, ok=False)
        assert up.order() == [0, 1] and up.down() == set()
        await asyncio.sleep(0)
        assert not piped.cancelled()

        up.record_probe(0, ok=False)
        assert up.down() == {0}
        assert up.order() == [1, 0]
        await asyncio.sleep(0)
        assert piped.cancelled() and not other.cancelled()

        up.record_probe(0, ok=True)
        assert up.down() == set() and up.order() == [0, 1]
        other.cancel()

    asyncio.run(run())


def test_route_specs() -> None:
    assert parse_route("alpha=127.0.0.1:0") == ("alpha", "127.0.0.1:0", "")
    assert parse_route("s2-e1=127.0.0.1:0=127.0.0.1:2379") == (
        "s2-e1",
        "127.0.0.1:0",
        "127.0.0.1:2379",
    )
    for bad in ("alpha", "=127.0.0.1:0", "alpha=", "alpha=127.0.0.1", "a=127.0.0.1:0=nope"):
        with pytest.raises(InvalidInput):
            parse_route(bad)
    with pytest.raises(InvalidInput, match="not a list"):
        parse_route("a=127.0.0.1:0=127.0.0.1:1,127.0.0.1:2")


def test_proxy_argv_gives_a_route_its_own_target(tmp_path: Path) -> None:
    argv = proxy_argv(
        "127.0.0.1:5000,127.0.0.1:5001",
        {"alpha": "127.0.0.1:0", "s2-e1": "127.0.0.1:7000"},
        tmp_path / "faults.json",
        tmp_path / "proxy.ready",
        None,
        route_targets={"s2-e1": "127.0.0.1:2379"},
    )
    routes = [argv[i + 1] for i, a in enumerate(argv) if a == "--route"]
    assert routes == ["alpha=127.0.0.1:0", "s2-e1=127.0.0.1:7000=127.0.0.1:2379"]
    assert [parse_route(r) for r in routes][1][2] == "127.0.0.1:2379"
    plain = proxy_argv("127.0.0.1:5000", {"alpha": "127.0.0.1:0"}, tmp_path / "f", tmp_path / "r")
    assert "alpha=127.0.0.1:0" in plain
    with pytest.raises(ValueError, match="beta"):
        proxy_argv("127.0.0.1:5000", {}, tmp_path / "f", tmp_path / "r", route_targets={"beta": ""})


def test_no_byzantine_mode_on_a_route_with_its_own_target(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    targets = {"s2-e1": "127.0.0.1:2379"}
    with pytest.raises(InvalidInput, match=r"s2-e1 forwards plain TCP to 127\.0\.0\.1:2379"):
        write_faults(path, {"s2-e1": {"byzantine": "corrupt"}}, targets)
    assert not path.exists()
    state: dict[str, dict[str, Any]] = {
        "s2-e1": {"partitioned": True, "delay_ms": 20},
        "alpha": {"byzantine": "corrupt"},
    }
    write_faults(path, state, targets)
    assert read_faults(path) == state

    # The proxy's own guard, for a file written without the targets.
    etcd = Route("s2-e1", "127.0.0.1:0", target="127.0.0.1:2379")
    node = Route("alpha", "127.0.0.1:0")
    apply_faults([etcd, node], {"s2-e1": {"byzantine": "corrupt", "delay_ms": 20}})
    assert etcd.byzantine is None and etcd.refused == "corrupt" and etcd.delay_ms == 20
    apply_faults([etcd, node], {"s2-e1": {"partitioned": True}, "alpha": {"byzantine": "corrupt"}})
    assert etcd.partitioned and etcd.refused is None and node.byzantine == "corrupt"
