"""Endpoint lists (xrollup/endpoints.py, issue 12): "A" or "A,B,C" becomes the
channel target and load-balancing policy one place decides; one endpoint stays
exactly what it was; every malformed list is refused with a message that names
the item; the proxy and the CLI read --target / --sequencer through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devnet.cli.common import resolve_sequencer
from devnet.proxy import Upstream, parse_targets
from xrollup.client import CHANNEL_OPTIONS, KEEPALIVE_OPTIONS, compute_channel_options
from xrollup.endpoints import (
    compute_channel_target,
    compute_service_config,
    parse_endpoints,
    split_endpoint,
)
from xrollup.errors import InvalidInput

A, B, C = "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"


def test_one_endpoint_is_the_target_as_it_was() -> None:
    for given in (A, "localhost:50051", "sequencer.example:443", "[::1]:5001"):
        parsed = parse_endpoints(given)
        assert parsed == (given,)
        assert compute_channel_target(parsed) == given
        assert compute_channel_options(parsed) == CHANNEL_OPTIONS


def test_a_grpc_uri_passes_through_whole() -> None:
    for given in ("unix:/tmp/seq.sock", "ipv4:127.0.0.1:1,127.0.0.1:2", "dns:///localhost:1"):
        assert parse_endpoints(given) == (given,)
        assert compute_channel_target(parse_endpoints(given)) == given


def test_a_list_is_one_ipv4_target_in_its_order() -> None:
    parsed = parse_endpoints(f"{C}, {A} ,{B}")
    assert parsed == (C, A, B)
    assert compute_channel_target(parsed) == f"ipv4:{C},{A},{B}"
    assert parse_endpoints([A, B]) == (A, B)
    v6 = parse_endpoints("[::1]:5001,[::1]:5002")
    assert compute_channel_target(v6) == "ipv6:[::1]:5001,[::1]:5002"


def test_policy_pick_first_on_a_list_round_robin_when_spread() -> None:
    def policy(options: list[tuple[str, int | str]]) -> str | None:
        configs = [v for k, v in options if k == "grpc.service_config"]
        if not configs:
            return None
        assert isinstance(configs[0], str)
        name: str = next(iter(json.loads(configs[0])["loadBalancingConfig"][0]))
        return name

    two = parse_endpoints(f"{A},{B}")
    assert policy(compute_channel_options(two)) == "pick_first"
    assert policy(compute_channel_options(two, spread=True)) == "round_robin"
    assert policy(compute_channel_options((A,), spread=True)) == "round_robin"
    assert policy(compute_channel_options((A,))) is None
    # The base options stay, each once: backoff, subchannel pool, message sizes.
    options = compute_channel_options(two, spread=True)
    assert options[: len(CHANNEL_OPTIONS)] == CHANNEL_OPTIONS
    assert compute_service_config("round_robin") == '{"loadBalancingConfig":[{"round_robin":{}}]}'


def test_a_channel_with_somewhere_else_to_go_pings() -> None:
    """Keepalive pings (which find a paused replica) on a list or with spread; one
    endpoint, such as a node's proxy route, does not ping (a delayed link would
    make every ping late); a base that has them already keeps them once."""
    keys = {k for k, _ in KEEPALIVE_OPTIONS}
    assert {k for k, _ in compute_channel_options(parse_endpoints(f"{A},{B}"))} >= keys
    assert {k for k, _ in compute_channel_options((A,), spread=True)} >= keys
    assert not keys & {k for k, _ in compute_channel_options((A,))}
    once = compute_channel_options((A, B), base=[*CHANNEL_OPTIONS, *KEEPALIVE_OPTIONS])
    assert len(once) == len({k for k, _ in once})


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "no endpoint given"),
        (" , ", "no endpoint given"),
        (f"{A},,{B}", "empty item"),
        (f"{A},", "empty item"),
        ("127.0.0.1", "'127.0.0.1' has no port"),
        (f"{A},127.0.0.1", "'127.0.0.1' has no port"),
        ("127.0.0.1:", "has no port"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:0", "port '0' is not a number from 1 to 65535"),
        ("127.0.0.1:70000", "from 1 to 65535"),
        (":5001", "has no host"),
        ("::1:5001", "IPv6 host in brackets"),
        ("[nope]:5001", "is not an IPv6 address"),
        (f"{A},localhost:5002", "'localhost:5002': in a list of several, each host must be an IP"),
        (f"{A},[::1]:5002", "mixes IPv4 and IPv6"),
        (f"{A},{B},{A}", f"names {A!r} twice"),
    ],
)
def test_malformed_lists_are_refused_naming_the_item(given: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_endpoints(given)
    assert fragment in str(e.value)


def test_split_endpoint() -> None:
    assert split_endpoint(" 127.0.0.1:5001 ") == ("127.0.0.1", 5001)
    assert split_endpoint("[::1]:7") == ("::1", 7)
    assert split_endpoint("localhost:65535") == ("localhost", 65535)


def test_proxy_targets_are_host_port_only() -> None:
    assert parse_targets(f"{A},{B}") == (("127.0.0.1", 5001), ("127.0.0.1", 5002))
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        parse_targets("unix:/tmp/seq.sock")


def test_proxy_upstream_starts_from_the_last_good_target() -> None:
    up = Upstream(parse_targets(f"{A},{B},{C}"))
    assert up.order() == [0, 1, 2]
    up.good = 2
    assert up.order() == [2, 0, 1]
    assert Upstream(parse_targets(A)).order() == [0]


def test_cli_sequencer_option_takes_a_list_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert resolve_sequencer(tmp_path, f" {A},{B}") == f" {A},{B}"
    with pytest.raises(SystemExit) as e:
        resolve_sequencer(tmp_path, f"{A},")
    assert e.value.code == 2
    assert "--sequencer: endpoint list" in capsys.readouterr().err
