"""The click group behind `devnet` (devnet/cli/group.py), on a small group of its
own: help in titled sections, a usage error as one line with exit code 2, an
unexpected exception as one line with exit code 1 and its traceback in a file."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from devnet.cli.group import SectionedGroup


def make_group() -> SectionedGroup:
    @click.group(cls=SectionedGroup)
    def main() -> None:
        """A test program."""

    @click.command()
    @click.option("--n", type=int, required=True)
    def count(n: int) -> None:
        """Count to N."""
        click.echo(str(n))

    @click.command()
    def boom() -> None:
        """Fail unexpectedly."""
        raise RuntimeError("boom")

    @click.command()
    def stray() -> None:
        """Added outside a section."""

    assert isinstance(main, SectionedGroup)
    main.add_section("Counting", [count])
    main.add_section("Failing", [boom])
    main.add_command(stray)
    return main


def test_help_lists_commands_under_their_sections_then_the_others() -> None:
    result = CliRunner().invoke(make_group(), ["--help"], prog_name="prog")

    assert result.exit_code == 0
    headings = re.findall(r"^(\w[\w ]*):$", result.stdout, flags=re.MULTILINE)
    assert headings == ["Options", "Counting", "Failing", "Other commands"]
    assert result.stdout.index("count") < result.stdout.index("Failing:")


def test_a_usage_error_is_one_line_naming_the_help() -> None:
    result = CliRunner().invoke(make_group(), ["count", "--n", "x"], prog_name="prog")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: invalid value for '--n': 'x' is not a valid integer (see prog count --help)"
    ]


def test_an_unexpected_exception_is_one_line_and_its_traceback_is_kept() -> None:
    result = CliRunner().invoke(make_group(), ["boom"], prog_name="prog")

    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    kept = re.fullmatch(r"error: unexpected RuntimeError: boom \(traceback in (.+)\)", line)
    assert kept is not None, line
    traceback = Path(kept.group(1)).read_text()
    Path(kept.group(1)).unlink()
    assert "Traceback" in traceback and "RuntimeError: boom" in traceback


def test_a_command_that_works_exits_0() -> None:
    result = CliRunner().invoke(make_group(), ["count", "--n", "3"], prog_name="prog")

    assert (result.exit_code, result.stdout, result.stderr) == (0, "3\n", "")
