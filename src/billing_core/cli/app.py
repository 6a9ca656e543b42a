"""The ``billing-core`` command line: the parser and ``main``, which maps errors to exit codes.

Exit codes (``runtime.Exit``): 0 ok; 1 a business denial, a record not found, a schema behind
the latest revision, a step lease held by another process; 2 bad usage or bad input (argparse's
usage errors, and every other ``BillingError``, printed with its ``$.path``); 3 something broke
(an unexpected exception, printed with its traceback; a failed worker step with ``--once``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata

from ..errors import BillingError, NotFoundError
from . import customers, db, explain, worker
from .runtime import Exit, add_global_options

__all__ = ["build_parser", "main"]

PROG = "billing-core"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate billing_core: migrate the store, run the worker, explain decisions, "
        "show a customer.",
        epilog="Every command has --help. Exit codes: 0 ok, 1 denied or not found, 2 bad usage "
        "or bad input, 3 failed.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('billing_core')}"
    )
    add_global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (db, worker, explain, customers):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = build_parser().parse_args(argv)  # exits 2 on a usage error
    try:
        return int(args.handler(args))
    except NotFoundError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return Exit.DENIED
    except BillingError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return Exit.USAGE
    except Exception:
        traceback.print_exc()
        return Exit.FAILED
