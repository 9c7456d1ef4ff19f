"""The click group behind `devnet`: its help lists the commands under section
headings, and every way a run can go wrong ends in one line on stderr, never a
traceback: a usage error (bad flag, missing option, bad value) is
`error: <what> (see devnet CMD --help)` with exit code 2; an unexpected exception
is `error: unexpected ...` with exit code 1 and its traceback kept in a file."""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click

USAGE_EXIT = 2


def echo_error(message: str) -> None:
    """`error: <message>` as one line on stderr (newlines in the message folded)."""
    click.echo(click.style("error:", fg="red") + " " + " ".join(message.split()), err=True)


def exit_usage(message: str, command_path: str | None = None) -> NoReturn:
    """One line for a bad invocation, naming the help to read; exit code 2."""
    if command_path is None:
        ctx = click.get_current_context(silent=True)
        command_path = ctx.command_path if ctx else "devnet"
    echo_error(f"{message} (see {command_path} --help)")
    sys.exit(USAGE_EXIT)


def sentence_case(message: str) -> str:
    """Click's "No such option '--x'." in the house style: "no such option '--x'"."""
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:]


def keep_traceback(exc: BaseException) -> str:
    """Write the traceback of an unexpected exception to a new file; its path."""
    with tempfile.NamedTemporaryFile("w", prefix="devnet-error-", suffix=".log", delete=False) as f:
        f.write("".join(traceback.format_exception(exc)))
        return f.name


class SectionedGroup(click.Group):
    """A group whose commands are added in titled sections (`add_section`), shown
    so in its help; commands keep their flat names (`devnet up`). As the
    program's entry point (`main()`), it turns every error into one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sections: dict[str, list[str]] = {}

    def add_section(self, title: str, commands: Sequence[click.Command]) -> None:
        for command in commands:
            self.add_command(command)
        self.sections.setdefault(title, []).extend(c.name or "" for c in commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {n for names in self.sections.values() for n in names}
        others = [n for n in self.list_commands(ctx) if n not in listed]
        groups = [*self.sections.items(), *([("Other commands", others)] if others else [])]
        visible = {n: c for n in self.commands if not (c := self.commands[n]).hidden}
        if not visible:
            return
        limit = formatter.width - 6 - max(len(n) for n in visible)
        for title, names in groups:
            rows = [(n, visible[n].get_short_help_str(limit)) for n in names if n in visible]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # `devnet`, `devnet option`: the help
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            exit_usage(sentence_case(e.format_message()), e.ctx.command_path if e.ctx else None)
        except click.ClickException as e:  # e.g. a file that cannot be opened
            echo_error(e.format_message())
            sys.exit(e.exit_code)
        except click.Abort:  # Ctrl-C (click turns it into Abort) or EOF at a prompt
            click.echo("aborted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as e:  # a bug: one line, and where to read the rest
            echo_error(f"unexpected {type(e).__name__}: {e} (traceback in {keep_traceback(e)})")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
