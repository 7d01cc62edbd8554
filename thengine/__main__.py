"""`python -m thengine ...`: the same command line as the `thengine` script."""

from __future__ import annotations

from thengine.cli import main

if __name__ == "__main__":
    main(prog_name="thengine")
