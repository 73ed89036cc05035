"""The ``xbarsim`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds its parser and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMAND_MODULES = (
    "xbarsim.demo",
    "xbarsim.scale",
    "xbarsim.program_cmd",
    "xbarsim.calibrate",
    "xbarsim.moons",
)


def seed_arg(text):
    """argparse type of every ``--seed``: a non-negative integer (NumPy's
    generators refuse negative seeds with a bare traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {text!r} must be a non-negative integer")
    return value


def check_out_dir(path):
    """The check of every ``--out`` folder, before anything runs: it may be
    missing (it is created) but not a file."""
    from .exceptions import ParameterError

    if os.path.exists(path) and not os.path.isdir(path):
        raise ParameterError(f"--out {path!r} is a file; give a folder (created when missing).")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="xbarsim",
        description="Simulate passive ReRAM crossbar arrays: solve, program, train.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this version
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None):
    from .exceptions import XbarsimError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except XbarsimError as exc:
        print(f"xbarsim {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
