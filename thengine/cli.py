"""The `thengine` command line."""

from __future__ import annotations

import click

from ._version import __version__


@click.group()
@click.version_option(__version__, prog_name="thengine")
def main() -> None:
    """thengine: a treasure-hunt event engine."""
