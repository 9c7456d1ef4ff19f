"""The `devnet` command reads naturally (issue 9), as users type it
(.venv/bin/devnet in a subprocess) against one devnet shared by the module:
help grouped under section headings; every bad invocation is one line on stderr
starting with `error:` and never a traceback (exit 2 for a bad flag or value,
1 for what went wrong at run time)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

DEVNET = str(Path(sys.executable).parent / "devnet")
SECTIONS = ("Lifecycle", "Chain", "Options and liens", "Faults", "Verification", "Observe")


class Devnet(Protocol):
    dir: Path

    def __call__(
        self, *args: str, expect: int | None = 0, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]: ...


class _Runner:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir

    def __call__(
        self, *args: str, expect: int | None = 0, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [DEVNET, *args, "--data-dir", str(data_dir or self.dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if expect is not None:
            assert p.returncode == expect, (
                f"devnet {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
            )
        return p


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """`devnet up` once for the module (no replicas), `devnet down` at the end."""
    run = _Runner(tmp_path_factory.mktemp("natural") / "dn")
    try:
        run("up", "--json")
        yield run
    finally:
        run("down", expect=None)


def as_json(p: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(p.stdout)


def assert_one_error_line(p: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    lines = p.stderr.splitlines()
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in p.stdout + p.stderr and "Usage:" not in p.stderr
    assert p.stdout == ""


def test_help_lists_the_commands_under_section_headings() -> None:
    p = subprocess.run([DEVNET, "--help"], capture_output=True, text=True, timeout=30)

    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    headings = [line.removesuffix(":") for line in lines if line.endswith(":") and line[0] != " "]
    assert headings == ["Options", *SECTIONS]  # click's own flags first, then the commands

    def section_of(command: str) -> str:
        title = ""
        for line in lines:
            if line.endswith(":") and not line.startswith(" "):
                title = line.removesuffix(":")
            elif line.split()[:1] == [command]:
                return title
        raise AssertionError(f"{command} not in the help")

    expected = {
        "up": "Lifecycle",
        "status": "Lifecycle",
        "accounts": "Lifecycle",
        "transfer": "Chain",
        "price": "Chain",
        "option": "Options and liens",
        "lien": "Options and liens",
        "kill": "Faults",
        "byzantine": "Faults",
        "faults": "Faults",
        "check": "Verification",
        "bundle": "Observe",
    }
    assert {c: section_of(c) for c in expected} == expected


TRANSFER = ("transfer", "--rollup", "alpha", "--from", "0", "--to", "1", "--asset", "USDC")


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ((*TRANSFER, "--amount", "5", "--bogus"), 2, "no such option '--bogus'"),
        (TRANSFER, 2, "missing option '--amount'"),
        (
            ("transfer", "--from", "0", "--to", "1", "--asset", "USDC", "--amount", "1"),
            2,
            "--rollup",
        ),
        ((*TRANSFER[:6], "0xnothex", *TRANSFER[7:], "--amount", "1"), 2, "not hex"),
        (("option", "show", "1234"), 2, "is not a 32-byte hex id"),
        (("receipt", "zz"), 2, "is not a hex id"),
        (("byzantine", "lie", "alpha"), 2, "'lie' is not one of"),
        (("delay", "alpha", "99999999"), 2, "delay must be within 0..60000 ms"),
        (("kill", "nosuch"), 1, "no process 'nosuch'"),
        ((*TRANSFER, "--amount", "1", "--sequencer", "127.0.0.1:1"), 1, "UNAVAILABLE"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_a_bad_invocation_is_one_line(
    devnet: Devnet, args: tuple[str, ...], code: int, says: str
) -> None:
    p = devnet(*args, expect=None)

    assert_one_error_line(p, code, says)
    if code == 2:
        assert f"(see devnet {args[0]}" in p.stderr


def test_no_devnet_in_the_data_dir_is_one_line(devnet: Devnet, tmp_path: Path) -> None:
    for args in ((*TRANSFER, "--amount", "1"), ("check",), ("option", "show", "00" * 32)):
        p = devnet(*args, data_dir=tmp_path / "none", expect=None)
        assert_one_error_line(p, 1, f"no devnet in {tmp_path / 'none'}")
