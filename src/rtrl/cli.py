"""The ``rtrl`` command line: a thin layer that holds no algorithm code.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``;
that function adds its parser and sets ``func`` (called with the parsed namespace,
returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__

# (module, description) for each subcommand module; each module's add_parser adds its commands.
_COMMAND_MODULES = (
    "rtrl.cli_stream",
    "rtrl.cli_experiments",
    "rtrl.cli_compare",
    "rtrl.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtrl",
        description="Real-Time Recurrent Learning (Williams & Zipser, 1989): experiments, streaming, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"rtrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rtrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `rtrl tasks | head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
