"""The `thengine` click group and the one place where errors become exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input. Every error is one
line on stderr; no traceback reaches a user.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from .._version import __version__
from ..runtime.stats import GC_PAUSES
from ..errors import DefinitionError, EngineLocked, SchemaTooNew, ThengineError

DEFAULT_DB = "thengine.db"

#: Errors that mean the user gave us something wrong (exit 2), not that we failed (exit 1).
BAD_INPUT = (DefinitionError, EngineLocked, SchemaTooNew)


class BadInput(click.ClickException):
    """Bad input named on the command line or read from a file: exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"thengine: error: {self.format_message()}", err=True)


class Failure(click.ClickException):
    """A runtime failure: exit 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"thengine: error: {self.format_message()}", err=True)


def fail(message: str, *, bad_input: bool = True) -> NoReturn:
    raise (BadInput if bad_input else Failure)(message)


class Group(click.Group):
    """Translates thengine's exceptions and Ctrl-C into one line and an exit code."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The `thengine` process: it ends with its command, so the engine's objects stay
        frozen at close (`GcPauses.unfreeze_at_release`); `main.main(...)`, as tests
        call it, leaves the policy alone."""
        GC_PAUSES.unfreeze_at_release = False
        return super().__call__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BAD_INPUT as exc:
            raise BadInput(str(exc)) from exc
        except ThengineError as exc:
            raise Failure(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo("thengine: interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thengine")
def main() -> None:
    """thengine: a treasure-hunt event engine with a durable log and exact offline replay.

    Start with `thengine demo`. DB defaults to ./thengine.db everywhere.
    """
